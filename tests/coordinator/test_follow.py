"""Following ahead: a waiting job starts on the node making its last input."""

from __future__ import annotations

from weft.actors.coordinator.graph import RUNNING, WAITING

from .harness import Cluster, out, spec


def test_a_dependent_follows_its_producer_on_that_node() -> None:
    c = Cluster(computes=2, slots=1, follow_ahead=1)
    c.submit(spec("a"), spec("b", "a"))
    [d] = c.round()
    assert [j.id for j, _ in d.items] == ["a", "b"]
    _, start = d.items[1]
    a, b = c.job("a"), c.job("b")
    assert start.after == {"in0": (a.id, a.token)}
    assert start.inputs["in0"][1] == out("a")
    assert start.to_wire()["after"] == {"in0": [a.id, a.token]}
    assert b.node == a.node and b.ahead and b.shown_state == WAITING
    assert b.summary()["attempts"] == 0  # not a try until its producer ends
    assert c.state.stats["followed"] == 1


def test_a_follower_takes_its_slot_when_the_producer_succeeds() -> None:
    c = Cluster(follow_ahead=1)
    c.submit(spec("a"), spec("b", "a"))
    c.round()
    c.ends("a")
    b = c.job("b")
    assert b.state == RUNNING and not b.ahead and b.started == c.clock.t
    assert "b" in c.compute().running


def test_follow_ahead_is_bounded_per_slot() -> None:
    c = Cluster(follow_ahead=1)
    c.submit(spec("a"), spec("b", "a"), spec("c", "b"))
    assert c.started() == ["a", "b"]
    c2 = Cluster(follow_ahead=2)
    c2.submit(spec("a"), spec("b", "a"), spec("c", "b"))
    assert c2.started() == ["a", "b", "c"]  # followers may follow followers


def test_follow_ahead_zero_starts_nothing_ahead() -> None:
    c = Cluster(follow_ahead=0)
    c.submit(spec("a"), spec("b", "a"))
    assert c.started() == ["a"]
    assert c.job("b").state == WAITING and c.job("b").node is None


def test_a_job_missing_inputs_from_two_producers_does_not_follow() -> None:
    c = Cluster(slots=2, follow_ahead=2)
    c.submit(spec("a"), spec("x"), spec("b", "a", "x"))
    assert sorted(c.started()) == ["a", "x"]
    assert c.job("b").state == WAITING and not c.job("b").ahead


def test_nothing_follows_while_runnable_work_waits() -> None:
    c = Cluster(slots=1, follow_ahead=2)
    c.submit(spec("a"), spec("b", "a"), spec("other"))
    assert c.started() == ["a"]  # `other` is runnable: b is not started ahead
