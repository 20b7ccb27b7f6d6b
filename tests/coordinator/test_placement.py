"""Placement rules in-process: memory packing, anti-starvation, workorders,
priority then deadline, hosts and pins, reasons for waiting, draining."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from weft.actors.coordinator.drain import DRAINED, set_drained
from weft.actors.coordinator.graph import RUNNABLE, RUNNING, WAITING
from weft.actors.coordinator.journal import Journal
from weft.actors.coordinator.replay import replay
from weft.actors.coordinator.state import CoordinatorState
from weft.protocol.enums import JobFailure

from .harness import Clock, Cluster, spec

MIB = 1 << 20


def job(name: str, **kw: object):  # noqa: ANN201
    return dataclasses.replace(spec(name), **kw)


def used_memory(c: Cluster, node: str = "c") -> int:
    return sum(c.job(j).spec.memory or 32 * MIB for j in c.compute(node).running)


def test_a_node_never_holds_more_memory_than_it_has() -> None:
    c = Cluster(computes=0)
    c.add_compute("c", slots=8, memory=512 * MIB)
    c.submit(*[job(f"j{i}", memory=200 * MIB) for i in range(4)], job("small", memory=100 * MIB))
    # 2 x 200 MiB (7 chunks each) and 100 MiB (4 chunks) would be 18 of 16 chunks.
    assert c.started() == ["j0", "j1"]
    assert c.started() == []
    c.ends("j0")
    assert c.started() == ["j2"]
    assert used_memory(c) <= 512 * MIB


def test_a_job_asking_nothing_packs_as_tiny() -> None:
    c = Cluster(computes=0)
    c.add_compute("c", slots=8, memory=64 * MIB)  # two chunks
    c.submit(job("a"), job("b"), job("t"))
    assert c.started() == ["a", "b"]
    assert c.job("t").state == RUNNABLE


def test_cpus_are_counted_per_job() -> None:
    c = Cluster(computes=0)
    c.add_compute("c", slots=4)
    c.submit(job("wide", cpus=3), job("two", cpus=2), job("one"))
    assert c.started() == ["wide", "one"]  # `two` waits; `one` fits beside `wide`
    c.ends("wide")
    assert c.started() == ["two"]


def test_a_big_job_is_not_starved_by_a_stream_of_small_ones() -> None:
    c = Cluster(computes=0)
    c.state.planner.placing.reserve_after = 10.0
    c.add_compute("c", slots=8, memory=256 * MIB)
    c.submit(job("s0", memory=128 * MIB), job("s1", memory=128 * MIB))
    assert c.started() == ["s0", "s1"]
    c.submit(job("big", memory=256 * MIB))
    started = []
    for i in range(2, 12):  # a small job ends and a new one arrives, again and again
        c.clock.advance(3)
        c.submit(job(f"s{i}", memory=128 * MIB))
        c.ends(next(iter(j for j in c.compute("c").running if j != "big")))
        started += c.started()
        if "big" in started:
            break
    assert "big" in started, started
    assert c.job("big").state == RUNNING
    # Small ones started while it was young, and none once it reserved the node.
    assert started[0].startswith("s")


def test_a_workorder_starts_on_a_full_node_and_is_counted() -> None:
    c = Cluster(computes=0)
    c.add_compute("c", slots=1)
    c.submit(job("batch1"))
    assert c.started() == ["batch1"]
    c.submit(job("batch2"), job("wo", job_class="workorder"))
    assert c.started() == ["wo"]
    assert c.job("batch2").state == RUNNABLE
    assert c.state.stats["overcommits"] == 1
    assert c.compute("c").overcommits == 1


def test_priority_then_deadline_then_age_on_one_slot() -> None:
    c = Cluster(computes=0)
    c.add_compute("c", slots=1)
    now = c.clock.wall()
    c.submit(job("plain"), job("late_dl", deadline=now + 600), job("soon_dl", deadline=now + 60),
             job("urgent", priority=5, deadline=now + 6000))
    order = []
    for _ in range(4):
        [picked] = c.started()
        order.append(picked)
        c.ends(picked)
    assert order == ["urgent", "soon_dl", "late_dl", "plain"]


def test_a_job_past_its_deadline_is_late() -> None:
    c = Cluster(computes=0)
    c.add_compute("c", slots=1)
    now = c.clock.wall()
    c.submit(job("busy"), job("dl", deadline=now + 5), job("ok", deadline=now + 10_000))
    c.started()
    assert "late" not in c.job("dl").summary(now)
    assert c.job("dl").summary(now + 6)["late"] is True
    assert "late" not in c.job("ok").summary(now + 6)


def test_an_unknown_host_waits_with_its_reason_then_fails_its_pending_timeout() -> None:
    c = Cluster(computes=0)
    c.add_compute("c", slots=2, host="a1")
    c.submit(job("gpu", host="gpu7", pending_timeout=30.0), job("anywhere"))
    assert c.started() == ["anywhere"]
    assert c.job("gpu").state == WAITING
    assert c.state.planner.placing.waiting.text("gpu") == "host gpu7 unknown"
    c.clock.advance(31)
    c.take(c.state.release_due())
    j = c.job("gpu")
    assert j.code == JobFailure.PENDING_TIMEOUT
    assert j.detail.startswith("host-unknown")


def test_a_host_that_left_is_down_since_then_and_its_return_places_the_job() -> None:
    c = Cluster(computes=0)
    c.add_compute("c", slots=1, host="a1")
    c.add_compute("b", slots=1, host="b2")
    c.round()
    c.take(c.state.node_lost("compute", "b"))
    c.submit(job("on_b2", host="b2"))
    assert c.started() == []
    assert c.state.planner.placing.waiting.text("on_b2").startswith("host b2 down since ")
    c.add_compute("b", slots=1, host="b2")
    assert c.started() == ["on_b2"]
    assert c.job("on_b2").node == "b"
    assert c.state.planner.placing.waiting.text("on_b2") is None


def test_resources_no_node_has_wait_as_no_capacity() -> None:
    c = Cluster(computes=0)
    c.add_compute("c", slots=2, memory=1 << 30)
    c.submit(job("huge", memory=4 << 30))
    assert c.started() == []
    assert c.state.planner.placing.waiting.get("huge").code == "no-capacity"
    assert c.state.planner.placing.waiting.text("huge") == "no compute node with 4 GiB free"


def test_pinned_to_a_node_and_preferring_a_host() -> None:
    c = Cluster(computes=0)
    c.add_compute("c0", slots=4, host="h0")
    c.add_compute("c1", slots=4, host="h1")
    c.submit(job("pinned", node="c1"), job("by_host", host="h0"), job("prefers", prefer_host="h1"))
    c.round()
    assert c.job("pinned").node == "c1"
    assert c.job("by_host").node == "c0"
    assert c.job("prefers").node == "c1"


def test_a_drained_compute_node_gets_no_new_work_until_undrained() -> None:
    c = Cluster(computes=0)
    c.add_compute("c0", slots=1)
    c.add_compute("c1", slots=1)
    c.submit(job("first"))
    assert c.started() == ["first"]
    busy = c.job("first").node
    idle = "c1" if busy == "c0" else "c0"
    view = set_drained(c.state, idle, True)
    assert view["drained"] is True
    c.submit(job("second"))
    assert c.started() == []
    set_drained(c.state, idle, False)
    assert c.started() == ["second"]
    assert c.job("second").node == idle


def test_a_resubmit_asking_other_resources_is_told_it_keeps_the_first() -> None:
    c = Cluster(computes=0)
    c.add_compute("c", slots=1)
    c.submit(job("same", memory=64 * MIB))
    [again] = c.submit(job("same", memory=128 * MIB, job_class="workorder"))
    assert again.differs == ["memory", "class"]
    assert c.job("same").spec.memory == 64 * MIB


def test_drains_survive_a_coordinator_restart(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    journal = Journal(path)
    journal.set_meta(DRAINED, {"compute": ["c1"], "storage": ["s1"]})
    journal.close()
    clock = Clock()
    state = CoordinatorState(epoch=2, wall=clock.wall, mono=clock.mono, follow_ahead=0)
    replay(Journal(path), state)
    c = Cluster(state=state, clock=clock, storages=0, computes=0)
    c.add_storage("s0")
    c.add_storage("s1")
    c.add_compute("c0", slots=1)
    c.add_compute("c1", slots=1)
    assert c.state.computes["c1"].drained and not c.state.computes["c0"].drained
    assert c.state.storages["s1"].drained and c.state.repair.drained == {"s1"}
    c.submit(job("x"), job("y"))
    assert c.started() == ["x"] and c.job("x").node == "c0" and c.job("x").placement == ["s0"]


def test_each_job_goes_to_the_node_with_the_most_room_first_listed_among_equals() -> None:
    # The planner keeps its candidates in a heap (placing.Rooms): the picks
    # must be what a max() over the nodes' room, taken per job, would give.
    c = Cluster(computes=0)
    for name, slots in (("a", 2), ("b", 4), ("c", 3)):
        c.add_compute(name, slots=slots)
    c.submit(*[job(f"j{i}") for i in range(9)])
    c.round()
    picked = sorted((c.job(f"j{i}") for i in range(9)), key=lambda j: j.token)
    assert [j.node for j in picked] == ["b", "b", "c", "a", "b", "c", "a", "b", "c"]
