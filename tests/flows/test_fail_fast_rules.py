"""Failing fast, in-process (the coordinator's state, no sockets): which
endings stop a submission and which do not, and the flow table behind
FLOW:JOB."""

from __future__ import annotations

import pytest
from coordinator.harness import Cluster, spec

from weft.actors.coordinator.flows import FlowError
from weft.actors.coordinator.graph import (
    CANCELLED,
    CANCELLING,
    FAILED,
    RUNNABLE,
    RUNNING,
    SUCCEEDED,
)
from weft.actors.model import JobSpec
from weft.protocol.jobs import FlowPart


def own(name: str, retries: int = 0) -> JobSpec:
    s = spec(name)
    s.retries = retries
    return s


def test_the_first_failure_cancels_the_rest_of_its_submission_only() -> None:
    c = Cluster(slots=2)
    c.submit(spec("other"))  # another submission: left alone
    c.submit(spec("a"), spec("b"), spec("queued"), spec("after-a", "a"))
    c.take(c.state.watch_fail_fast("s1", [c.job(j) for j in ("a", "b", "queued", "after-a")]))
    assert sorted(c.started()) == ["a", "other"]
    c.ends("a", "failed-hard", cause="exit code 1")
    assert c.job("a").state == FAILED
    assert c.job("after-a").state == FAILED  # its dependent fails as always, naming a
    for j in ("b", "queued"):
        assert c.job(j).state == CANCELLED
        assert c.job(j).cause == f"cancelled by --fail-fast: job {c.job('a').id} failed"
    assert c.job("other").state == RUNNING
    assert not c.state.fail_fast_of and not c.state.fail_fast_jobs  # the watch ended


def test_a_retried_failure_a_success_or_a_cancel_does_not_stop_the_submission() -> None:
    c = Cluster(slots=3)
    c.submit(own("flaky", retries=1), spec("ok"), spec("stopped"), spec("last"))
    c.take(c.state.watch_fail_fast("s2", [c.job(j) for j in ("flaky", "ok", "stopped", "last")]))
    assert sorted(c.started()) == ["flaky", "ok", "stopped"]
    c.ends("flaky", "failed-hard", cause="exit code 1", exit_code=1)  # retried: not a failure yet
    c.ends("ok")
    c.take(c.state.cancel([c.job("stopped")]))
    assert c.job("last").state in (RUNNABLE, RUNNING)
    assert c.job("ok").state == SUCCEEDED and "ok" not in c.state.fail_fast_of
    c.clock.advance(10)
    c.take(c.state.release_due())
    assert sorted(c.started()) == ["flaky", "last"]
    c.ends("flaky", "failed-hard", cause="exit code 1", exit_code=1)  # out of retries: it stops the rest
    assert c.job("last").state == CANCELLING  # running: stopped on its node


def test_a_job_failed_by_the_submit_itself_is_the_first_failure() -> None:
    c = Cluster()
    c.submit(spec("old"))
    c.started()
    c.ends("old", "failed-hard", cause="exit code 1")
    late = spec("late")
    late.after = ["old"]  # fails as soon as it is submitted: its `after` job failed
    c.submit(late, spec("rest"))
    assert c.job("late").state == FAILED
    c.take(c.state.watch_fail_fast("s3", [c.job("late"), c.job("rest")]))
    assert c.job("rest").state == CANCELLED and "job late failed" in c.job("rest").cause


def test_flow_names_are_the_newest_submissions_and_name_the_job_in_causes() -> None:
    c = Cluster()
    c.submit(spec("x1"), spec("y1", "x1"))
    c.state.record_flow(FlowPart("build", ["x", "y"]), ["x1", "y1"])
    assert c.state.flow_job("build:x") == "x1"
    c.submit(spec("x2"))
    c.state.record_flow(FlowPart("build", ["x"]), ["x2"])  # a new submission replaces the table
    assert c.state.flow_job("build:x") == "x2"
    with pytest.raises(FlowError, match="flow 'build' has no job 'y' \\(its jobs: x\\)"):
        c.state.flow_job("build:y")
    with pytest.raises(FlowError, match="no flow 'nope' was submitted \\(flows: build\\)"):
        c.state.flow_job("nope:x")
    c.state.record_flow(FlowPart("build", ["x", "y"], 0), ["x1", "y1"])
    c.state.record_flow(FlowPart("build", ["z"], 1), ["x2"])  # a later slice of the same submission adds
    assert c.state.flow_job("build:y") == "y1" and c.state.flow_job("build:z") == "x2"
    c.started()
    c.ends("x1", "failed-hard", cause="exit code 2")
    assert c.job("y1").cause == "input x1/result: job x1 (build:x) failed: exit code 2"


def test_flow_names_and_a_stderr_tail_survive_a_coordinator_restart(tmp_path) -> None:  # noqa: ANN001
    from coordinator.test_replay import restart

    from weft.actors.coordinator.flows import FLOWS
    from weft.actors.coordinator.journal import Journal
    from weft.protocol.enums import Outcome, TaskState
    from weft.protocol.tasks import TaskReport

    path = tmp_path / "journal.sqlite"
    c = Cluster(journal=Journal(path))
    c.submit(spec("x1", command=["cc", "-c", "x.c"]), spec("y1", "x1"))
    c.state.record_flow(FlowPart("build", ["x", "y"]), ["x1", "y1"])
    c.journal.stage_meta(FLOWS, {k: dict(v) for k, v in c.state.flows.items()})  # as the submit op does
    c.started()
    job = c.job("x1")
    c.task_news(job.node, TaskReport("x1", TaskState.DONE, job.token, Outcome.FAILED_HARD, 1, "exit code 1",
                                     tail="x.c:1:1: error: bad\n    ^"))
    c2 = restart(path, c)
    assert c2.state.flow_job("build:y") == "y1"
    assert c2.job("x1").tail == "x.c:1:1: error: bad\n    ^"
    assert c2.job("x1").summary()["stderr_tail"] == "x.c:1:1: error: bad\n    ^"
    assert c2.job("y1").cause == "input x1/result: job x1 (build:x) failed: exit code 1"
