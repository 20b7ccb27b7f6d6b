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
from weft.protocol.access import JOB, USER, caller_class

from .credentials import root_of

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
    """May the caller `user` (`ROLE:NAME`, None without security) read or steer `job`?
    A running job's credential (`job:JOB@TOKEN`, credentials.py) reaches its own root's tree only."""
    if user is None or job.owner == user:
        return True
    cls = caller_class(user)
    if cls == JOB:
        return root_of(user) == (job.spec.root or job.id)
    return cls != USER


def reaches_own_jobs_only(user: str | None) -> bool:
    """A user key or a job's credential: what it is shown is filtered to its jobs."""
    if user is None:
        return False
    cls = caller_class(user)
    return cls == USER or cls == JOB


def may_see_end(user: str, end: Any, jobs: dict[str, Job]) -> bool:
    """Is a job end of the event queue (JobEnd wire) one `user` may see? A job
    collected since is shown to nobody but admins (its owner is gone with it)."""
    job = jobs.get(end.get("job")) if type(end) is dict else None
    return job is not None and may_touch(user, job)


def check(ctx: CallContext | None, job: Job, op: str) -> Job:
    """`job`, or a `forbidden` BusError naming the op and the caller's role."""
    user = caller(ctx)
    if not may_touch(user, job):
        if caller_class(user or "") == JOB:
            raise BusError(f"{op!r} of job {job.id} is not allowed for a job's credential ({user}): "
                           "it is not in that job's tree", code=FORBIDDEN)
        raise BusError(f"{op!r} of job {job.id} is not allowed for a user key ({user}): "
                       "it is another user's job", code=FORBIDDEN)
    return job


def check_object(ctx: CallContext | None, job: Job | None, name: str) -> None:
    """Reading an object through the coordinator: an output of a job the
    caller may not touch is refused; objects no job made (content uploads,
    named by their bytes' hash) are readable by whoever knows the name."""
    user = caller(ctx)
    if job is not None and not may_touch(user, job):
        if caller_class(user or "") == JOB:
            raise BusError(f"'locate' of object {name} is not allowed for a job's credential ({user}): "
                           "it is an output of a job outside its tree", code=FORBIDDEN)
        raise BusError(f"'locate' of object {name} is not allowed for a user key ({user}): "
                       f"it is an output of another user's job", code=FORBIDDEN)


def vouch(node: Any, ctx: CallContext | None, reply: dict[str, Any]) -> dict[str, Any]:
    """A `locate` answer to a `user` key (checked already: check_object) with the read token its
    storage reads need (actors/storage/readtoken.py); everyone else's as it is."""
    user = caller(ctx)
    if is_user(user) and reply["copies"]:
        from weft.actors.storage import readtoken

        sec = node.config.security
        reply[readtoken.FIELD] = readtoken.make(readtoken.key_of(sec.server_secret or ""), user, reply["name"])
    return reply


def visible(ctx: CallContext | None, jobs: Any) -> Any:
    """Jobs a listing shows the caller: all, or (a user key) its own, or (a job's credential) its tree's."""
    user = caller(ctx)
    if user is None:
        return jobs
    cls = caller_class(user)
    if cls == USER:
        return [j for j in jobs if j.owner == user]
    if cls == JOB:
        return [j for j in jobs if may_touch(user, j)]
    return jobs


def check_submit(node: Any, ctx: CallContext | None, specs: list[Any]) -> None:
    """What a `user` key may not submit: a priority above the coordinator's
    `max_user_priority`, a child of another user's job, or a job reading
    another user's outputs (that would read them by proxy)."""
    user = caller(ctx)
    if user is None:
        return
    cls = caller_class(user)
    if cls == JOB:
        check_job_submit(node, user, specs)
        return
    if cls != USER:
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


def check_job_submit(node: Any, user: str, specs: list[Any]) -> None:
    """A job's credential submits children of jobs in its own tree only, reading outputs of that tree
    only; under a user's root, at most that user's priority limit (the children are that user's)."""
    g = node.graph
    for i, spec in enumerate(specs):
        parent = g.jobs.get(g.names.resolve(spec.spawned_by)) if spec.spawned_by is not None else None
        if parent is None or not may_touch(user, parent):
            raise BusError(f"'submit' of job #{i + 1} is not allowed for a job's credential ({user}): it may submit "
                           "children of its own tree's jobs only (spawned_by)", code=FORBIDDEN)
        root = g.jobs.get(parent.spec.root or parent.id)
        if root is not None and is_user(root.owner) and spec.priority > node.max_user_priority:
            raise BusError(f"'submit' of job #{i + 1} with priority {spec.priority} is not allowed for a job of a "
                           f"user ({root.owner}): at most {node.max_user_priority}", code=FORBIDDEN)
        for ref in spec.refs.values():
            obj = g.objects.get(g.names.resolve_object(ref))
            if obj is not None:
                producer = g.jobs.get(obj.producer or "")
                if producer is not None and not may_touch(user, producer):
                    raise BusError(f"'submit' of job #{i + 1} is not allowed for a job's credential ({user}): its "
                                   f"input {ref} is an output of a job outside its tree", code=FORBIDDEN)


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
