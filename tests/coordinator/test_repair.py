"""Repair decisions, in-process: finished objects kept at their replica count
(copies planned storage to storage, bounded, retried; extra copies trimmed)."""

from __future__ import annotations

from weft.actors.coordinator import news
from weft.actors.coordinator.effects import Copy, Trim
from weft.actors.coordinator.repair import COPY_DEADLINE
from weft.protocol.enums import ObjectState
from weft.protocol.objects import ObjectInfo

from .harness import Cluster, spec, wire


def finished(c: Cluster, name: str, *nodes: str) -> None:
    for node in nodes:
        c.object_finished(name, node)


def deleted(c: Cluster, name: str, node: str) -> None:
    ref = c.state.storages[node]
    event = [1, "deleted", ObjectInfo(name, ObjectState.FINISHED, 3).to_wire()]
    c.take(c.state.storage_events(ref, news.storage_events(wire([event]))))


def plan(c: Cluster) -> list:
    return c.take(c.state.repair_round())


def copies(effects: list) -> list[tuple[str, str, str]]:
    """(object, target node, source endpoint) of every copy asked for."""
    return [(name, e.target.node, src) for e in effects if isinstance(e, Copy) for name, src in e.items]


def trims(effects: list) -> list[tuple[str, str]]:
    return [(name, e.storage.node) for e in effects if isinstance(e, Trim) for name in e.names]


def test_nothing_is_planned_when_every_object_is_at_its_count() -> None:
    c = Cluster(storages=3, replicas=2)
    for i in range(5):
        finished(c, f"u{i}/result", "storage-0", "storage-1")
    c.clock.advance(60)
    assert not c.state.repair.busy
    assert plan(c) == []
    assert c.state.repair.stats()["under_replicated"] == 0


def test_a_lost_nodes_objects_are_copied_to_nodes_without_a_copy() -> None:
    c = Cluster(storages=3, replicas=2, computes=1, slots=4)
    c.submit(*(spec(f"j{i}") for i in range(4)))
    c.round()
    for i in range(4):
        job = c.job(f"j{i}")
        a, b = job.placement
        c.ends(job.id)  # stored on its first node ...
        finished(c, f"j{i}/result", b)  # ... and its second replica announced
    assert plan(c) == []
    c.take(c.state.node_lost("storage", "storage-1"))
    hit = {n for n, o in c.graph.objects.items() if o.state == "finished" and len(o.locs) == 1}
    assert hit, "storage-1 held some copies"
    assert c.state.repair.stats()["under_replicated"] == len(hit)
    c.clock.advance(2)
    planned = copies(plan(c))
    assert sorted(n for n, _, _ in planned) == sorted(hit)
    for name, target, source in planned:
        obj = c.graph.objects[name]
        assert target != "storage-1" and target not in obj.locs
        assert source == c.state.storages[obj.locs[0]].endpoint
    # Asked once: a second round while they are under way asks nothing again.
    assert copies(plan(c)) == []
    for name, target, _ in planned:
        finished(c, name, target)
    stats = c.state.repair.stats()
    assert stats["under_replicated"] == 0 and stats["repair_in_flight"] == 0
    assert stats["repair_copied"] == len(hit)
    assert all(len(c.graph.objects[n].locs) == 2 for n in hit)


def test_a_write_still_announcing_its_second_replica_is_not_copied_yet() -> None:
    c = Cluster(storages=3, replicas=2, computes=1)
    c.submit(spec("a"))
    c.round()
    c.ends("a")  # one replica announced; the other node has not spoken yet
    c.clock.advance(5)
    assert copies(plan(c)) == []
    c.clock.advance(30)  # it never will (dropped from the write): copy it
    planned = copies(plan(c))
    assert [n for n, _, _ in planned] == ["a/result"]


def test_a_replica_reported_dropped_is_copied_without_waiting_for_its_news() -> None:
    c = Cluster(storages=3, replicas=2, computes=1)
    c.submit(spec("a"))
    c.round()
    c.ends("a")
    c.state.repair.dropped("a/result")  # the writer says the other replica was dropped
    c.clock.advance(0.5)
    assert [n for n, _, _ in copies(plan(c))] == ["a/result"]


def test_a_task_report_naming_a_dropped_replica_starts_its_copy_without_waiting() -> None:
    c = Cluster(storages=3, replicas=2, computes=1)
    c.submit(spec("a"))
    c.round()
    c.ends("a", dropped=[["a/result", "tcp://127.0.0.1:9"]])  # as the compute node's `done` says it
    c.clock.advance(0.5)
    assert [n for n, _, _ in copies(plan(c))] == ["a/result"]


def test_copies_in_flight_are_bounded_per_node_and_in_all() -> None:
    c = Cluster(storages=5, replicas=2, repair_per_node=2, repair_total=3)
    names = [f"u{i}/result" for i in range(20)]
    for i, name in enumerate(names):
        finished(c, name, "storage-0" if i % 2 else "storage-2", "storage-1")
    c.take(c.state.node_lost("storage", "storage-1"))
    done: set[str] = set()
    for _ in range(40):  # bounded: 20 objects, at least one copy lands per round
        c.clock.advance(20)
        planned = copies(plan(c))
        flights = c.state.repair.flights
        assert len(flights) <= 3
        for node in c.state.storages:
            assert sum(f.target == node for f in flights.values()) <= 2
            assert sum(f.source == node for f in flights.values()) <= 2
        for name, target, _ in planned:
            finished(c, name, target)
            done.add(name)
        if len(done) == len(names):
            break
    assert done == set(names)
    assert c.state.repair.stats()["under_replicated"] == 0


