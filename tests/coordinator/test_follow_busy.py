"""Following while other work is runnable (planner.pick_busy_followers):
depth first, bounded, and not past a runnable job of higher priority."""

from __future__ import annotations

from weft.actors.coordinator.graph import RUNNABLE, RUNNING, WAITING

from .harness import Cluster, spec


def _pairs(n: int, priority: int = 0) -> list:
    """n producers, each with one consumer (the handoff workload's shape)."""
    out = []
    for i in range(n):
        out += [spec(f"p{i}", priority=priority), spec(f"c{i}", f"p{i}", priority=priority)]
    return out


def test_a_consumer_follows_its_producer_while_other_producers_are_runnable() -> None:
    c = Cluster(slots=1, follow_ahead=1)
    c.submit(*_pairs(4))
    assert c.started() == ["p0", "c0"]
    c0 = c.job("c0")
    assert c0.ahead and c0.node == c.job("p0").node and c.state.stats["followed"] == 1
    assert [c.job(f"p{i}").state for i in (1, 2, 3)] == [RUNNABLE] * 3
    c.ends("p0")
    assert c0.state == RUNNING and not c0.ahead  # it takes its producer's slot
    assert c.started() == []  # the slot is c0's: nothing else fits
    c.ends("c0")
    assert c.started() == ["p1", "c1"]


def test_a_follower_does_not_overtake_a_runnable_job_of_higher_priority() -> None:
    c = Cluster(slots=1, follow_ahead=1)
    c.submit(spec("a"), spec("b", "a"), spec("urgent", priority=5))
    assert c.started() == ["a"]  # `urgent` is left runnable: b waits behind it
    assert c.job("b").state == WAITING and not c.job("b").ahead
    assert c.job("urgent").state == RUNNABLE


def test_a_follower_of_equal_or_higher_priority_follows() -> None:
    c = Cluster(slots=1, follow_ahead=1)
    c.submit(spec("a"), spec("b", "a", priority=5), spec("urgent", priority=5))
    assert c.started() == ["a", "b"]
    c2 = Cluster(slots=1, follow_ahead=1)
    c2.submit(spec("a"), spec("b", "a"), spec("other"))
    assert c2.started() == ["a", "b"]


def test_with_runnable_work_a_chain_keeps_the_plain_bound() -> None:
    # The chain's deeper window (CHAIN_DEPTH) is for a node with nothing
    # else to do: with runnable work, follow_ahead per slot only.
    chain = [spec("j0")] + [spec(f"j{i}", f"j{i - 1}") for i in range(1, 6)]
    c = Cluster(slots=1, follow_ahead=1)
    c.submit(*chain, spec("other"))
    assert c.started() == ["j0", "j1"]


def test_a_node_held_at_its_bound_gets_followers_once_one_starts() -> None:
    # Two producers on a node of 2 slots with follow_ahead 1: each producer's
    # consumer follows; a third pair's producer is runnable meanwhile.
    c = Cluster(slots=2, follow_ahead=1)
    c.submit(*_pairs(3))
    first = c.started()
    assert sorted(first) == ["c0", "c1", "p0", "p1"]
    c.ends("p0")  # c0 takes the slot; p2 still has no room
    assert c.started() == []
    c.ends("c0")
    assert c.started() == ["p2", "c2"]


def test_a_follower_of_a_failed_producer_is_released_and_runs_again_later() -> None:
    c = Cluster(computes=2, slots=1, follow_ahead=1)
    c.submit(*_pairs(3))
    assert sorted(c.started()) == ["c0", "c1", "p0", "p1"]
    node = c.job("p0").node
    c.ends("p0", "failed-soft", cause="worker died")
    c.ends("c0", "failed-soft", cause="input not made", unmet=True)
    c0 = c.job("c0")
    assert c0.state != RUNNING and c0.summary()["attempts"] == 0 and "c0" not in c.compute(node).following
    assert c.state.stats["unmet"] == 1
    assert "p0" in c.started()  # the producer again, on the free node
    assert c.job("c0").state != RUNNING or c.job("c0").ahead  # never before its input
    ran = []
    for _ in range(10):  # end what runs, round after round, until every job ran
        c.started()
        running = [j for j in c.graph.jobs.values() if j.state == RUNNING and not j.ahead]
        if not running:
            break
        for j in running:
            ran.append(j.id)
            c.ends(j.id)
    assert ran.index("c0") > ran.index("p0")
    assert sorted(ran) == ["c0", "c1", "c2", "p0", "p1", "p2"]


def test_a_node_that_hit_its_bound_is_looked_at_again_without_a_new_batch() -> None:
    # A deep queue: the node gets several producers ahead (prefetch), but
    # only follow_ahead (1) consumer follows. When that one takes its slot,
    # the next round gives another running producer its consumer, though
    # nothing new is placed on the node (it is not below its low water).
    c = Cluster(slots=1, follow_ahead=1)
    c.submit(*_pairs(20))
    first = c.started()
    followers = [j for j in first if j.startswith("c")]
    producers = [j for j in first if j.startswith("p")]
    assert len(followers) == 1 and len(producers) > 2
    followed = "p" + followers[0][1:]
    c.ends(followed)
    second = c.started()
    assert len(second) == 1 and second[0].startswith("c") and "p" + second[0][1:] in producers
    assert c.job(second[0]).ahead
