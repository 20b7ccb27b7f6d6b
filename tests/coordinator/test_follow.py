"""Following ahead: a waiting job starts on the node making its last input."""

from __future__ import annotations

from weft.actors.coordinator import news
from weft.actors.coordinator.effects import KICK, Dispatch
from weft.actors.coordinator.graph import RUNNING, WAITING
from weft.actors.coordinator.planner import CHAIN_DEPTH
from weft.protocol.enums import Outcome, TaskState
from weft.protocol.tasks import TaskReport

from .harness import Cluster, out, spec, wire


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
    # Siblings (several jobs waiting on one producer): `follow_ahead` per slot.
    c = Cluster(follow_ahead=1)
    c.submit(spec("a"), spec("b", "a"), spec("c", "a"))
    assert len(c.started()) == 2
    c2 = Cluster(slots=2, follow_ahead=1)
    c2.submit(spec("a"), spec("b", "a"), spec("c", "a"), spec("d", "a"))
    assert len(c2.started()) == 3


def test_a_chain_follows_deeper_than_siblings() -> None:
    # A chain's links run one after another anyway: CHAIN_DEPTH times as many
    # may wait on the node, and followers follow followers.
    chain = [spec("j0")] + [spec(f"j{i}", f"j{i - 1}") for i in range(1, 10)]
    c = Cluster(follow_ahead=2)
    c.submit(*chain)
    assert c.started() == [f"j{i}" for i in range(1 + 2 * CHAIN_DEPTH)]
    c2 = Cluster(follow_ahead=1)
    c2.submit(*chain)
    assert c2.started() == [f"j{i}" for i in range(1 + CHAIN_DEPTH)]


def test_a_chain_is_topped_up_as_its_links_end() -> None:
    chain = [spec("j0")] + [spec(f"j{i}", f"j{i - 1}") for i in range(1, 12)]
    c = Cluster(follow_ahead=1)
    c.submit(*chain)
    c.round()
    c.ends("j0")
    [d] = c.round()
    assert [j.id for j, _ in d.items] == [f"j{CHAIN_DEPTH + 1}"]  # the one freed place
    assert len(c.compute().following) == CHAIN_DEPTH


def test_siblings_do_not_take_a_chains_deeper_window() -> None:
    # `a` has two dependents: they are siblings, held to follow_ahead per slot
    # even when a chain could go deeper.
    c = Cluster(follow_ahead=1)
    c.submit(spec("a"), spec("b", "a"), spec("c", "a"), spec("d", "a"))
    assert len(c.started()) == 2


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


def _news_round(c: Cluster, name: str) -> list:
    """`name` ends, its news handled as the shell's poller does (task_news_round)."""
    job = c.job(name)
    report = TaskReport(name, TaskState.DONE, job.token, Outcome.SUCCESS, 0, None, None, None, False,
                        {"result": [job.placement[0], 3, b"abc"]}, c.clock.wall())
    events = wire([[1, "task", report.to_wire()]])
    return c.take(c.state.task_news_round(c.compute(job.node), news.task_ends(events)))


def test_a_links_end_brings_the_next_link_in_the_same_wake_up() -> None:
    chain = [spec("j0")] + [spec(f"j{i}", f"j{i - 1}") for i in range(1, 8)]
    c = Cluster(follow_ahead=1)
    c.submit(*chain)
    c.round()
    effects = _news_round(c, "j0")
    assert KICK not in effects  # no scheduler pass in between
    [d] = [e for e in effects if isinstance(e, Dispatch)]
    assert [j.id for j, _ in d.items] == [f"j{CHAIN_DEPTH + 1}"]


def test_with_runnable_work_the_scheduler_gathers_the_news() -> None:
    c = Cluster(computes=2, follow_ahead=1)
    c.submit(spec("a"), spec("b", "a"), spec("c", "a"))
    c.round()
    effects = _news_round(c, "a")  # c (a sibling not followed) is runnable now
    assert KICK in effects and not [e for e in effects if isinstance(e, Dispatch)]
    assert c.started() == ["c"]
