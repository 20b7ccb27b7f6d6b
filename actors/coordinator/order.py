"""Ordering without data (`after`): what "after a job" waits for, and which
orderings are refused because they would wait forever.

A job that delegated an output has succeeded before that output exists: the
job it handed the output to (and any it handed on to) still runs. A user
who orders work after it means after that work, so a job ordered after a
delegator waits, like a reader of the output, for the object at the end of
the delegation chain; it fails (or is cancelled) with the job that was to
make it. The graph asks here (`Graph.succeed`: `release_after`;
`Graph._link_after`: `settle_waits`).

A cycle of `after` (a after b after a, or a after itself) would leave every
job on it waiting for good: a submit that would make one is refused with a
line naming it. Ids are hashes of specs that include `after`, so only named
jobs (whose id is their name) can form one.
"""

from __future__ import annotations

from typing import Any, Protocol

from weft.actors.model import JobSpec, SpecError
from weft.protocol.enums import JobFailure, JobState

from .causes import cause_from_failed, label
from .records import CANCELLED, FAILED, FINISHED, WAITING, Job


class GraphView(Protocol):
    """What the order rules use of the job graph (graph.py, which imports
    this module: naming the class here would import it back)."""

    jobs: dict[str, Job]
    objects: dict[str, Any]
    after_waiters: dict[str, Any]
    labels: Any

    def resolve(self, name: str) -> Any: ...

    def make_runnable(self, job: Job) -> Any: ...

    def fail(self, job: Job, cause: str, *args: Any, **kw: Any) -> Any: ...


def release_after(graph: GraphView, job: Job) -> None:
    """`job` succeeded: each job ordered after it waits on one job less, or,
    when `job` delegated, on what it delegated instead."""
    for wid in graph.after_waiters.pop(job.id, ()):
        w = graph.jobs.get(wid)
        if w is not None and w.state == WAITING:
            n = settle_waits(graph, w, job) if job.handed else 0
            if n is None:
                continue  # (it failed)
            w.missing += n - 1
            if w.missing <= 0:
                graph.make_runnable(w)


def settle_waits(graph: GraphView, waiter: Job, job: Job) -> int | None:
    """`waiter` is ordered after `job`, which succeeded. Make it wait for the
    end of `job`'s delegation, if unfinished; returns how many objects it now
    waits on (0: nothing, `job` settled), or None when the job that was to
    make one already failed or was cancelled (then `waiter` is failed)."""
    if not job.handed:
        return 0
    final = graph.resolve(f"{job.id}/{job.handed[0]}")
    if final.state == FINISHED:
        return 0
    maker = graph.jobs.get(final.producer) if final.producer else None
    if maker is not None and maker.state in (FAILED, CANCELLED):
        graph.fail(waiter, cause_from_failed(f"after job {job.id} ({label(job, graph.labels)}), delegated to ",
                                             maker, graph.jobs, graph.labels),
                   code=JobFailure.INPUT_FAILED, detail=maker.id)
        return None
    if maker is not None and not maker.done and _waits_for(graph, maker, waiter.id):
        # The delegate (made at run time, so never checked at submit) waits
        # on the waiter itself: waiting for it would be for good.
        graph.fail(waiter, f"after job {job.id} ({label(job, graph.labels)}): the job it delegated to, "
                           f"{maker.id}, waits for this one (a cycle)",
                   code=JobFailure.INPUT_FAILED, detail=maker.id)
        return None
    if final.waiters is None:
        final.waiters = []
    if waiter.id not in final.waiters:
        final.waiters.append(waiter.id)
    return 1


def _waits_for(graph: GraphView, start: Job, target: str) -> bool:
    """Whether unfinished `start` waits, through `after` or inputs, on the job `target`."""
    jobs, objects, waits = graph.jobs, graph.objects, graph.after_waiters
    seen = {start.id}
    stack = [start]
    while stack:
        job = stack.pop()
        nxt = [a for a in job.spec.after if job.id in waits.get(a, ())] if job.spec.after else []
        for ref in job.spec.refs.values():
            obj = objects.get(ref)
            if obj is not None:
                obj = graph.resolve(ref)
                if obj.producer and obj.waiters and job.id in obj.waiters:
                    nxt.append(obj.producer)
        for jid in nxt:
            if jid == target:
                return True
            other = jobs.get(jid)
            if jid not in seen and other is not None and not other.done:
                seen.add(jid)
                stack.append(other)
    return False


def check_cycles(graph: GraphView, ids: list[str], specs: list[JobSpec]) -> None:
    """Refuse a submit whose `after` orderings close a cycle, through its own
    jobs and the jobs already waiting (SpecError naming the cycle)."""
    jobs = graph.jobs
    submitted = set(ids)
    batch = {jid: spec.after for jid, spec in zip(ids, specs, strict=True) if spec.after and jid not in jobs}

    def edges(jid: str) -> list[str] | tuple[()]:
        if jid in batch:
            return batch[jid]
        job = jobs.get(jid)
        if job is None or not job.spec.after:
            return ()
        if job.done:
            # A failed or cancelled job submitted again is linked again with its own spec.
            return job.spec.after if jid in submitted and job.state != JobState.SUCCEEDED else ()
        waits = graph.after_waiters
        return [a for a in job.spec.after if jid in waits.get(a, ())]

    starts = [jid for jid in dict.fromkeys(ids) if edges(jid)]
    done: set[str] = set()
    for start in starts:
        if start in done:
            continue
        # Depth first, iteratively (a long chain must not hit the recursion limit).
        path, on_path = [start], {start}
        stack = [iter(edges(start))]
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                stack.pop()
                finished = path.pop()
                on_path.discard(finished)
                done.add(finished)
                continue
            if nxt in on_path:
                cycle = [*path[path.index(nxt):], nxt]
                raise SpecError(f"--after cycle: {' -> '.join(cycle)} (each would wait for the next for good)")
            if nxt in done:
                continue
            path.append(nxt)
            on_path.add(nxt)
            stack.append(iter(edges(nxt)))
