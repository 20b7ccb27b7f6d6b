"""Locality, in-process: a job whose large input was made on a compute node
is placed on that node when it has room (the node may still hold the bytes
in its value cache: actors/compute/valuecache.py); small inputs, which travel
inline in the start, do not pull a job anywhere."""

from __future__ import annotations

import dataclasses

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


def test_a_full_producer_node_does_not_hold_a_consumer_back() -> None:
    c = Cluster(computes=0)
    c.add_compute("a", slots=1)
    c.submit(spec("p0"), spec("q0", "p0"))
    assert c.started() == ["p0"]
    ends_with(c, "p0", 10 * MIB, None)
    c.add_compute("b", slots=1)
    # Pinned to `a` and picked first (higher priority): `a` is full when q0's turn comes.
    c.submit(dataclasses.replace(spec("pinned", priority=5), node="a"))
    starts = {j.id: s for d in c.round() for j, s in d.items}
    assert list(starts) == ["pinned", "q0"]
    assert c.job("pinned").node == "a" and c.job("q0").node == "b"
    # q0's start names `a` as the node that may serve its input from memory.
    assert starts["q0"].near == {"in0": c.compute("a").endpoint}


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
