"""Retries of a job's own failures, exit actions, pending timeouts and
failure codes, in the coordinator's state (no sockets, a hand-turned clock)."""

from __future__ import annotations

from typing import Any

from weft.actors.coordinator.attempts import views
from weft.actors.coordinator.exits import RETRY_ACTION_DEFAULT
from weft.actors.coordinator.graph import FAILED, RUNNING, SUCCEEDED, WAITING
from weft.actors.coordinator.views import job_detail
from weft.actors.model import JobSpec
from weft.protocol.enums import Outcome, TaskState
from weft.protocol.tasks import TaskReport

from .harness import Cluster, out, sends


def job(name: str, *deps: str, **kw: Any) -> JobSpec:
    """A command job reading the `result` of each of `deps`, making `result`."""
    return JobSpec(command=["sh", "-c", name], name=name, refs={f"in{i}": out(d) for i, d in enumerate(deps)},
                   outputs=["result"], **kw)


def end(c: Cluster, name: str, outcome: str = "failed-hard", *, exit_code: int | None = None,
        sig: int | None = None, code: str | None = None, cause: str = "boom") -> None:
    """`name`'s compute node reports how its task ended (with the signal field)."""
    j = c.job(name)
    stored = {o: ["storage-0", 3, b"abc"] for o in j.spec.outputs} if outcome == "success" else None
    now = c.clock.wall()
    report = TaskReport(name, TaskState.DONE, j.token, Outcome(outcome), exit_code, cause, code, None, False,
                        stored, now - 1, now, None, sig)
    c.task_news(j.node, report)


def tick(c: Cluster, seconds: float) -> None:
    c.clock.advance(seconds)
    c.take(c.state.release_due())


def test_own_failures_are_retried_with_exponential_delay_and_every_attempt_is_listed() -> None:
    c = Cluster()
    c.submit(job("a", retries=2, retry_delay=10))
    assert c.started() == ["a"]
    end(c, "a", exit_code=1)
    assert c.job("a").state == WAITING and c.started() == []
    tick(c, 9.9)
    assert c.started() == []
    tick(c, 0.2)
    assert c.started() == ["a"]
    end(c, "a", exit_code=1)
    tick(c, 19.9)  # twice as long before the second retry
    assert c.started() == []
    tick(c, 0.2)
    assert c.started() == ["a"]
    end(c, "a", "success", exit_code=0)
    a = c.job("a")
    assert a.state == SUCCEEDED and a.code is None
    tries = views(a)
    assert [t["outcome"] for t in tries] == ["failed-hard", "failed-hard", "success"]
    assert [t.get("code") for t in tries] == ["exit-status", "exit-status", None]
    assert [t["n"] for t in tries] == [1, 2, 3] and all(t["node"] == "compute-0" for t in tries)
    assert tries[0]["exit_code"] == 1 and tries[0]["detail"] == "1"
    assert c.state.stats["retries"] == 2 and a.summary()["attempts"] == 3


def test_retries_used_up_fail_with_the_exit_status_and_a_message() -> None:
    c = Cluster()
    c.submit(job("a", retries=1, retry_delay=0))
    c.started()
    end(c, "a", exit_code=2)
    c.started()
    end(c, "a", exit_code=2)
    a = c.job("a")
    assert a.state == FAILED and a.code == "exit-status" and a.detail == "2"
    d = job_detail(a, a.summary())
    assert d["code"] == "exit-status" and d["message"] == "the command exited with status 2"
    assert len(views(a)) == 2


def test_without_retries_the_first_own_failure_is_final() -> None:
    c = Cluster()
    c.submit(job("a"))
    c.started()
    end(c, "a", exit_code=1)
    assert c.job("a").state == FAILED and c.state.stats["retries"] == 0


def test_infrastructure_failures_use_the_cluster_limit_not_the_jobs_retries() -> None:
    c = Cluster(max_soft_retries=2, retry_backoff=0)
    c.submit(job("a", retries=5, retry_delay=0))
    for _ in range(2):
        c.started()
        end(c, "a", "failed-soft", code="io-error", cause="storage said io-error")
        assert c.job("a").state == WAITING or c.job("a").state == "runnable"
    c.started()
    end(c, "a", "failed-soft", code="io-error", cause="storage said io-error")
    a = c.job("a")
    assert a.state == FAILED and a.code == "storage-unavailable" and a.own == 0
    assert [t["outcome"] for t in views(a)] == ["failed-soft"] * 3


