"""The coordinator's job-control ops: cancel (jobs and groups, with or
without dependents), jobs (a filtered listing), pause, resume, groups and
group. Handlers parse with the protocol records and hand typed values to the
state (control.py); they live here so node.py stays the shell it is."""

from __future__ import annotations

import time
from functools import partial
from typing import TYPE_CHECKING, Any

from weft.bus.errors import BusError
from weft.bus.rpc import CallContext
from weft.protocol.enums import ErrorCode
from weft.protocol.jobs import Cancel, GroupRef, ListJobs, Pause

from . import owners
from .control import PAUSES
from .graph import WAITING, Job

if TYPE_CHECKING:
    from .nodeview import CoordinatorNode

# Members listed by `group` as still pending, at most.
PENDING_SHOWN = 100


def register(node: CoordinatorNode) -> None:
    add = node.server.add
    add("cancel", partial(cancel, node))
    add("jobs", partial(list_jobs, node), bypass=True)
    add("pause", partial(pause, node, "pause"))
    add("resume", partial(pause, node, "resume"))
    add("groups", partial(groups, node), bypass=True)
    add("group", partial(group, node), bypass=True)


def groups(node: CoordinatorNode, body: Any, ctx: CallContext) -> dict[str, Any]:
    """-> {groups: {name: {state: count}}}."""
    if owners.is_user(owners.caller(ctx)):  # a user's own jobs' groups only
        return {"groups": owners.groups_of(owners.visible(ctx, node.graph.jobs.values()))}
    return {"groups": node.state.groups()}


async def cancel(node: CoordinatorNode, body: Any, ctx: CallContext) -> dict[str, Any]:
    """Cancel -> {jobs: [job view]} (the named jobs, then each group's members)."""
    req = Cancel.from_wire(body)
    jobs = [node._job(j, ctx) for j in req.jobs]
    for g in req.groups:
        members = node.state.group_members(g)
        if not members:
            raise BusError(f"no group {g!r}: no job was submitted with --group {g}", code=ErrorCode.MISSING)
        mine = owners.visible(ctx, members)
        if not mine:
            raise BusError(f"'cancel' of group {g} is not allowed for a user key ({ctx.user}): "
                           "none of its jobs is this user's", code=owners.FORBIDDEN)
        jobs += mine
    node._run(node.state.cancel(jobs, dependents=req.dependents))
    out = [job.summary() for job in jobs]
    await node.commits.durable()
    return {"jobs": out}


def list_jobs(node: CoordinatorNode, body: Any, ctx: CallContext) -> dict[str, Any]:
    """ListJobs -> {jobs: [job view]}: submit order, the newest `limit`."""
    req = ListJobs.from_wire(body)
    states = set(req.states)
    group, since = req.group, req.since
    out: list[Job] = []
    for j in owners.visible(ctx, node.graph.jobs.values()):
        if states and j.shown_state not in states:
            continue
        if group is not None and group not in j.spec.groups:
            continue
        if since is not None and j.submitted < since:
            continue
        out.append(j)
    out.sort(key=lambda j: j.seq)
    now = time.time()
    views = []
    waiting = node.state.planner.placing.waiting
    for j in out[-req.limit:] if req.limit else []:
        v = j.summary(now)
        if j.ran_on is not None and "node" not in v:
            v["node"] = j.ran_on
        if j.spec.groups:
            v["groups"] = j.spec.groups
        if waiting.reasons and (why := waiting.text(j.id)) and v["state"] == "waiting":
            v["waiting"] = why
        views.append(v)
    return {"jobs": views, "total": len(out)}


async def pause(node: CoordinatorNode, op: str, body: Any, ctx: CallContext) -> dict[str, Any]:
    """Pause -> {paused}: what is paused now, and since when (journalled
    before the answer, with the jobs' next group commit)."""
    req = Pause.from_wire(body, op)
    state = node.state
    node._run(state.pause(req.group) if op == "pause" else state.resume(req.group))
    node.journal.stage_meta(PAUSES, dict(state.pauses))
    await node.commits.durable()
    return {"paused": state.pause_view()}


def group(node: CoordinatorNode, body: Any, ctx: CallContext) -> dict[str, Any]:
    """GroupRef -> {group, counts, pending: [job id], paused?}."""
    name = GroupRef.from_wire(body).group
    members = owners.visible(ctx, node.state.group_members(name))
    if not members:
        raise BusError(f"no group {name!r}: no job was submitted with --group {name}", code=ErrorCode.MISSING)
    counts: dict[str, int] = {}
    pending = []
    for j in members:
        st = j.shown_state
        counts[st] = counts.get(st, 0) + 1
        if not j.done:
            pending.append(j)
    d: dict[str, Any] = {
        "group": name, "jobs": len(members), "counts": counts,
        "pending": [{"job": j.id, "state": j.shown_state, **({"pending": j.missing} if j.state == WAITING and j.missing else {})}
                    for j in pending[:PENDING_SHOWN]],
        "pending_total": len(pending),
    }
    since = node.state.pauses.get(name)
    if since is not None:
        d["paused"] = since
    return d
