"""Every failure code the coordinator produces today, from the report that
makes it (the README's table of job states, outcomes and failure codes).
Codes shown end to end elsewhere (exit-status, crashed, timed-out,
pending-timeout, command-not-found, input-failed, output-missing, cancelled:
tests/retries, tests/control) are here too, from their reports, so the
table has one place that checks each row (memory-limit also end to end in
tests/placement). `no-capacity` is reserved: nothing makes it (a job no node
can take waits; its pending-timeout detail says `no-capacity`)."""

from __future__ import annotations

from typing import Any

import pytest

from weft.actors.coordinator.graph import FAILED
from weft.actors.coordinator.views import job_detail
from weft.actors.model import JobSpec
from weft.protocol.enums import JobFailure, Outcome, TaskState
from weft.protocol.tasks import Refused, TaskReport

from .harness import CONCAT, Cluster, out, spec


def command(name: str, *deps: str) -> JobSpec:
    return JobSpec(command=["sh", "-c", name], name=name, refs={f"in{i}": out(d) for i, d in enumerate(deps)},
                   outputs=["result"])


def report(c: Cluster, name: str, outcome: str, *, exit_code: int | None = None, sig: int | None = None,
           code: str | None = None, cause: str = "boom") -> None:
    j = c.job(name)
    now = c.clock.wall()
    c.task_news(j.node, TaskReport(name, TaskState.DONE, j.token, Outcome(outcome), exit_code, cause, code,
                                   None, False, None, now - 1, now, None, sig))


# (what ran, how its task ended) -> (code, detail)
OWN = [
    ("exit-status", dict(exit_code=3), "3"),
    ("crashed", dict(sig=9), "9 (SIGKILL)"),
    ("command-not-found", dict(code="command-not-found"), None),
    ("output-missing", dict(exit_code=0, code="output-missing"), None),
    ("input-lost", dict(code="missing-input"), None),
    ("bad-spec", dict(code="bad-delegation"), None),
    ("internal", dict(code="internal"), None),
    ("memory-limit", dict(sig=9, code="memory-limit"), None),
]


@pytest.mark.parametrize("code,ended,detail", OWN, ids=[o[0] for o in OWN])
def test_a_commands_own_failure_carries_its_code(code: str, ended: dict[str, Any], detail: str | None) -> None:
    c = Cluster()
    c.submit(command("a"))
    c.started()
    report(c, "a", "failed-hard", **ended)
    a = c.job("a")
    assert (a.state, a.code, a.detail) == (FAILED, code, detail)
    view = job_detail(a, a.summary())
    assert view["code"] == code and view["message"], view


def test_a_callable_that_raised_fails_callable_failed() -> None:
    c = Cluster()
    c.submit(spec("a"))
    assert c.job("a").spec.call == CONCAT
    c.started()
    report(c, "a", "failed-hard", code="callable-failed", cause="ValueError: no")
    assert c.job("a").code == JobFailure.CALLABLE_FAILED


def test_a_timed_out_job_fails_timed_out() -> None:
    c = Cluster()
    c.submit(command("a"))
    c.started()
    report(c, "a", "timed-out")
    assert (c.job("a").code, c.job("a").outcome) == ("timed-out", "timed-out")


@pytest.mark.parametrize("node_code,code", [("spawn-limit", "spawn-limit"), ("io-error", "storage-unavailable"),
                                            ("shutting-down", "node-lost"), (None, "node-lost")])
def test_infrastructure_failures_past_the_limit_carry_their_code(node_code: str | None, code: str) -> None:
    c = Cluster(max_soft_retries=1, retry_backoff=0)
    c.submit(command("a"))
    for _ in range(2):
        c.clock.advance(1.0)
        c.take(c.state.release_due())
        assert c.started() == ["a"]
        report(c, "a", "failed-soft", code=node_code)
    a = c.job("a")
    assert (a.state, a.outcome, a.code) == (FAILED, "failed-soft", code)


def test_a_compute_node_refusing_the_start_fails_bad_spec() -> None:
    c = Cluster()
    c.submit(command("a"))
    [d] = c.round()
    c.state.starts_answered(d, c.state.attempt_tokens(d), [Refused("a", "bad-spec", "no such thing")])
    assert (c.job("a").state, c.job("a").code) == (FAILED, "bad-spec")


def test_a_lost_input_nothing_can_make_fails_input_lost_naming_it() -> None:
    c = Cluster(storage_grace=1.0)
    c.add_storage("storage-1")
    c.object_finished(out("ext"), "storage-1")  # written by a client, no job made it
    c.submit(spec("reader", "ext"))
    c.take(c.state.node_lost("storage", "storage-1"))
    assert c.started() == []
    c.clock.advance(2.0)
    c.take(c.state.regenerate_lost())
    r = c.job("reader")
    assert (r.state, r.code, r.detail) == (FAILED, "input-lost", out("ext"))


def test_a_failed_input_and_a_cancelled_job() -> None:
    c = Cluster(slots=2)
    c.submit(command("a"), command("b", "a"), command("x"))
    c.started()
    report(c, "a", "failed-hard", exit_code=1)
    assert (c.job("b").code, c.job("b").detail) == ("input-failed", "a")
    c.take(c.state.cancel([c.job("x")]))
    report(c, "x", "cancelled")
    assert (c.job("x").state, c.job("x").code) == ("cancelled", "cancelled")
