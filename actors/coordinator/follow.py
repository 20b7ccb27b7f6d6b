"""Relaying a job's log and progress to clients (`logs`, `progress`).

Calls only go coordinator -> compute, so a client following a job asks us
and we ask the compute node running it (`log`, `progress`; see
actors/compute/follow.py). Nothing here runs unless a client asks: no
per-job work, no state kept between calls (the client holds the offset).

Where a job's log is:
- running (or cancelling): in its task directory on the compute node running it;
- ended: the object `JOB/_log` on storage (its place: the coordinator's
  object record, learned from storage's events, else the job's placement);
  a succeeded job without one had a log equal to its `stdout` output (or an
  empty one); last, the task directory, while the node still keeps it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import trio

from weft.bus.errors import BusError
from weft.protocol.enums import JobState, ObjectState
from weft.protocol.follow import (
    LOG_OUTPUT,
    LogChunk,
    LogRead,
    ProgressAsk,
    ProgressReply,
)
from weft.protocol.objects import Read, ReadReply

from .graph import FINISHED

if TYPE_CHECKING:
    from weft.bus.rpc import CallContext

    from .graph import Job
    from .nodeview import CoordinatorNode

log = logging.getLogger("weft.coordinator")

# A call to a compute or storage node may take its wait plus this.
_CALL_SLACK = 10.0
# A job not started yet (or whose end we have not heard of) is asked about again after this.
_NOT_YET = 0.5


async def relay_logs(node: CoordinatorNode, body: Any, ctx: CallContext | None) -> dict[str, Any]:
    req = LogRead.from_wire(body, "logs")
    job = node._job(req.job, ctx)
    if job.done:
        return (await _ended_log(node, job, req)).to_wire()
    ref = node.state.computes.get(job.node or "")
    # A cancelling job still runs (SIGTERM given, its outcome unknown): its
    # lines, e.g. what it prints as it shuts down, go on until it settles.
    if (job.state == JobState.RUNNING or job.state == JobState.CANCELLING) and ref is not None:
        try:
            r = LogChunk.from_wire(await node.peers.get(ref.endpoint).call(
                "log", LogRead(job.id, req.offset, req.wait, req.limit).to_wire(), timeout=req.wait + _CALL_SLACK))
        except BusError as e:
            log.debug("log of %s from %s: %s", job.id, ref.node, e)
        else:
            if r.done and not r.data:
                # The task ended; the job's end (or its next attempt) is news we have not applied yet.
                await trio.sleep(min(req.wait, _NOT_YET))
            return LogChunk(r.data, r.offset, False).to_wire()
    # Not started yet (or its node is out of reach): nothing to read for now.
    await trio.sleep(min(req.wait, _NOT_YET))
    return LogChunk(b"", req.offset, False).to_wire()


async def _ended_log(node: CoordinatorNode, job: Job, req: LogRead) -> LogChunk:
    name = f"{job.id}/{LOG_OUTPUT}"
    got = await _read_object(node, name, req, _places(node, name, job))
    if got is None and job.state == JobState.SUCCEEDED and "stdout" in job.spec.outputs:
        stdout = f"{job.id}/stdout"
        obj = node.graph.objects.get(stdout)
        if obj is not None and obj.state == FINISHED:
            got = await _read_object(node, stdout, req, _places(node, stdout, job))
    if got is None:
        got = await _from_task(node, job, req)
    if got is None:
        return LogChunk(b"", req.offset, True)
    return got


def _places(node: CoordinatorNode, name: str, job: Job) -> list[str]:
    """Storage endpoints that may hold `name`: where we know it is, then the job's placement."""
    s = node.state
    obj = node.graph.objects.get(name)
    eps = [r.endpoint for r in s.planner.live_locations(obj)] if obj is not None else []
    for n in job.placement or ():
        ref = s.storages.get(n)
        if ref is not None and ref.endpoint not in eps:
            eps.append(ref.endpoint)
    return eps


async def _read_object(node: CoordinatorNode, name: str, req: LogRead, endpoints: list[str]) -> LogChunk | None:
    obj = node.graph.objects.get(name)
    if obj is not None and obj.state == FINISHED and obj.data is not None:
        data = obj.data[req.offset:req.offset + req.limit]
        return LogChunk(bytes(data), req.offset + len(data), req.offset + len(data) >= len(obj.data))
    for ep in endpoints:
        try:
            r = ReadReply.from_wire(await node.peers.get(ep).call(
                "read", Read(name, req.offset, min(req.limit, 1 << 20)).to_wire(), timeout=_CALL_SLACK))
        except BusError:
            continue  # not there (missing), or that node is out of reach: the next copy
        if r.state != ObjectState.FINISHED:
            continue
        data = bytes(r.data)
        return LogChunk(data, req.offset + len(data), r.eof or not data)
    return None


async def _from_task(node: CoordinatorNode, job: Job, req: LogRead) -> LogChunk | None:
    ref = node.state.computes.get(job.ran_on or "")
    if ref is None:
        return None
    try:
        r = LogChunk.from_wire(await node.peers.get(ref.endpoint).call(
            "log", LogRead(job.id, req.offset, 0.0, req.limit).to_wire(), timeout=_CALL_SLACK))
    except BusError:
        return None
    return LogChunk(r.data, r.offset, r.done)


async def relay_progress(node: CoordinatorNode, body: Any, ctx: CallContext | None) -> dict[str, Any]:
    """`progress` {jobs} -> ProgressReply: one call per compute node running some of them."""
    by_node: dict[str, list[str]] = {}
    for jid in ProgressAsk.from_wire(body).jobs:
        job = node._job(jid, ctx)
        if job.state == JobState.RUNNING and job.node in node.state.computes:
            by_node.setdefault(job.node, []).append(jid)
    out: dict[str, tuple[float, str]] = {}

    async def ask(compute: str, jobs: list[str]) -> None:
        ref = node.state.computes[compute]
        try:
            r = ProgressReply.from_wire(await node.peers.get(ref.endpoint).call(
                "progress", ProgressAsk(jobs).to_wire(), timeout=_CALL_SLACK))
        except BusError as e:
            log.debug("progress from %s: %s", compute, e)
            return
        out.update((j, p) for j, p in r.progress.items() if j in jobs)

    async with trio.open_nursery() as nursery:
        for compute, jobs in by_node.items():
            nursery.start_soon(ask, compute, jobs)
    return ProgressReply(out).to_wire()