def test_own_retries_do_not_use_up_the_infrastructure_limit() -> None:
    c = Cluster(max_soft_retries=1, retry_backoff=0)
    c.submit(job("a", retries=3, retry_delay=0))
    for _ in range(3):
        c.started()
        end(c, "a", exit_code=1)
    c.started()
    end(c, "a", "failed-soft", code="io-error")  # one infrastructure failure: retried
    assert c.started() == ["a"]
    end(c, "a", "success", exit_code=0)
    assert c.job("a").state == SUCCEEDED


def test_a_crash_carries_its_signal_and_a_time_limit_its_code() -> None:
    c = Cluster()
    c.submit(job("a"), job("b"))
    c.started()
    end(c, "a", sig=9)
    c.started()
    end(c, "b", "timed-out")
    assert (c.job("a").code, c.job("a").detail) == ("crashed", "9 (SIGKILL)")
    assert c.job("b").code == "timed-out" and c.job("b").outcome == Outcome.TIMED_OUT


def test_command_not_found_is_its_own_code() -> None:
    c = Cluster()
    c.submit(job("a"))
    c.started()
    end(c, "a", code="command-not-found")
    assert c.job("a").code == "command-not-found"


def test_exit_action_retry_retries_a_job_without_retries_a_bounded_number_of_times() -> None:
    c = Cluster()
    c.submit(job("a", retry_delay=0, on_exit={"timed-out": "retry"}))
    for _ in range(RETRY_ACTION_DEFAULT):
        assert c.started() == ["a"]
        end(c, "a", "timed-out")
    assert c.started() == ["a"]
    end(c, "a", "timed-out")
    assert c.job("a").state == FAILED and c.job("a").code == "timed-out"
    assert len(views(c.job("a"))) == RETRY_ACTION_DEFAULT + 1


def test_exit_action_fail_fails_at_once_though_retries_are_left() -> None:
    c = Cluster()
    c.submit(job("a", retries=3, retry_delay=0, on_exit={"2": "fail"}), job("b", retries=3, retry_delay=0,
                                                                           on_exit={"2": "fail"}))
    c.started()
    end(c, "a", exit_code=2)
    c.started()
    end(c, "b", exit_code=1)  # not the exit code named: retried
    assert c.job("a").state == FAILED
    assert c.job("b").state != FAILED and c.job("b").own == 1


FLOW = {"submit": {"jobs": {"cleanup": {"command": ["sh", "-c", "echo $WEFT_INPUT_ENDED_JOB"]}}},
        "flow": "cleanup.toml"}


def test_exit_action_submit_submits_the_kept_flow_with_the_ended_job() -> None:
    c = Cluster()
    c.submit(job("a", on_exit={"3": FLOW}), job("b", on_exit={"3": FLOW}))
    c.started()
    end(c, "a", exit_code=3)
    c.started()
    end(c, "b", exit_code=1)  # another exit code: nothing submitted for it
    assert c.job("a").state == FAILED and c.job("a").code == "exit-status"
    made = [j for j in c.graph.jobs.values() if j.id not in ("a", "b")]
    assert len(made) == 1
    assert made[0].spec.inputs == {"ended_job": "a", "ended_when": "3"} and made[0].spec.refs == {}
    assert c.state.stats["exit_submits"] == 1


def test_exit_action_submit_after_success_passes_the_outputs() -> None:
    c = Cluster()
    c.submit(job("a", on_exit={"0": FLOW}))
    c.started()
    end(c, "a", "success", exit_code=0)
    [made] = [j for j in c.graph.jobs.values() if j.id != "a"]
    assert made.spec.refs == {"ended_result": "a/result"} and made.spec.inputs["ended_when"] == "0"
    assert c.started() == [made.id]  # its input is made: it runs


def test_a_bad_flow_in_an_exit_action_is_noted_on_the_job_not_a_crash() -> None:
    c = Cluster()
    bad = {"submit": {"jobs": {"x": {"command": "not a list"}}}, "flow": "bad.toml"}
    c.submit(job("a", on_exit={"1": bad}))
    c.started()
    end(c, "a", exit_code=1)
    a = c.job("a")
    assert a.state == FAILED and "exit action 1=submit:bad.toml" in a.cause and len(c.graph.jobs) == 1


