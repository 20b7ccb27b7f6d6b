"""Empty outputs held by the coordinator, in-process: a task that made an
output empty reports it stored nowhere ([None, 0, b""]); the job succeeds
with no storage news, readers get the (empty) bytes inline with no copy to
read, the journal brings it back after a restart, and losing storage
nodes neither loses it nor reruns its job."""

from __future__ import annotations

from pathlib import Path

from weft.actors.coordinator import gc
from weft.actors.coordinator.graph import FINISHED, RUNNABLE, SUCCEEDED
from weft.actors.coordinator.journal import Journal
from weft.protocol.enums import ObjectState, Outcome, TaskState
from weft.protocol.objects import ObjectInfo
from weft.protocol.tasks import Start, TaskReport

from .harness import Cluster, out, spec
from .test_replay import restart

EMPTY = [None, 0, b""]


def ends_empty(c: Cluster, name: str) -> None:
    """`name`'s task ends well, its output `result` empty and written nowhere."""
    job = c.job(name)
    c.task_news(job.node, TaskReport(name, TaskState.DONE, job.token, Outcome.SUCCESS, 0,
                                     stored={"result": list(EMPTY)}, started=c.clock.wall()))


def start_of(c: Cluster, name: str) -> Start:
    """The Start message of `name` in the next round, through its wire form."""
    for d in c.round():
        for job, start in d.items:
            if job.id == name:
                return Start.from_wire(start.to_wire())
    raise AssertionError(f"{name} was not started")


def test_an_empty_output_finishes_its_job_and_reaches_its_reader_inline() -> None:
    c = Cluster()
    c.submit(spec("a"), spec("b", "a"))
    assert c.started() == ["a"]
    ends_empty(c, "a")
    assert c.job("a").state == SUCCEEDED  # no storage event needed
    obj = c.graph.objects[out("a")]
    assert obj.state == FINISHED and not obj.locs and obj.data == b""
    assert c.job("b").state == RUNNABLE
    start = start_of(c, "b")
    assert start.inline == {"in0": b""}
    assert start.inputs == {"in0": ([], out("a"))}


def test_an_empty_output_is_back_after_a_restart_and_storage_saying_empty_does_not_undo_it(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    c = Cluster(journal=Journal(path))
    c.submit(spec("a"))
    assert c.started() == ["a"]
    ends_empty(c, "a")
    c2 = restart(path, c)
    assert c2.job("a").state == SUCCEEDED and c2.job("a").empty == ("result",)
    # Storage still has the object as the coordinator created it: empty, never written.
    c2.add_storage("storage-0", [ObjectInfo(out("a"), ObjectState.EMPTY, 0)])
    c2.add_compute("compute-0", 1)
    c2.submit(spec("b", "a"))
    assert c2.graph.objects[out("a")].state == FINISHED
    assert start_of(c2, "b").inline == {"in0": b""}


def test_losing_every_storage_node_neither_loses_an_empty_output_nor_reruns_its_job() -> None:
    c = Cluster(storages=2)
    c.submit(spec("a"))
    assert c.started() == ["a"]
    ends_empty(c, "a")
    for node in list(c.state.storages):
        c.state._storage_lost(c.state.storages[node])
    c.submit(spec("b", "a"))
    c.clock.advance(3600.0)
    c.take(c.state.regenerate_lost())
    assert c.graph.objects[out("a")].state == FINISHED
    assert c.job("a").state == SUCCEEDED and c.state.stats["lineage_reruns"] == 0
    assert not c.state.repair.under  # no copy is missing: it has none by design
    c.add_storage("storage-9")  # somewhere for b's output
    assert start_of(c, "b").inline == {"in0": b""}


def test_gc_deletes_an_empty_output_where_its_job_was_placed() -> None:
    c = Cluster()
    c.submit(spec("a"))
    assert c.started() == ["a"]
    placement = list(c.job("a").placement)
    ends_empty(c, "a")
    f = gc.forget(c.state, [c.job("a")])
    # Storage holds the name as created (empty): it goes from there too.
    assert {n: out("a") in names for n, names in f.objects.items()} == dict.fromkeys(placement, True)
