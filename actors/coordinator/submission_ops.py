"""The coordinator's submission-control ops and news: `tree` and
`decommission` (spawn.py), try-submit (a submit with `queue: false`), the
slot estimate, and job ends published on the coordinator's own event queue
(`poll`, bus/events.py) for `weft events`.

Handlers parse with the records of protocol/submission.py and hand typed
values to the state; they live here so node.py stays the shell it is.
"""

from __future__ import annotations

import logging
import math
import time
from functools import partial
from typing import TYPE_CHECKING, Any

import trio

from weft.actors.model import JobSpec
from weft.bus.errors import BusError
from weft.bus.rpc import CallContext
from weft.protocol.submission import JOB_END, SIZES, JobEnd, Recurring, RootRef, TrySubmitReply

from . import owners, secrets
from .graph import RUNNING, SUCCEEDED, Job
from .nodes import ComputeRef
from .recurring import RECURRING
from .spawn import DECOMMISSIONED

if TYPE_CHECKING:
    from .nodeview import CoordinatorNode
    from .submit import Submitted

log = logging.getLogger("weft.coordinator")

# MiB of each size class (issue 18): what a free slot is worth once compute
# nodes report memory; until then every class counts free CPU slots.
SIZE_MIB = {"tiny": 32, "small": 128, "medium": 256, "large": 1024}
# Ends remembered to publish each once (a finished job may be journaled again).
_ENDED_KEPT = 100_000


def register(node: CoordinatorNode) -> None:
    add = node.server.add
    add("tree", partial(tree, node), bypass=True)
    add("decommission", partial(decommission, node))
    add("recurring", partial(recurring, node))
    # Our own event queue (runtime/node.py serves it for every role) as a
    # caller may see it: a user key's `weft events` shows only its jobs.
    add("poll", partial(poll_ends, node), bypass=True)
    node.ended = {}


async def poll_ends(node: CoordinatorNode, body: Any, ctx: CallContext) -> dict[str, Any]:
    """`poll` of the coordinator's events, each job end only to callers who may touch that job."""
    reply = await node.events.handle_poll(body, ctx)
    user = owners.caller(ctx)
    if owners.reaches_own_jobs_only(user):
        jobs = node.state.graph.jobs
        reply["events"] = [ev for ev in reply["events"] if ev[1] != JOB_END or owners.may_see_end(user, ev[2], jobs)]
    return reply


def slot_estimate(computes: list[ComputeRef]) -> dict[str, int]:
    """How many more jobs of each size would fit now: free slots per ready
    node, or (when a node reports `memory_free` in MiB) what fits in its
    memory too, whichever is less."""
    out = dict.fromkeys(SIZES, 0)
    # Asked once per batch of ended jobs: nodes that report no memory add
    # the same free slots to every size, summed once (not per size per node).
    plain = 0
    for c in computes:
        if not c.ready:
            continue
        free = max(0, c.slots - len(c.running))
        mem = getattr(c, "memory_free", None)
        if mem is None:
            plain += free
            continue
        for size in SIZES:
            out[size] += min(free, math.floor(mem / SIZE_MIB[size]))
    if plain:
        for size in SIZES:
            out[size] += plain
    return out


def tree(node: CoordinatorNode, body: Any, ctx: CallContext) -> dict[str, Any]:
    """RootRef -> {root, jobs: [view]} (the root first, then its tree by submit order)."""
    root = node._job(RootRef.from_wire(body, "tree").root, ctx)
    if root.spec.root is not None:
        root = node._job(root.spec.root, ctx)  # asked by a job of the tree: the whole tree
    now = time.time()
    views = []
    for j in node.state.tree_view(root):
        v = j.summary(now)
        if j.spec.spawned_by is not None:
            v["spawned_by"] = j.spec.spawned_by
        views.append(v)
    d: dict[str, Any] = {"root": root.id, "jobs": views, "spawned": node.state.spawned(root.id)}
    if root.spec.max_spawns is not None:
        d["max_spawns"] = root.spec.max_spawns
    since = node.state.decommissioned.get(root.id)
    if since is not None:
        d["decommissioned"] = since
    return d