def test_pending_timeout_without_a_compute_node_says_no_capacity() -> None:
    c = Cluster(computes=0)
    c.submit(job("a", pending_timeout=5))
    assert c.state.next_due() == c.clock.t + 5  # a timer, not a scan
    tick(c, 4.9)
    assert c.job("a").state != FAILED
    tick(c, 0.2)
    a = c.job("a")
    assert a.state == FAILED and a.code == "pending-timeout" and a.detail.startswith("no-capacity")
    assert "pending timeout of 5s" in a.cause and c.state.stats["pending_timeouts"] == 1


def test_pending_timeout_names_the_first_missing_inputs_job() -> None:
    c = Cluster()
    c.submit(job("p"), job("d", "p", pending_timeout=5))
    assert c.started() == ["p"]
    tick(c, 6)
    d = c.job("d")
    assert d.state == FAILED and d.code == "pending-timeout"
    assert d.detail == "inputs-missing: p/result (job p running)"
    assert c.job("p").state == RUNNING


def test_a_job_parked_ahead_of_its_input_is_not_started_and_is_withdrawn_at_its_pending_timeout() -> None:
    c = Cluster(follow_ahead=2, slots=2)
    c.submit(job("p"), job("d", "p", pending_timeout=5))
    assert sorted(c.started() + c.started()) == ["d", "p"] and c.job("d").ahead
    tick(c, 6)
    d = c.job("d")
    assert d.state == FAILED and d.code == "pending-timeout" and d.detail.startswith("inputs-missing: p/result")
    assert [e.body.job for e in sends(c.effects, "cancel")] == ["d"]
    assert "d" not in c.compute().assigned


def test_a_job_started_in_time_is_not_failed_by_its_pending_timeout() -> None:
    c = Cluster()
    c.submit(job("a", pending_timeout=5))
    c.started()
    tick(c, 6)
    assert c.job("a").state == RUNNING and c.job("a").code is None


def test_dependents_of_a_failed_job_fail_input_failed_naming_it() -> None:
    c = Cluster()
    c.submit(job("a"), job("b", "a"), job("c", "b"))
    c.started()
    end(c, "a", exit_code=1)
    assert (c.job("b").code, c.job("b").detail) == ("input-failed", "a")
    assert (c.job("c").code, c.job("c").detail) == ("input-failed", "b")


def test_a_cancelled_job_has_the_code_cancelled() -> None:
    c = Cluster()
    c.submit(job("a"))
    c.take(c.state.cancel([c.job("a")]))
    assert c.job("a").code == "cancelled"


def test_an_attempt_on_a_lost_node_that_never_ran_is_taken_off_the_list() -> None:
    c = Cluster()
    c.submit(job("a"))
    c.started()
    token = c.job("a").token
    c.take(c.state.node_lost("compute", "compute-0"))
    assert [t.get("code") for t in views(c.job("a"))] == ["node-lost"]
    c.add_compute("compute-0", 1, [TaskReport("a", TaskState.DONE, token, Outcome.FAILED_SOFT, cause="restarted")])
    assert views(c.job("a")) == []


def test_a_resubmitted_failed_job_gets_its_retries_again() -> None:
    c = Cluster()
    c.submit(job("a", retries=1, retry_delay=0))
    for _ in range(2):
        c.started()
        end(c, "a", exit_code=1)
    assert c.job("a").state == FAILED
    c.submit(job("a", retries=1, retry_delay=0))
    a = c.job("a")
    assert a.own == 0 and a.code is None
    c.started()
    end(c, "a", exit_code=1)
    assert a.state != FAILED  # retried once more
    assert [t["n"] for t in views(a)] == [1, 2, 3]  # the earlier attempts stay listed


def test_a_resubmit_asking_for_other_retry_settings_is_told_it_did_not_get_them() -> None:
    c = Cluster()
    c.submit(job("a"))
    c.started()
    [s] = c.submit(job("a", retries=2, pending_timeout=9, on_exit={"1": "succeed"}))
    assert s.joined and s.differs == ["retries", "pending_timeout", "on_exit"]
    assert c.job("a").spec.retries == 0