def test_copies_in_flight_to_one_node_are_bounded() -> None:
    c = Cluster(storages=4, replicas=2, repair_per_node=2, repair_total=10)
    for i in range(8):
        finished(c, f"u{i}/result", "storage-0" if i % 2 else "storage-3", "storage-1")
    for full in ("storage-0", "storage-3"):  # said no-space: storage-2 is the only target
        c.state.storages[full].full_until = c.clock.t + 1000
    c.take(c.state.node_lost("storage", "storage-1"))
    c.clock.advance(20)
    planned = copies(plan(c))
    assert [t for _, t, _ in planned] == ["storage-2", "storage-2"]
    assert copies(plan(c)) == []
    finished(c, planned[0][0], "storage-2")
    assert len(copies(plan(c))) == 1


def test_copies_read_from_one_node_are_bounded() -> None:
    c = Cluster(storages=5, replicas=2, repair_per_node=2, repair_total=10)
    for i in range(8):
        finished(c, f"u{i}/result", "storage-0", "storage-1")
    c.take(c.state.node_lost("storage", "storage-1"))
    c.clock.advance(20)
    planned = copies(plan(c))  # three nodes could take copies; one can give them
    assert len(planned) == 2 and {src for _, _, src in planned} == {"tcp://storage-0:1"}
    assert len({t for _, t, _ in planned}) == 2  # spread over the targets


def test_a_failed_copy_is_tried_again_after_a_backoff_elsewhere() -> None:
    c = Cluster(storages=4, replicas=2)
    finished(c, "u/result", "storage-0", "storage-1")
    c.take(c.state.node_lost("storage", "storage-1"))
    c.clock.advance(20)
    [(name, first, _)] = copies(plan(c))
    deleted(c, name, first)  # the copy failed there: its partial bytes removed
    assert c.state.repair.stats()["repair_failed"] == 1
    assert copies(plan(c)) == []  # not at once
    c.clock.advance(1.5)
    [(_, second, _)] = copies(plan(c))
    assert second != first
    # No news at all from the target: failed at its deadline, tried again later.
    c.clock.advance(COPY_DEADLINE + 1)
    assert copies(plan(c)) == []
    assert c.state.repair.stats()["repair_failed"] == 2
    c.clock.advance(3)
    assert len(copies(plan(c))) == 1


def test_a_target_that_says_it_has_the_object_is_not_asked_again_at_once() -> None:
    c = Cluster(storages=4, replicas=2)
    finished(c, "u/result", "storage-0", "storage-1")
    c.take(c.state.node_lost("storage", "storage-1"))
    c.clock.advance(20)
    [(name, first, _)] = copies(plan(c))
    c.state.copies_answered(c.state.storages[first], {name: "exists"})
    assert copies(plan(c)) == []
    c.clock.advance(1.5)
    [(_, second, _)] = copies(plan(c))
    assert second != first and c.state.repair.stats()["repair_failed"] == 0


def test_extra_copies_are_trimmed_on_the_busiest_node_one_at_a_time() -> None:
    c = Cluster(storages=4, replicas=2)
    c.state.storages["storage-3"].objects = 30  # the busiest (its count from inventory and events)
    c.state.storages["storage-1"].objects = 20
    finished(c, "u/result", "storage-0", "storage-1", "storage-2", "storage-3")
    assert c.state.repair.stats()["over_replicated"] == 1
    assert trims(plan(c)) == [("u/result", "storage-3")]
    assert trims(plan(c)) == []  # its deletion is not yet reported: nothing more
    deleted(c, "u/result", "storage-3")
    assert trims(plan(c)) == [("u/result", "storage-1")]
    deleted(c, "u/result", "storage-1")
    assert len(c.graph.objects["u/result"].locs) == 2
    assert trims(plan(c)) == [] and c.state.repair.stats()["repair_trimmed"] == 2


def test_the_last_copy_is_never_trimmed() -> None:
    c = Cluster(storages=2, replicas=1)
    finished(c, "u/result", "storage-0", "storage-1")
    [(_, node)] = trims(plan(c))
    deleted(c, "u/result", node)
    for _ in range(3):
        c.clock.advance(60)
        assert trims(plan(c)) == []
    assert len(c.graph.objects["u/result"].locs) == 1


def test_a_copy_on_a_node_not_yet_ready_does_not_count_for_trimming() -> None:
    c = Cluster(storages=2, replicas=1)
    finished(c, "u/result", "storage-0", "storage-1")
    c.state.storages["storage-1"].ready = False  # e.g. restarted: its inventory not taken yet
    assert trims(plan(c)) == []  # storage-0's copy is the only one that surely is there


def test_a_copy_a_running_job_reads_is_not_trimmed_until_it_ends() -> None:
    c = Cluster(storages=3, replicas=1, computes=1)
    c.submit(spec("a"))
    c.round()
    c.ends("a")
    c.submit(spec("b", "a"))
    c.round()  # b runs, reading a/result
    finished(c, "a/result", "storage-1" if c.graph.objects["a/result"].locs[0] != "storage-1" else "storage-2")
    assert trims(plan(c)) == []
    c.ends("b")
    assert [n for n, _ in trims(plan(c))] == ["a/result"]


def test_a_node_back_with_its_copies_gets_them_trimmed_not_copied_again() -> None:
    c = Cluster(storages=3, replicas=2)
    finished(c, "u/result", "storage-0", "storage-1")
    c.take(c.state.node_lost("storage", "storage-1"))
    c.clock.advance(20)
    [(name, target, _)] = copies(plan(c))
    finished(c, name, target)
    # storage-1 comes back on its data dir, with its old copy.
    c.add_storage("storage-1", [ObjectInfo("u/result", ObjectState.FINISHED, 3)])
    assert sorted(c.graph.objects["u/result"].locs) == ["storage-0", "storage-1", "storage-2"]
    assert copies(plan(c)) == [] and len(trims(c.effects)) == 1
