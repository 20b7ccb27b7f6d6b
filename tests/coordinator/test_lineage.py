"""Objects lost with their storage node: made again after the grace period
(time is passed explicitly through the harness clock)."""

from __future__ import annotations

from weft.actors.coordinator.effects import Dispatch
from weft.actors.coordinator.graph import FAILED, RUNNABLE, SUCCEEDED, WAITING
from weft.protocol.enums import ObjectState
from weft.protocol.objects import ObjectInfo

from .harness import Cluster, out, spec


def lost_after_a_ran(grace: float = 30.0) -> Cluster:
    """a ran and its output sits on storage-0; b (reading it) is submitted
    and storage-0 is lost before b starts."""
    c = Cluster(storages=2, storage_grace=grace)
    c.state.storages["storage-1"].placed = 10  # a's output goes to storage-0
    c.submit(spec("a"))
    c.run("a")
    assert c.job("a").placement == ["storage-0"]
    c.submit(spec("b", "a"))
    c.take(c.state.node_lost("storage", "storage-0"))
    assert c.graph.objects[out("a")].state == "lost"
    return c


def test_lost_objects_are_made_again_after_the_grace_period() -> None:
    c = lost_after_a_ran(grace=30.0)
    assert c.started() == []  # b's input has no live copy: it waits on it
    assert c.job("b").state == WAITING
    c.clock.advance(29.0)
    c.take(c.state.regenerate_lost())
    assert c.job("a").state == SUCCEEDED  # its node may still come back
    c.clock.advance(2.0)
    c.take(c.state.regenerate_lost())
    a = c.job("a")
    assert a.state == RUNNABLE and "lost with its storage node" in a.cause
    assert c.state.stats["lineage_reruns"] == 1
    assert c.started() == ["a"]
    assert a.placement == ["storage-1"]
    c.ends("a")
    assert c.started() == ["b"]


def test_a_storage_node_back_within_the_grace_period_saves_a_rerun() -> None:
    c = lost_after_a_ran(grace=30.0)
    c.started()
    c.clock.advance(10.0)
    c.add_storage("storage-0", [ObjectInfo(out("a"), ObjectState.FINISHED, 3)])
    c.clock.advance(60.0)
    c.take(c.state.regenerate_lost())
    assert c.state.stats["lineage_reruns"] == 0
    assert c.job("a").state == SUCCEEDED
    assert c.started() == ["b"]


def test_a_lost_object_nobody_can_make_again_fails_its_readers() -> None:
    c = Cluster(storage_grace=1.0)
    c.add_storage("storage-1")
    # An object no job made (written by a client straight to storage).
    c.object_finished(out("ext"), "storage-1")
    c.submit(spec("reader", "ext"))
    assert c.job("reader").state == RUNNABLE
    c.take(c.state.node_lost("storage", "storage-1"))
    assert c.started() == []
    assert c.job("reader").state == WAITING
    c.clock.advance(2.0)
    c.take(c.state.regenerate_lost())
    assert c.job("reader").state == FAILED
    assert "no job can make it again" in c.job("reader").cause


def test_a_rerun_adopted_at_its_start_counts_only_the_attempt_that_ran() -> None:
    # Its lost output comes back finished while the rerun's start is being
    # prepared (the killed storage node restarted past the grace period):
    # the rerun is adopted, not run, so the job ran once and says so.
    c = lost_after_a_ran(grace=1.0)
    assert c.job("a").summary()["attempts"] == 1
    assert c.started() == []  # b waits on the lost copy
    c.clock.advance(2.0)
    c.take(c.state.regenerate_lost())
    (d,) = [e for e in c.take(c.state.schedule_round()) if isinstance(e, Dispatch)]
    c.add_storage("storage-0", [ObjectInfo(out("a"), ObjectState.FINISHED, 3)])
    tokens = c.state.attempt_tokens(d)
    assert c.state.start_messages(d, tokens, {}, {}) == []
    a = c.job("a")
    assert a.state == SUCCEEDED
    assert a.summary()["attempts"] == 1
    assert c.started() == ["b"]


def test_a_rerun_that_runs_counts_every_attempt_the_job_made() -> None:
    c = lost_after_a_ran(grace=1.0)
    assert c.started() == []
    c.clock.advance(2.0)
    c.take(c.state.regenerate_lost())
    assert c.started() == ["a"]
    c.ends("a")
    assert c.job("a").summary()["attempts"] == 2
