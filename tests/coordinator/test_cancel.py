"""Cancellation in the coordinator state: at once for queued and waiting jobs
(and their dependents), `cancelling` for running ones until the node's word,
its loss or a timer settles it; replay after a restart."""

from __future__ import annotations

from weft.actors.coordinator.control import CANCEL_MARGIN
from weft.actors.coordinator.effects import Dispatch, JournalWrite
from weft.actors.coordinator.graph import (
    CANCELLED,
    CANCELLING,
    FAILED,
    RUNNABLE,
    SUCCEEDED,
    WAITING,
)
from weft.actors.coordinator.journal import Journal
from weft.actors.coordinator.replay import replay
from weft.actors.coordinator.state import CoordinatorState
from weft.protocol.enums import TaskState
from weft.protocol.tasks import TaskReport

from .harness import Clock, Cluster, sends, spec


def chain(c: Cluster) -> None:
    """a <- b <- c (each reads the one before), and d alone."""
    c.submit(spec("a"), spec("b", "a"), spec("c", "b"), spec("d"))


def test_a_queued_job_and_its_dependents_are_cancelled_at_once_naming_it() -> None:
    c = Cluster(slots=1)
    chain(c)
    c.submit(spec("x"))
    assert c.started() == ["a"]  # (demand: a first)
    effects = c.take(c.state.cancel([c.job("b")]))
    assert sends(effects, "cancel") == []  # nothing runs it
    assert c.job("b").state == CANCELLED and c.job("b").cause == "cancelled by user"
    assert c.job("c").state == CANCELLED and c.job("c").cause == "job b was cancelled"
    assert c.job("c").outcome == "cancelled"
    assert c.job("a").state == "running" and c.job("d").state == RUNNABLE


def test_no_dependents_leaves_them_to_fail_as_for_any_input_never_made() -> None:
    c = Cluster(slots=1)
    chain(c)
    c.started()
    c.take(c.state.cancel([c.job("b")], dependents=False))
    assert c.job("b").state == CANCELLED
    assert c.job("c").state == FAILED and "job b (weft.actors.builtins:concat) cancelled" in c.job("c").cause


def test_a_running_job_is_cancelling_until_its_node_reports_it_stopped() -> None:
    c = Cluster()
    c.submit(spec("a"), spec("b", "a"))
    c.started()
    effects = c.take(c.state.cancel([c.job("a")]))
    [msg] = sends(effects, "cancel")
    assert msg.endpoint == "tcp://compute-0:1" and msg.body.to_wire() == {"job": "a", "epoch": c.state.epoch}
    a = c.job("a")
    assert a.state == CANCELLING and a.summary()["state"] == "cancelling" and not a.done
    # Its dependents do not wait for the outcome.
    assert c.job("b").state == CANCELLED and c.job("b").cause == "job a was cancelled"
    # Its slot is still taken: the process may still be running.
    assert "a" in c.compute().assigned and c.started() == []
    c.ends("a", "cancelled", cause="cancelled by request")
    assert a.state == CANCELLED and a.outcome == "cancelled" and a.cause == "cancelled by user"
    assert "a" not in c.compute().assigned and "a" not in c.state.cancelling


def test_a_job_that_ended_before_the_cancel_took_keeps_its_outcome() -> None:
    c = Cluster()
    c.submit(spec("a"), spec("b"))
    c.started()
    c.take(c.state.cancel([c.job("a")]))
    c.ends("a")  # it succeeded first
    assert c.job("a").state == SUCCEEDED
    c.started()
    c.take(c.state.cancel([c.job("b")]))
    c.ends("b", "failed-hard", cause="exit code 3", exit_code=3)
    assert c.job("b").state == FAILED and c.job("b").cause == "exit code 3"
    assert c.state.cancelling == {}


def test_a_job_being_cancelled_that_fails_by_itself_first_is_not_retried() -> None:
    c = Cluster()
    s = spec("a")
    s.retries = 3  # its own failures would be retried, but it was cancelled meanwhile
    c.submit(s)
    c.started()
    c.take(c.state.cancel([c.job("a")]))
    c.ends("a", "failed-hard", cause="exit code 3", exit_code=3)
    c.clock.advance(60)
    assert c.job("a").state == FAILED and c.job("a").own == 0
    assert c.started() == []


def test_no_dependents_on_a_running_job_lets_them_run_if_it_succeeds() -> None:
    c = Cluster()
    c.submit(spec("a"), spec("b", "a"))
    c.started()
    c.take(c.state.cancel([c.job("a")], dependents=False))
    assert c.job("b").state == WAITING
    c.ends("a")
    assert c.job("a").state == SUCCEEDED and c.job("b").state == RUNNABLE


def test_a_soft_end_of_a_cancelling_job_is_its_cancel_not_a_retry() -> None:
    c = Cluster()
    c.submit(spec("a"))
    c.started()
    c.take(c.state.cancel([c.job("a")]))
    c.ends("a", "failed-soft", cause="compute node shutting down")
    assert c.job("a").state == CANCELLED and c.started() == []


