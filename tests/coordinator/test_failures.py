"""Soft failures (run again, up to a limit), hard failures (and their
dependents), cancellation, and a lost compute node."""

from __future__ import annotations

from weft.actors.coordinator.graph import CANCELLED, FAILED, RUNNABLE, WAITING
from weft.actors.coordinator.state import MAX_SOFT_FAILURES
from weft.protocol.enums import ErrorCode

from .harness import Cluster, sends, spec


def test_soft_failure_queues_the_job_again() -> None:
    c = Cluster()
    c.submit(spec("a"))
    c.started()
    c.ends("a", "failed-soft", cause="worker died")
    job = c.job("a")
    assert job.state == RUNNABLE and job.cause == "worker died"
    assert c.state.stats["soft_failures"] == 1
    assert c.started() == ["a"] and job.attempts == 2


def test_soft_failures_give_up_at_the_retry_limit() -> None:
    c = Cluster()
    c.submit(spec("a"), spec("b", "a"))
    for _ in range(MAX_SOFT_FAILURES - 1):
        assert c.started() == ["a"]
        c.ends("a", "failed-soft", cause="flaky")
        # Retries back off: runnable again once its back-off is over.
        c.clock.advance(c.state.retry_backoff_max)
        c.take(c.state.release_due())
        assert c.job("a").state == RUNNABLE
    assert c.started() == ["a"]
    c.ends("a", "failed-soft", cause="flaky")
    job = c.job("a")
    assert job.state == FAILED and job.outcome == "failed-soft"
    assert f"gave up after {MAX_SOFT_FAILURES} attempts; last: flaky" == job.cause
    assert c.job("b").state == FAILED


def test_an_unmet_follower_is_requeued_without_counting_an_attempt() -> None:
    c = Cluster(follow_ahead=1, slots=2)
    c.submit(spec("a"), spec("b", "a"))
    assert c.started() == ["a", "b"]  # b follows a on its node
    c.ends("a", "failed-soft", cause="worker died")
    c.ends("b", "failed-soft", cause="input not made", unmet=True)
    b = c.job("b")
    assert b.summary()["attempts"] == 0 and b.excused == 1
    c.state.planner.follow_ahead = 0
    assert c.started() == ["a"]  # b waits for its input again, not started
    assert b.state == WAITING
    assert c.state.stats["unmet"] == 1 and c.state.stats["soft_failures"] == 1


def test_hard_failure_fails_dependents_with_a_cause_naming_the_failed_job() -> None:
    c = Cluster()
    c.submit(spec("a"), spec("b", "a"), spec("c", "b"))
    c.started()
    c.ends("a", "failed-hard", cause="exit code 3", exit_code=3)
    assert c.job("a").state == FAILED and c.job("a").cause == "exit code 3"
    for name in ("b", "c"):
        assert c.job(name).state == FAILED
    assert "job a (weft.actors.builtins:concat) failed: exit code 3" in c.job("b").cause
    # (c names the root once, not b's cause in full)
    assert "job b failed, because job a (weft.actors.builtins:concat) failed: exit code 3" in c.job("c").cause
    assert c.state.stats["failed"] == 3


def test_a_job_submitted_after_its_input_failed_fails_at_once() -> None:
    c = Cluster()
    c.submit(spec("a"))
    c.started()
    c.ends("a", "failed-hard", cause="boom")
    c.submit(spec("late", "a"))
    assert c.job("late").state == FAILED and "job a (weft.actors.builtins:concat) failed: boom" in c.job("late").cause


def test_cancel_tells_the_running_node_and_cancels_dependents() -> None:
    # (issue 16: the job is `cancelling` until its node reports; see test_cancel.py)
    c = Cluster()
    c.submit(spec("a"), spec("b", "a"))
    c.started()
    effects = c.take(c.state.cancel([c.job("a")]))
    [msg] = sends(effects, "cancel")
    assert msg.endpoint == "tcp://compute-0:1" and msg.body.to_wire() == {"job": "a", "epoch": c.state.epoch}
    assert c.job("a").state == "cancelling" and c.job("a").cause == "cancelled by user"
    assert c.job("b").state == CANCELLED and "job a was cancelled" in c.job("b").cause
    c.ends("a", "cancelled")
    assert c.job("a").state == CANCELLED and "a" not in c.compute().assigned


def test_cancel_of_a_queued_job_sends_nothing() -> None:
    c = Cluster(slots=1)
    c.submit(spec("a"), spec("b"))
    c.started()
    effects = c.take(c.state.cancel([c.job("b")]))
    assert sends(effects, "cancel") == []
    assert c.job("b").state == CANCELLED
    assert c.graph.runnable_count == 0


def test_a_lost_compute_nodes_running_jobs_are_queued_again_not_failed() -> None:
    c = Cluster(computes=2, slots=1)
    c.submit(spec("a"), spec("b"))
    c.round()
    victim = c.job("a").node
    c.take(c.state.node_lost("compute", victim))
    a = c.job("a")
    assert a.state == RUNNABLE and a.cause == f"compute node {victim} lost"
    # The lost attempt counts (toward the limit), like any soft failure.
    assert a.attempts == 1 and c.state.stats["soft_failures"] == 1
    c.ends("b")
    assert c.started() == ["a"] and a.attempts == 2


def test_no_space_moves_the_jobs_outputs_to_other_storage() -> None:
    c = Cluster(storages=2)
    c.submit(spec("a"))
    c.started()
    full = c.job("a").placement[0]
    c.ends("a", "failed-soft", cause="writing result: disk full", code=ErrorCode.NO_SPACE)
    assert c.started() == ["a"]
    assert c.job("a").placement != [full]
