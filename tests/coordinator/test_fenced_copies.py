"""A finished copy written by an attempt we gave up on is not the object's copy.

On a host that runs compute and storage, an attempt fenced off with its lost
compute node may still finish writing its output to the storage node beside
it. The storage node fences writers per object only on itself, so it reports
that copy as finished (with the old attempt's token); the coordinator must
not take it for the output of the attempt now running elsewhere.
"""

from __future__ import annotations

from weft.actors.coordinator import news
from weft.actors.coordinator.effects import Scavenge
from weft.actors.coordinator.graph import FINISHED, RUNNING, SUCCEEDED, WAITING
from weft.protocol.enums import ObjectState
from weft.protocol.objects import ObjectInfo

from .harness import Cluster, out, spec, wire


def _finished(c: Cluster, storage: str, name: str, token: int) -> list:
    event = [1, "finished", ObjectInfo(name, ObjectState.FINISHED, 3, token).to_wire()]
    return c.take(c.state.storage_events(c.state.storages[storage], news.storage_events(wire([event]))))


def _moved_to_other_node(c: Cluster) -> tuple[int, int]:
    """`a` starts, its node is lost, it starts again elsewhere: (old token, new token)."""
    c.round()
    first_node, old = c.job("a").node, c.job("a").token
    c.take(c.state.node_lost("compute", first_node))
    c.add_compute(first_node, 1)
    c.state.computes[first_node].ready = False  # only the other node takes work
    assert c.started() == ["a"]
    assert c.job("a").state == RUNNING and c.job("a").token > old
    return old, c.job("a").token


def test_a_late_finished_copy_of_a_fenced_attempt_is_not_taken() -> None:
    c = Cluster(computes=2, storages=2)
    c.submit(spec("a"), spec("b", "a"))
    old, new = _moved_to_other_node(c)
    effects = _finished(c, "storage-1", out("a"), old)
    obj = c.graph.objects[out("a")]
    assert obj.state != FINISHED and "storage-1" not in obj.locs
    assert c.job("a").state == RUNNING and c.job("b").state == WAITING  # b does not read the stale bytes
    # The stale copy is deleted there, so the running attempt (or a repair) can write that node.
    assert [e.names for e in effects if isinstance(e, Scavenge) and e.storage.node == "storage-1"] == [[out("a")]]
    # The attempt that runs now still lands its output, and b goes on.
    c.ends("a", node=c.job("a").node)
    assert c.job("a").state == SUCCEEDED and c.job("a").token == new
    assert c.started() == ["b"]


def test_a_storage_inventory_does_not_bring_back_a_fenced_copy() -> None:
    c = Cluster(computes=2, storages=1)
    c.submit(spec("a"), spec("b", "a"))
    old, _ = _moved_to_other_node(c)
    scavenge, _ = c.state.storage_inventory(
        c.add_storage("storage-9"), [ObjectInfo(out("a"), ObjectState.FINISHED, 3, old)])
    assert c.graph.objects[out("a")].state != FINISHED and c.job("b").state == WAITING
    assert scavenge == [out("a")]


def test_copies_of_the_current_attempt_and_its_replicas_are_taken() -> None:
    c = Cluster(computes=1, storages=2)
    c.submit(spec("a"), spec("b", "a"))
    c.round()
    token = c.job("a").token
    _finished(c, "storage-1", out("a"), token)  # written by the running attempt itself
    obj = c.graph.objects[out("a")]
    assert obj.state == FINISHED and "storage-1" in obj.locs
    c.ends("a")
    _finished(c, "storage-0", out("a"), token)  # a replica keeps the original's token
    assert {"storage-0", "storage-1"} <= set(obj.locs) and c.job("a").state == SUCCEEDED


def test_a_fenced_copy_found_by_the_rerun_s_create_is_deleted_before_its_start() -> None:
    # The rerun's create_many finds the output finished by the fenced attempt
    # (its node died before saying so): that copy must be deleted before the
    # start goes out, or the rerun's write is refused and it loops on retries.
    from weft.protocol.enums import ErrorCode
    from weft.protocol.objects import CreateManyReply

    c = Cluster(computes=2, storages=1)
    c.submit(spec("a"))
    old, new = _moved_to_other_node(c)
    info = ObjectInfo(out("a"), ObjectState.FINISHED, 3, old).to_wire()
    reply = CreateManyReply([], {out("a"): {"code": ErrorCode.IMMUTABLE, "message": "finished", "info": info}})
    failed: dict[str, str] = {}
    stale = c.state.creates_answered(c.state.storages["storage-0"], reply, failed)
    assert stale == [out("a")] and not failed
    assert c.graph.objects[out("a")].state != FINISHED  # not taken as the rerun's output
    # A copy the running attempt itself finished is taken, nothing deleted.
    mine = ObjectInfo(out("a"), ObjectState.FINISHED, 3, new).to_wire()
    reply = CreateManyReply([], {out("a"): {"code": ErrorCode.IMMUTABLE, "message": "finished", "info": mine}})
    assert c.state.creates_answered(c.state.storages["storage-0"], reply, failed) == []
