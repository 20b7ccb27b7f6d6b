"""Job owners and who may touch a job (docs/security.md, "Users and their jobs").

Each job records its owner: on a secure cluster the caller's key as the ZAP
handler tagged it (`ROLE:NAME`, e.g. `user:alice`); on a cluster in the clear
the local user name the client sent (informational only: nobody is checked).
A job's children (spawned, delegated to, submitted by its exit actions) belong
to its root's owner. Owners are interned: a million queued jobs of a few users
hold a few strings, one pointer each.

`may_touch(caller, job)` is THE rule, kept in one function so that every op
(and job credentials scoped to a root, docs/security.md) asks the same
question: a `user` key may touch only jobs it owns; an `admin`, the
coordinator and node keys may touch any; without security anyone may.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from weft.bus.errors import BusError
from weft.protocol.access import USER, caller_class

if TYPE_CHECKING:
    from weft.bus.rpc import CallContext

    from .records import Job

FORBIDDEN = "forbidden"
# What a client in the clear may send as its owner (a local user name).
_LOCAL_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._@-]{0,63}")
# Distinct owners, each held once (interned by hand: sys.intern does not
# promise to keep them, and this table stays as small as the user count).
_OWNERS: dict[str, str] = {}


def intern_owner(owner: str | None) -> str | None:
    if owner is None:
        return None
    return _OWNERS.setdefault(owner, owner)


def caller(ctx: CallContext | None) -> str | None:
    """The key (`ROLE:NAME`) a call came with; None without security."""
    return ctx.user if ctx is not None else None


def owner_of_call(ctx: CallContext | None, body: Any) -> str | None:
    """Who owns the jobs a `submit` makes: its key on a secure cluster, else
    the `owner` the client sent (checked, since it is shown as it is)."""
    user = caller(ctx)
    if user is not None:
        return intern_owner(user)
    sent = body.get("owner") if type(body) is dict else None
    if sent is None:
        return None
    if type(sent) is not str or not _LOCAL_NAME.fullmatch(sent):
        raise BusError(f"submit: owner {sent!r} is not a user name (letters, digits, '.', '_', '@', '-', "
                       "at most 64)", code="bad-request")
    return intern_owner(sent)


def is_user(user: str | None) -> bool:
    """Is this caller a `user` key, whose reach is its own jobs?"""
    return user is not None and caller_class(user) == USER


def may_touch(user: str | None, job: Job) -> bool:
    """May the caller `user` (`ROLE:NAME`, None without security) read or steer `job`?"""
    return user is None or job.owner == user or caller_class(user) != USER


def check(ctx: CallContext | None, job: Job, op: str) -> Job:
    """`job`, or a `forbidden` BusError naming the op and the caller's role."""
    user = caller(ctx)
    if not may_touch(user, job):
        raise BusError(f"{op!r} of job {job.id} is not allowed for a user key ({user}): "
                       "it is another user's job", code=FORBIDDEN)
    return job


def check_object(ctx: CallContext | None, job: Job | None, name: str) -> None:
    """Reading an object through the coordinator: an output of a job the
    caller may not touch is refused; objects no job made (content uploads,
    named by their bytes' hash) are readable by whoever knows the name."""
    user = caller(ctx)
    if job is not None and not may_touch(user, job):
        raise BusError(f"'locate' of object {name} is not allowed for a user key ({user}): "
                       f"it is an output of another user's job", code=FORBIDDEN)


def visible(ctx: CallContext | None, jobs: Any) -> Any:
    """Jobs a listing shows the caller: all, or (a user key) its own."""
    user = caller(ctx)
    if not is_user(user):
        return jobs
    return [j for j in jobs if j.owner == user]


def check_submit(node: Any, ctx: CallContext | None, specs: list[Any]) -> None:
    """What a `user` key may not submit: a priority above the coordinator's
    `max_user_priority`, a child of another user's job, or a job reading
    another user's outputs (that would read them by proxy)."""
    user = caller(ctx)
    if not is_user(user):
        return
    g = node.graph
    limit = node.max_user_priority
    for i, spec in enumerate(specs):
        if spec.priority > limit:
            raise BusError(f"'submit' of job #{i + 1} with priority {spec.priority} is not allowed for a user key "
                           f"({user}): at most {limit} (the coordinator's --max-user-priority)", code=FORBIDDEN)
        if spec.spawned_by is not None:
            parent = g.jobs.get(g.names.resolve(spec.spawned_by))
            if parent is not None:
                check(ctx, parent, "submit")
        for ref in spec.refs.values():
            obj = g.objects.get(g.names.resolve_object(ref))
            if obj is not None:
                check_object(ctx, g.jobs.get(obj.producer or ""), ref)


def counts(jobs: Any) -> dict[str, int]:
    """Jobs by shown state (a user's own, for `status`)."""
    c: dict[str, int] = {}
    for j in jobs:
        st = j.shown_state
        c[st] = c.get(st, 0) + 1
    return c


def groups_of(jobs: Any) -> dict[str, dict[str, int]]:
    """Groups of `jobs` with their counts by state (a user's own, for `groups`)."""
    out: dict[str, dict[str, int]] = {}
    for j in jobs:
        for grp in j.spec.groups:
            c = out.setdefault(grp, {})
            st = j.shown_state
            c[st] = c.get(st, 0) + 1
    return out
