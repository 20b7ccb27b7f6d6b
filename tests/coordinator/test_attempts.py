"""Attempts are counted honestly: a start that reached no live process is no
attempt, soft failures back off, and a busy node is passed over, not failed."""

from __future__ import annotations

from weft.actors.coordinator.dispatch import never_started
from weft.actors.coordinator.effects import Dispatch
from weft.actors.coordinator.graph import RUNNABLE, RUNNING, WAITING
from weft.actors.coordinator.retry import HOLD_FIRST
from weft.actors.coordinator.state import MAX_SOFT_FAILURES
from weft.bus.errors import Busy, CallTimeout, ConnectionLost, RemoteError
from weft.bus.rpc import PeerClosed
from weft.protocol.enums import ErrorCode, Outcome, TaskState
from weft.protocol.tasks import Refused, TaskReport

from .harness import Cluster, spec


def dispatch(c: Cluster, *, not_started: str | None = None, busy: bool = False) -> list[Dispatch]:
    """One round, each dispatch carried out as the shell does, with the node
    answering busy to every start, or the call failing without reaching it."""
    ds = [e for e in c.take(c.state.schedule_round()) if isinstance(e, Dispatch)]
    for d in ds:
        tokens = c.state.attempt_tokens(d)
        failed: dict[str, str] = {}
        unsent: dict[str, str] = {}
        starts = c.state.start_messages(d, tokens, failed, unsent)
        unstarted: dict[str, str] = {}
        if not_started is not None:
            unstarted = {s.job: not_started for s in starts}
        elif busy:
            c.state.starts_answered(d, tokens, [Refused(s.job, ErrorCode.BUSY, "busy") for s in starts])
        else:
            c.state.starts_answered(d, tokens, [TaskReport(s.job, TaskState.PENDING, s.token) for s in starts])
        c.take(c.state.dispatch_ended(d, tokens, failed, unstarted, unsent))
    return ds


def shown_attempts(c: Cluster, name: str) -> int:
    return c.job(name).summary()["attempts"]


def test_what_counts_as_never_started() -> None:
    assert never_started(CallTimeout("tcp://x:1", "start_many", 3, unreachable=True))
    assert never_started(PeerClosed("connection to tcp://x:1 closed during 'start_many'"))
    assert never_started(ConnectionLost("tcp://x:1", "start_many", 3))
    assert never_started(Busy(ErrorCode.BUSY, "busy"))
    assert never_started(RemoteError(ErrorCode.SHUTTING_DOWN, "stopping"))
    # A live connection that gave no answer in time may have started them.
    assert not never_started(CallTimeout("tcp://x:1", "start_many", 10))
    assert not never_started(RemoteError(ErrorCode.BAD_REQUEST, "bad"))


def test_starts_that_reach_no_process_are_not_attempts_and_never_use_up_the_budget() -> None:
    c = Cluster()
    c.submit(spec("a"))
    for _ in range(MAX_SOFT_FAILURES + 3):
        [d] = dispatch(c, not_started="starting on compute-0: no connection within 3s")
        assert [j.id for j, _ in d.items] == ["a"]
        job = c.job("a")
        assert job.state == RUNNABLE and shown_attempts(c, "a") == 0
        # The node gets nothing while held, then takes starts again.
        assert not c.compute().ready and dispatch(c) == []
        c.clock.advance(10)
        c.take(c.state.release_due())
        assert c.compute().ready
    assert c.state.stats["soft_failures"] == 0 and c.state.stats["not_started"] == MAX_SOFT_FAILURES + 3
    assert c.started() == ["a"]
    c.ends("a")
    assert c.job("a").summary()["attempts"] == 1


def test_a_node_held_back_waits_longer_each_time_it_refuses_in_a_row() -> None:
    c = Cluster()
    c.submit(spec("a"))
    dispatch(c, not_started="closed")
    c.clock.advance(HOLD_FIRST * 1.5)
    c.take(c.state.release_due())
    assert c.compute().ready
    dispatch(c, not_started="closed")
    c.clock.advance(HOLD_FIRST * 1.5)  # the second hold is twice as long
    c.take(c.state.release_due())
    assert not c.compute().ready
    c.clock.advance(HOLD_FIRST)
    c.take(c.state.release_due())
    assert c.compute().ready


def test_a_busy_node_is_passed_over_not_failed() -> None:
    c = Cluster(computes=2)
    c.submit(spec("a"))
    [d] = dispatch(c, busy=True)
    first = d.node.node
    job = c.job("a")
    assert job.state == RUNNABLE and shown_attempts(c, "a") == 0 and job.outcome is None
    assert c.state.stats["busy_starts"] == 1 and c.state.stats["soft_failures"] == 0
    # Placed on the other node at once.
    [d2] = dispatch(c)
    assert d2.node.node != first and c.job("a").state == RUNNING


def test_soft_failures_back_off_exponentially_up_to_the_cap() -> None:
    c = Cluster(retry_backoff=2.0, retry_backoff_max=5.0)
    c.submit(spec("a"))
    assert c.started() == ["a"]
    c.ends("a", "failed-soft", cause="worker died")
    # The second try is at once ...
    assert c.job("a").state == RUNNABLE
    waits = []
    for _ in range(3):
        assert c.started() == ["a"]
        c.ends("a", "failed-soft", cause="worker died")
        assert c.job("a").state == WAITING and c.started() == []
        waited = 0.0
        while c.job("a").state != RUNNABLE and waited < 100:
            c.clock.advance(0.5)
            waited += 0.5
            c.take(c.state.release_due())
        waits.append(waited)
    # ... then 2 s, 4 s, and the 5 s cap.
    assert waits == [2.0, 4.0, 5.0]
    assert shown_attempts(c, "a") == 4


