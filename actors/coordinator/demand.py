"""Demand of a batch of newly linked jobs, counted in one pass (graph.py).

A job's demand is the number of unfinished jobs transitively waiting on it:
each new waiting job adds 1 to every unfinished ancestor it reaches through
unfinished objects (Graph._add_demand, one walk per job). Walking per job
made a chain of n jobs cost O(n^2) to submit: each hop walked all the hops
before it (199 ms of coordinator CPU for 1,000 hops, measured).

Here the walks of a batch are merged, with the same result. S(x), the set a
walk from x adds to, is the union over x's unfinished producers q of
{q} and S(q). When x has one such producer q (a chain, a tree), S(x) is
exactly {q} and S(q): x's count is handed to q as a carry, added to q's
demand and passed on when q itself is processed. A job with several
producers (whose ancestors may overlap) walks as before, once, with its
whole carry. Carries move child to parent, so each job is processed after
every job that hands it one: O(jobs + edges) for chains and trees.

Sound only while nothing changes which jobs are done or which objects are
finished between the links and the flush: Graph flushes before it fails a
job, and the submit loop flushes before it yields.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from weft.protocol.enums import JobState, ObjectState

if TYPE_CHECKING:
    from .records import Job


class Graph(Protocol):
    """What counting demand uses of the job graph (graph.py, which imports
    this module: naming its class here would import it back)."""

    jobs: dict[str, Job]
    _heap: list[Any]

    def resolve(self, name: str) -> Any: ...


_FINISHED = ObjectState.FINISHED
_RUNNABLE = JobState.RUNNABLE


def producers(g: Graph, job: Job) -> dict[str, Job]:
    """The unfinished jobs making `job`'s unfinished inputs (each once)."""
    found: dict[str, Job] = {}
    for ref in job.spec.refs.values():
        obj = g.resolve(ref)
        pid = obj.producer
        if obj.state == _FINISHED or not pid or pid in found:
            continue
        p = g.jobs.get(pid)
        if p is not None and not p.done:
            found[pid] = p
    return found


def walk(g: Graph, job: Job, count: int, touched: dict[str, Job]) -> None:
    """Add `count` to every unfinished ancestor of `job` (the walk of Graph._add_demand)."""
    seen: set[str] = set()
    stack = [job]
    while stack:
        j = stack.pop()
        for ref in j.spec.refs.values():
            obj = g.resolve(ref)
            if obj.state == _FINISHED or not obj.producer or obj.producer in seen:
                continue
            seen.add(obj.producer)
            p = g.jobs.get(obj.producer)
            if p is None or p.done:
                continue
            p.demand += count
            touched[p.id] = p
            stack.append(p)


def add_batch(g: Graph, jobs: list[Job], key: Callable[[Job], Any]) -> None:
    """What Graph._add_demand(job) for each of `jobs` in turn would add."""
    carry: dict[str, int] = {}
    parent: dict[str, Job | None] = {}  # the one producer, None: several or none
    multi: dict[str, Job] = {}
    pending: dict[str, int] = {}  # how many jobs still hand this one a carry
    node: dict[str, Job] = {}
    # Pass 1: the carry forest, each job's producers looked up once.
    for job in jobs:
        carry[job.id] = carry.get(job.id, 0) + 1
        x = job
        while x.id not in parent:
            node[x.id] = x
            ps = producers(g, x)
            if len(ps) == 1:
                (q,) = ps.values()
                parent[x.id] = q
                pending[q.id] = pending.get(q.id, 0) + 1
                x = q
            else:
                parent[x.id] = None
                if ps:
                    multi[x.id] = x
                break
    # Pass 2: leaves first; a job's carry is complete when no child is pending.
    touched: dict[str, Job] = {}
    ready = [jid for jid in node if not pending.get(jid)]
    while ready:
        jid = ready.pop()
        c = carry.pop(jid, 0)
        if not c:
            q = parent[jid]
            if q is not None:
                _done_child(q.id, pending, ready)
            continue
        q = parent[jid]
        if q is not None:
            q.demand += c
            touched[q.id] = q
            carry[q.id] = carry.get(q.id, 0) + c
            _done_child(q.id, pending, ready)
        elif jid in multi:
            walk(g, multi[jid], c, touched)
    # Left over only on a cycle of single-producer links (no order exists):
    # each one's own walk is what its carry stands for.
    for jid, c in carry.items():
        if c:
            walk(g, node[jid], c, touched)
    heap = g._heap
    for p in touched.values():
        if p.state == _RUNNABLE:
            heapq.heappush(heap, key(p))


def _done_child(qid: str, pending: dict[str, int], ready: list[str]) -> None:
    left = pending[qid] - 1
    pending[qid] = left
    if not left:
        ready.append(qid)
