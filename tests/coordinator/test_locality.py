"""Locality, in-process: a job whose large input was made on a compute node
is placed on that node when it has room (the node may still hold the bytes
in its value cache: actors/compute/valuecache.py), or waits a moment
(placing.NEAR_HOLD) for room there when the input is 1 MiB or more; small
inputs, which travel inline in the start, do not pull a job anywhere."""

from __future__ import annotations

import dataclasses

import pytest

from weft.actors.coordinator import placing
from weft.actors.coordinator.placing import NEAR_HOLD
from weft.protocol.enums import Outcome, TaskState
from weft.protocol.tasks import TaskReport

from .harness import Cluster, spec

MIB = 1 << 20


def ends_with(c: Cluster, name: str, size: int, data: bytes | None) -> None:
    """`name` succeeds on its node, its `result` stored with `size` bytes (and `data`, when small)."""
    job = c.job(name)
    stored = {"result": [(job.placement or ["storage-0"])[0], size, data]}
    c.task_news(job.node, TaskReport(name, TaskState.DONE, job.token, Outcome.SUCCESS, 0, None, None, None,
                                     False, stored, c.clock.wall()))


def both_made_on_a(c: Cluster) -> None:
    """p0 and p1 run on `a` (the only node then); `b` joins, emptier, after."""
    c.submit(spec("p0"), spec("p1"), spec("q0", "p0"), spec("q1", "p1"))
    assert sorted(c.started()) == ["p0", "p1"]
    assert {c.job("p0").node, c.job("p1").node} == {"a"}
    c.add_compute("b", slots=2)


def test_consumers_of_large_values_go_where_the_values_were_made() -> None:
    c = Cluster(computes=0)
    c.add_compute("a", slots=2)
    both_made_on_a(c)
    ends_with(c, "p0", 10 * MIB, None)
    ends_with(c, "p1", 10 * MIB, None)
    assert sorted(c.started()) == ["q0", "q1"]
    # Placed by room alone, one of them would go to the idle `b`.
    assert c.job("q0").node == "a" and c.job("q1").node == "a"


def test_small_inputs_do_not_pull_consumers() -> None:
    c = Cluster(computes=0)
    c.add_compute("a", slots=2)
    both_made_on_a(c)
    ends_with(c, "p0", 3, b"abc")
    ends_with(c, "p1", 3, b"abc")
    assert sorted(c.started()) == ["q0", "q1"]
    assert {c.job("q0").node, c.job("q1").node} == {"a", "b"}  # spread by room, as before


def full_a_with_q0_ready(c: Cluster, size: int) -> dict:
    """q0's input (`size` bytes) made on `a`; `a` (one slot) then taken by a
    pinned job of higher priority while an idle `b` has room: one round's starts."""
    c.add_compute("a", slots=1)
    c.submit(spec("p0"), spec("q0", "p0"))
    assert c.started() == ["p0"]
    ends_with(c, "p0", size, None)
    c.add_compute("b", slots=1)
    # Pinned to `a` and picked first (higher priority): `a` is full when q0's turn comes.
    c.submit(dataclasses.replace(spec("pinned", priority=5), node="a"))
    return {j.id: s for d in c.round() for j, s in d.items}


def test_a_full_producer_node_holds_a_consumer_back_only_a_moment() -> None:
    c = Cluster(computes=0)
    starts = full_a_with_q0_ready(c, 10 * MIB)
    assert list(starts) == ["pinned"]  # q0 waits for `a`, though `b` is idle
    assert c.job("q0").node is None
    # The scheduler is woken when the wait ends, and q0 goes where there is room.
    due = c.state.next_due()
    assert due is not None and due <= c.clock.mono() + NEAR_HOLD
    c.clock.advance(NEAR_HOLD)
    starts = {j.id: s for d in c.round() for j, s in d.items}
    assert list(starts) == ["q0"] and c.job("q0").node == "b"
    # q0's start names `a` as the node that may serve its input from memory.
    assert starts["q0"].near == {"in0": c.compute("a").endpoint}


def test_a_held_consumer_takes_the_room_its_producer_node_frees() -> None:
    c = Cluster(computes=0)
    full_a_with_q0_ready(c, 10 * MIB)
    assert c.job("q0").node is None
    c.clock.advance(NEAR_HOLD / 2)
    ends_with(c, "pinned", 3, b"abc")  # `a` has room again within the wait
    assert c.started() == ["q0"] and c.job("q0").node == "a"


def test_a_consumer_of_a_smaller_value_is_not_held() -> None:
    c = Cluster(computes=0)
    starts = full_a_with_q0_ready(c, 512 << 10)  # cached, but under NEAR_HOLD_MIN
    assert list(starts) == ["pinned", "q0"]
    assert c.job("q0").node == "b"


def test_the_node_holding_most_input_bytes_is_preferred() -> None:
    c = Cluster(computes=0)
    c.add_compute("a", slots=1)
    c.add_compute("b", slots=1)
    c.submit(spec("p0"), spec("p1"), spec("q", "p0", "p1"))
    assert sorted(c.started()) == ["p0", "p1"]
    where = c.job("p1").node
    assert c.job("p0").node != where
    ends_with(c, "p0", 2 * MIB, None)  # its first input, the smaller
    ends_with(c, "p1", 8 * MIB, None)
    assert c.started() == ["q"] and c.job("q").node == where


def near_of(c: Cluster, name: str) -> dict[str, str]:
    starts = {j.id: s for d in c.round() for j, s in d.items}
    return starts[name].near


def test_no_near_copy_for_small_inputs_nor_on_the_same_node() -> None:
    c = Cluster(computes=0)
    c.add_compute("a", slots=1)
    c.submit(spec("p0"), spec("p1"), spec("q0", "p0"), spec("q1", "p1"))
    assert c.started() == ["p0"]
    ends_with(c, "p0", 10 * MIB, None)
    assert near_of(c, "p1") == {}
    assert c.job("p1").node == "a"
    ends_with(c, "p1", 3, b"abc")
    assert near_of(c, "q0") == {}  # made on `a`, runs on `a`: its own cache
    c.add_compute("b", slots=1)
    assert near_of(c, "q1") == {}  # small: its bytes travel inline
    assert c.job("q1").node == "b"


def test_a_round_holds_back_at_most_hold_max_jobs(monkeypatch: pytest.MonkeyPatch) -> None:
    # One large value read by three jobs, `a` (one slot) busy: a round holds
    # HOLD_MAX of them for `a`; the others go to `b` at once and read the
    # value from `a`'s memory (a wide fan-out does not wait its turn there).
    monkeypatch.setattr(placing, "HOLD_MAX", 1)
    c = Cluster(computes=0)
    c.add_compute("a", slots=1)
    c.submit(spec("p0"))
    assert c.started() == ["p0"]
    ends_with(c, "p0", 10 * MIB, None)
    c.add_compute("b", slots=2)
    c.submit(dataclasses.replace(spec("pinned", priority=5), node="a"), spec("q0", "p0"), spec("q1", "p0"),
             spec("q2", "p0"))
    starts = {j.id: s for d in c.round() for j, s in d.items}
    assert sorted(starts) == ["pinned", "q1", "q2"]
    assert c.job("q0").node is None and c.job("q1").node == c.job("q2").node == "b"
