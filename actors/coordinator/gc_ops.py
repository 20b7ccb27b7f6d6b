"""The shell's side of forgetting jobs (gc.py decides what): the `delete`
and `gc` ops, and the periodic collection.

Order, so a crash at any point leaves nothing the journal would bring back
wrongly: the state forgets the jobs, the journal deletes their rows (one
group commit, made durable before storage is touched), then storage deletes
the objects (batched per node), then the journal is compacted (VACUUM) in a
worker thread: the event loop keeps serving, commits wait for it.
An object whose delete did not reach its node (the node is down) stays
there: storage keeps it until someone deletes it by hand.
"""

from __future__ import annotations

import functools
import logging
import time
from typing import TYPE_CHECKING, Any

import trio

from weft.protocol.jobs import DeleteJobs, Gc, GcReply
from weft.protocol.objects import DeleteObjects

from . import gc, owners
from .gc import Forgotten

if TYPE_CHECKING:
    from .nodeview import CoordinatorNode

log = logging.getLogger("weft.coordinator")

# Jobs forgotten between two checkpoints of the event loop.
FORGET_SLICE = 5000
# Object names per storage delete message.
DELETE_BATCH = 5000
# The periodic collection runs this often (at most; and at least hourly).
GC_EVERY_MAX = 3600.0
GC_EVERY_MIN = 60.0
# A meta row written after a collection: it makes the commit that journals the counters.
GC_META = "gc_last"


def register(node: CoordinatorNode) -> None:
    add = node.server.add
    add("delete", functools.partial(op_delete, node))
    add("gc", functools.partial(op_gc, node))


async def op_delete(node: CoordinatorNode, body: Any, ctx: Any) -> dict[str, Any]:
    req = DeleteJobs.from_wire(body)
    g = node.graph
    for ref in req.jobs:  # (first: another user's job is not described, even as unfinished)
        job = g.jobs.get(g.names.resolve(ref))
        if job is not None:
            owners.check(ctx, job, "delete")
    jobs = gc.resolve_for_delete(g, req.jobs, req.force)
    f = gc.forget(node.state, jobs, fail_readers=req.force)
    return (await _finish(node, f, compact=False)).to_wire()


async def op_gc(node: CoordinatorNode, body: Any, ctx: Any) -> dict[str, Any]:
    req = Gc.from_wire(body)
    return (await collect(node, node.keep if req.keep is None else req.keep)).to_wire()


async def collect(node: CoordinatorNode, keep: float) -> GcReply:
    async with node.gc_lock:
        jobs, retained = gc.collectable(node.graph, time.time(), keep)
        f = Forgotten(retained=retained)
        # In slices: other calls are answered in between (100,000 jobs take ~1 s).
        for i in range(0, len(jobs), FORGET_SLICE):
            gc.forget(node.state, jobs[i:i + FORGET_SLICE], into=f, compact=False)
            await trio.lowlevel.checkpoint()
        if len(f.jobs) > 1000 and len(f.jobs) > len(node.graph.jobs) // 4:
            node.graph.compact()
        return await _finish(node, f, compact=bool(f.jobs), gc_run=True)


async def periodic(node: CoordinatorNode) -> None:
    """Collect now and then: every tenth of the retention, within [1 min, 1 h]."""
    every = min(GC_EVERY_MAX, max(GC_EVERY_MIN, node.keep / 10))
    while True:
        await trio.sleep(every)
        try:
            r = await collect(node, node.keep)
        except Exception:  # a daemon never dies of its housekeeping
            log.exception("garbage collection failed")
            continue
        if r.jobs:
            log.info("gc: forgot %d jobs, deleted %d objects (%d bytes); journal %d -> %d bytes in %.3fs",
                     len(r.jobs), r.objects, r.bytes, r.journal_before, r.journal_after, r.compact_seconds)


async def _finish(node: CoordinatorNode, f: Forgotten, *, compact: bool, gc_run: bool = False) -> GcReply:
    journal = node.journal
    stats = node.state.stats
    before = journal.size()
    stats["gc_jobs_forgotten"] += len(f.jobs)
    if gc_run:
        stats["gc_last"] = int(time.time())
    if f.jobs or f.failed:
        journal.stage_forget(f.jobs)
        node._run(node.state._flush())  # jobs a forced delete failed are journaled too
        node.commits.mark()
        await node.commits.durable()
    objects = await _delete_objects(node, f)
    stats["gc_objects_deleted"] += objects
    seconds = 0.0
    if compact:
        seconds = await trio.to_thread.run_sync(journal.compact)
        stats["journal_compactions"] += 1
        log.info("journal compacted in %.3fs (%d -> %d bytes)", seconds, before, journal.size())
    if objects or compact or gc_run:
        # The counters are journaled with a commit: one now, so a restart keeps them.
        journal.stage_meta(GC_META, stats["gc_last"])
        node.commits.mark()
        await node.commits.durable()
    return GcReply(f.jobs, objects, f.bytes, f.retained, before, journal.size(), seconds, f.failed)


async def _delete_objects(node: CoordinatorNode, f: Forgotten) -> int:
    """Delete on every node listed, in batches; how many storage deleted."""
    deleted = 0
    for node_id, names in f.objects.items():
        ref = node.state.storages.get(node_id)
        if ref is None:
            log.info("gc: storage %s is gone: %d objects stay there", node_id, len(names))
            continue
        peer = node.peers.get(ref.endpoint)
        for i in range(0, len(names), DELETE_BATCH):
            batch = names[i:i + DELETE_BATCH]
            try:
                r = await peer.call("delete", DeleteObjects(batch, epoch=node.epoch).to_wire(), timeout=60)
            except Exception as e:  # (bus errors: logged, the rest of the work goes on)
                log.warning("gc: deleting %d objects on %s: %s", len(batch), node_id, e)
                continue
            got = r.get("deleted") if type(r) is dict else None
            if type(got) is list:
                deleted += len(got)
    return deleted
