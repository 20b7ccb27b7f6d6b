"""News from an attempt we gave up on changes nothing (fencing by token)."""

from __future__ import annotations

from weft.actors.coordinator.graph import RUNNABLE, RUNNING, SUCCEEDED
from weft.actors.coordinator.state import CoordinatorState
from weft.protocol.enums import Outcome, TaskState
from weft.protocol.tasks import TaskReport

from .harness import Cluster, spec


def test_a_late_result_from_an_older_attempt_is_ignored() -> None:
    c = Cluster(computes=2, slots=1)
    c.submit(spec("a"), spec("blocker"))
    c.round()
    first_node, first_token = c.job("a").node, c.job("a").token
    other = next(n for n in c.state.computes if n != first_node)
    c.ends("blocker")
    # The first attempt's node looks lost; the job goes to the other node.
    c.take(c.state.node_lost("compute", first_node))
    ref = c.add_compute(first_node, 1)
    c.compute(other).slots = 1
    c.state.computes[first_node].ready = False  # only the other node takes work
    assert c.started() == ["a"]
    a = c.job("a")
    assert a.node == other and a.token > first_token
    # The old attempt ends with a failure: it must not fail the new one.
    c.task_news(ref.node, TaskReport("a", TaskState.DONE, first_token, Outcome.FAILED_HARD, None, "old attempt"))
    assert a.state == RUNNING and a.cause != "old attempt"
    c.ends("a", node=other)
    assert a.state == SUCCEEDED


def test_a_result_with_a_stale_token_from_the_same_node_is_ignored() -> None:
    c = Cluster()
    c.submit(spec("a"))
    c.started()
    token = c.job("a").token
    c.ends("a", "failed-soft", cause="flaky")
    assert c.started() == ["a"]
    c.ends("a", "failed-hard", token=token, cause="stale")
    assert c.job("a").state == RUNNING


def test_a_result_of_a_given_up_attempt_is_adopted_if_nothing_restarted_it() -> None:
    c = Cluster(computes=2, slots=1)
    c.submit(spec("a"))
    c.round()
    node = c.job("a").node
    ref = c.compute(node)
    token = c.job("a").token
    c.take(c.state.node_lost("compute", node))
    assert c.job("a").state == RUNNABLE
    st = {"result": ["storage-0", 3, b"abc"]}
    c.task_news(ref, TaskReport("a", TaskState.DONE, token, Outcome.SUCCESS, 0, None, None, None, False, st))
    assert c.job("a").state == SUCCEEDED


def test_tokens_grow_across_restarts() -> None:
    before = CoordinatorState(epoch=1)
    after = CoordinatorState(epoch=2)
    assert next(after.tokens) > next(before.tokens) + 1000


def test_a_fenced_coordinator_starts_nothing() -> None:
    c = Cluster()
    c.submit(spec("a"))
    c.state.fenced = True
    assert c.started() == []
    assert c.job("a").state == RUNNABLE