async def decommission(node: CoordinatorNode, body: Any, ctx: CallContext) -> dict[str, Any]:
    """RootRef -> {root, since, cancelled}: journaled before the answer."""
    root = node._job(RootRef.from_wire(body, "decommission").root, ctx)
    if root.spec.root is not None:
        root = node._job(root.spec.root, ctx)  # a tree is decommissioned from its root
    state = node.state
    before = {j.id for j in state.tree_view(root) if not j.done}
    node._run(state.decommission(root))
    node.journal.stage_meta(DECOMMISSIONED, dict(state.decommissioned))
    await node.commits.durable()
    jobs = node.graph.jobs
    cancelled = sorted(jid for jid in before if (j := jobs.get(jid)) is not None and j.done)
    return {"root": root.id, "since": state.decommissioned[root.id], "cancelled": cancelled}


def try_submit(node: CoordinatorNode, results: list[Submitted]) -> dict[str, Any]:
    """After a submit with `queue: false`: one scheduling round now, then
    every job of it that did not start is cancelled (rejected). A job that
    already existed counts as started (it is running or done)."""
    state = node.state
    node._run(state.schedule_round())
    started, rejected, cancel = [], [], []
    for s in results:
        job = s.job
        if s.cached or s.joined or job.state in (RUNNING, SUCCEEDED):
            started.append(job.id)
        elif not job.done:
            rejected.append(job.id)
            cancel.append(job)
        else:
            rejected.append(job.id)
    if cancel:
        node._run(state.cancel(cancel, dependents=True))
    slots = slot_estimate(list(state.computes.values()))
    return TrySubmitReply(started, rejected, slots).to_wire()


def publish_ends(node: CoordinatorNode, changed: list[Job]) -> None:
    """Each job that ended, once, on the coordinator's event queue."""
    if node.state.secrets:
        secrets.drop_ended(node.state, changed, node.journal)
    ended = node.ended
    slots = None
    for job in changed:
        if not job.done or ended.get(job.id) == job.finished:
            continue
        if len(ended) >= _ENDED_KEPT:
            ended.clear()
        ended[job.id] = job.finished
        if slots is None:
            slots = slot_estimate(list(node.state.computes.values()))
        end = JobEnd(job.id, str(job.state), job.finished or time.time(), job.spec.params,
                     None if job.code is None else str(job.code), slots)
        node.events.append(JOB_END, end.to_wire())


async def recurring(node: CoordinatorNode, body: Any, ctx: CallContext) -> dict[str, Any]:
    """Recurring -> {recurring: [definition]}: after an add or a delete,
    journaled before the answer (an add's first instance starts at once)."""
    req = Recurring.from_wire(body)
    state = node.state
    if req.do != "ls":
        if req.do == "add":
            spec = JobSpec.from_wire(req.job)
            owners.check_submit(node, ctx, [spec])
            state.define_recurring(req.name, spec, req.every, owners.owner_of_call(ctx, body))
        else:
            d = state.recurring.get(req.name)
            if d is not None and owners.is_user(owners.caller(ctx)) and d.get("owner") != ctx.user:
                raise BusError(f"'recurring' delete of {req.name} is not allowed for a user key ({ctx.user}): "
                               "another user defined it", code=owners.FORBIDDEN)
            state.delete_recurring(req.name)
        _, effects = state.recurring_due()
        node._run(effects)
        node.journal.stage_meta(RECURRING, {k: dict(v) for k, v in state.recurring.items()})
        await node.commits.durable()
        node._wake.set()
    view = state.recurring_view()
    if owners.is_user(owners.caller(ctx)):  # a user key: what it defined
        view = [v for v in view if state.recurring[v["name"]].get("owner") == ctx.user]
    return {"recurring": view}


async def recurring_loop(node: CoordinatorNode) -> None:
    """Once a second: instances that are due start (or their period is skipped)."""
    state = node.state
    while True:
        await trio.sleep(1.0)
        if not state.recurring:
            continue
        try:
            changed, effects = state.recurring_due()
        except Exception:  # a bug must not take the coordinator down with it
            log.exception("recurring jobs: starting instances failed")
            continue
        if changed:
            node._run(effects)
            node.journal.stage_meta(RECURRING, {k: dict(v) for k, v in state.recurring.items()})
            node.commits.mark()