def test_a_cancelled_job_backing_off_stays_cancelled() -> None:
    c = Cluster()
    c.submit(spec("a"))
    for _ in range(2):
        c.started()
        c.ends("a", "failed-soft", cause="flaky")
    assert c.job("a").state == WAITING
    c.take(c.state.cancel([c.job("a")]))
    c.clock.advance(100)
    c.take(c.state.release_due())
    assert c.job("a").state == "cancelled" and c.started() == []


def test_a_task_that_never_took_a_slot_is_not_an_attempt() -> None:
    c = Cluster()
    c.submit(spec("a"))
    c.started()
    # Its node restarted while it was queued there: it comes back failed
    # soft with no start time.
    c.ends("a", "failed-soft", cause="compute node restarted while the task ran", ran=False)
    assert c.job("a").state == RUNNABLE and shown_attempts(c, "a") == 0
    assert c.state.stats["soft_failures"] == 0
    c.started()
    c.ends("a", "failed-soft", cause="compute node restarted while the task ran")
    assert shown_attempts(c, "a") == 1 and c.state.stats["soft_failures"] == 1


def test_jobs_queued_on_a_lost_node_are_given_back_their_attempt_when_it_returns() -> None:
    c = Cluster(computes=2, slots=1, prefetch=2)
    c.submit(*(spec(f"j{i}") for i in range(20)))  # deep: each node gets jobs ahead
    c.started()
    ref = c.compute("compute-0")
    on_it = sorted(ref.assigned)
    assert len(on_it) >= 2
    ran, queued = on_it[0], on_it[1:]
    tokens = {j: c.job(j).token for j in on_it}
    c.take(c.state.node_lost("compute", "compute-0"))
    assert all(shown_attempts(c, j) == 1 for j in on_it)  # not known yet which ran
    # It comes back: the one that ran ended failed soft with a start time,
    # those queued behind it with none.
    back = [TaskReport(ran, TaskState.DONE, tokens[ran], Outcome.FAILED_SOFT, cause="restarted", started=1.0)]
    back += [TaskReport(j, TaskState.DONE, tokens[j], Outcome.FAILED_SOFT, cause="restarted") for j in queued]
    c.add_compute("compute-0", 1, back)
    assert shown_attempts(c, ran) == 1
    assert all(shown_attempts(c, j) == 0 for j in queued)
    assert c.state.stats["soft_failures"] == 1 and c.state.charged == {}


def test_a_start_the_lost_node_never_answered_is_not_an_attempt() -> None:
    c = Cluster(computes=2)
    c.submit(spec("a"), spec("b"))
    answered, pending = [e for e in c.take(c.state.schedule_round()) if isinstance(e, Dispatch)]
    tokens = c.state.attempt_tokens(answered)
    starts = c.state.start_messages(answered, tokens, {}, {})
    c.state.starts_answered(answered, tokens, [TaskReport(s.job, TaskState.PENDING, s.token) for s in starts])
    c.take(c.state.dispatch_ended(answered, tokens, {}))
    # Both nodes are lost: one had said it took its job, the other had not answered.
    c.take(c.state.node_lost("compute", answered.node.node))
    c.take(c.state.node_lost("compute", pending.node.node))
    [took] = [j.id for j, _ in answered.items]
    [never] = [j.id for j, _ in pending.items]
    assert shown_attempts(c, took) == 1 and shown_attempts(c, never) == 0
    assert c.state.stats["soft_failures"] == 1


def _retry_dispatch(c: Cluster) -> tuple[Dispatch, dict[str, int]]:
    (d,) = [e for e in c.take(c.state.schedule_round()) if isinstance(e, Dispatch)]
    return d, c.state.attempt_tokens(d)


def test_a_retry_whose_outputs_could_not_be_created_was_never_sent_and_is_no_attempt() -> None:
    # A retry's outputs are created on storage before its start goes out
    # (dispatch.py retry_creates). The storage node does not answer (killed,
    # not yet found lost): the start is never sent, so the job ran once, not
    # twice, and it is placed afresh after a moment.
    c = Cluster(storages=2)
    c.submit(spec("a"))
    assert c.started() == ["a"]
    c.ends("a", "failed-soft", cause="worker died")
    d, tokens = _retry_dispatch(c)
    assert c.state.retry_creates(d), "a retry creates its outputs first"
    unsent = {"a": "creating outputs on storage-0: no connection within 3s"}
    assert c.state.start_messages(d, tokens, {}, unsent) == []
    c.take(c.state.dispatch_ended(d, tokens, {}, {}, unsent))
    a = c.job("a")
    assert shown_attempts(c, "a") == 1 and c.state.stats["soft_failures"] == 1
    assert a.placement is None and a.state == WAITING and "no connection" in a.cause
    c.clock.advance(HOLD_FIRST)
    c.take(c.state.release_due())
    assert c.started() == ["a"]
    c.ends("a")
    assert shown_attempts(c, "a") == 2


def test_a_start_whose_output_storage_node_is_gone_is_no_attempt() -> None:
    c = Cluster(storages=2)
    c.submit(spec("a"))
    d, tokens = _retry_dispatch(c)
    gone = c.job("a").placement[0]
    c.take(c.state.node_lost("storage", gone))
    failed: dict[str, str] = {}
    unsent: dict[str, str] = {}
    assert c.state.start_messages(d, tokens, failed, unsent) == []
    assert failed == {} and "is gone" in unsent["a"]
    c.take(c.state.dispatch_ended(d, tokens, failed, {}, unsent))
    assert shown_attempts(c, "a") == 0 and c.job("a").placement is None