def test_a_lost_node_settles_its_cancelling_jobs() -> None:
    c = Cluster(computes=2)
    c.submit(spec("a"))
    c.started()
    node = c.job("a").node
    c.take(c.state.cancel([c.job("a")]))
    c.take(c.state.node_lost("compute", node))
    a = c.job("a")
    assert a.state == CANCELLED and f"compute node {node} lost" in a.cause
    assert c.started() == []  # not queued again


def test_a_node_that_never_answers_is_settled_after_the_grace_and_a_margin() -> None:
    c = Cluster()
    s = spec("a")
    s.cancel_time = 2.0
    c.submit(s)
    c.started()
    c.take(c.state.cancel([c.job("a")]))
    c.clock.advance(2.0 + CANCEL_MARGIN - 0.1)
    c.take(c.state.settle_overdue())
    assert c.job("a").state == CANCELLING
    c.clock.advance(0.2)
    effects = c.take(c.state.settle_overdue())
    a = c.job("a")
    assert a.state == CANCELLED and "did not confirm it stopped" in a.cause
    assert any(isinstance(e, JournalWrite) and a in e.changed for e in effects)
    # Its late report changes nothing.
    c.ends("a", "cancelled", node="compute-0")
    assert a.state == CANCELLED


def test_cancelling_a_finished_or_cancelling_job_changes_nothing() -> None:
    c = Cluster()
    c.submit(spec("a"), spec("b"))
    c.run("a")
    c.started()
    c.take(c.state.cancel([c.job("b")]))
    effects = c.take(c.state.cancel([c.job("a"), c.job("b")]))
    assert sends(effects, "cancel") == [] and not any(isinstance(e, JournalWrite) for e in effects)
    assert c.job("a").state == SUCCEEDED and c.job("b").state == CANCELLING


def test_a_cancel_while_the_start_is_on_its_way_is_sent_once_the_node_took_it() -> None:
    c = Cluster()
    c.submit(spec("a"))
    [d] = [e for e in c.take(c.state.schedule_round()) if isinstance(e, Dispatch)]
    tokens = c.state.attempt_tokens(d)
    starts = c.state.start_messages(d, tokens, {}, {})
    effects = c.take(c.state.cancel([c.job("a")]))
    assert sends(effects, "cancel") == []  # a cancel now could overtake the start
    c.state.starts_answered(d, tokens, [TaskReport(s.job, TaskState.PENDING, s.token) for s in starts])
    effects = c.take(c.state.dispatch_ended(d, tokens, {}))
    assert [m.body.job for m in sends(effects, "cancel")] == ["a"]
    assert c.job("a").state == CANCELLING


def test_a_cancel_before_the_start_was_built_never_starts_it() -> None:
    c = Cluster()
    c.submit(spec("a"))
    [d] = [e for e in c.take(c.state.schedule_round()) if isinstance(e, Dispatch)]
    tokens = c.state.attempt_tokens(d)
    c.take(c.state.cancel([c.job("a")]))
    assert c.state.start_messages(d, tokens, {}, {}) == []
    c.take(c.state.dispatch_ended(d, tokens, {}))
    assert c.job("a").state == CANCELLED


def test_replay_keeps_cancelled_and_settles_cancelling(tmp_path) -> None:
    clock = Clock()
    journal = Journal(tmp_path / "j.sqlite")
    c = Cluster(journal=journal, clock=clock, computes=2, slots=1)
    c.submit(spec("a"), spec("b"), spec("q"), spec("q2", "q"))
    c.started()  # q (most needed) and a run; b waits for a slot
    c.take(c.state.cancel([c.job("q")]))
    c.take(c.state.cancel([c.job("a")]))
    assert c.job("a").state == CANCELLING
    node_a, token_a = c.job("a").node, c.job("a").token
    journal.close()

    journal = Journal(tmp_path / "j.sqlite")
    state = CoordinatorState(epoch=2, wall=clock.wall, mono=clock.mono)
    replay(journal, state)
    g = state.graph
    assert g.jobs["q"].state == CANCELLED and g.jobs["q2"].state == CANCELLED
    a = g.jobs["a"]
    assert a.state == CANCELLED and "coordinator restarted while cancelling" in a.cause
    assert g.jobs["b"].state == WAITING or g.jobs["b"].state == RUNNABLE
    # Its node still runs it: told to stop when its inventory shows it.
    c2 = Cluster(state=state, clock=clock, computes=0, storages=1)
    c2.take(state.meet("compute", node_a, f"tcp://{node_a}:1", None))
    ref = state.computes[node_a]
    effects = c2.take(state.compute_inventory(ref, 1, [TaskReport("a", TaskState.RUNNING, token_a)]))
    assert [m.body.job for m in sends(effects, "cancel")] == ["a"]
    assert a.state == CANCELLED
    journal.close()


def test_a_dependent_started_ahead_on_a_node_is_told_to_stop_too() -> None:
    c = Cluster(follow_ahead=1, slots=2)
    c.submit(spec("a"), spec("b", "a"))
    assert c.started() == ["a", "b"]  # b follows a on its node
    effects = c.take(c.state.cancel([c.job("a")]))
    assert sorted(m.body.job for m in sends(effects, "cancel")) == ["a", "b"]
    assert c.job("b").state == CANCELLED and "b" not in c.compute().assigned
