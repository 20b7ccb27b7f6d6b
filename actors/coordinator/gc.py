"""Forgetting finished jobs: `weft delete` and garbage collection.

Pure decisions on the coordinator's state, like state.py: which jobs go,
what of them storage must delete, what the journal must drop. The shell
(gc_ops.py) carries it out: batched deletes on storage, the journal rows
deleted in a group commit, then the journal compacted off the event loop.

Rules:
* Only finished jobs (succeeded, failed, cancelled) are forgotten.
* A job is *needed* while an unfinished job reads one of its outputs
  (directly, or through a delegation chain that passes through it): gc keeps
  it whatever its age, and `delete` refuses it unless forced. A forced
  delete fails the waiting jobs that read it, naming it.
* A job that delegated an output and the job it delegated to go together:
  the delegate is kept while its delegator is kept (the delegator's output
  *is* the delegate's).
* What goes: the job's record (its attempts are columns of it), its outputs,
  its log object `JOB/_log` and its depfile record `JOB/_deps` (if it left
  one) on every storage node that may hold them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import field
from typing import TYPE_CHECKING

from weft.actors.model import SpecError
from weft.bus.errors import BusError
from weft.protocol.enums import TERMINAL_JOB_STATES, ErrorCode
from weft.protocol.follow import LOG_OUTPUT
from weft.protocol.record import record
from weft.protocol.tasks import TaskRef

from .effects import Send
from .graph import DELEGATED, RUNNING, Graph, Job

if TYPE_CHECKING:
    from .state import CoordinatorState

DAY = 86400.0
DEFAULT_KEEP = 7 * DAY


@record
class Forgotten:
    """What one delete or gc took from the state, for the shell to finish."""

    jobs: list[str] = field(default_factory=list)
    # storage node -> object names to delete there (outputs and logs)
    objects: dict[str, list[str]] = field(default_factory=dict)
    bytes: int = 0  # sizes of the outputs known to us (logs' sizes are storage's)
    retained: int = 0  # finished jobs kept (younger than the retention, or needed)
    failed: list[str] = field(default_factory=list)  # waiting jobs a forced delete failed


def needed(graph: Graph) -> set[str]:
    """Ids of finished jobs an unfinished job reads an output of (directly
    or through a delegation chain)."""
    jobs = graph.jobs
    objects = graph.objects
    out: set[str] = set()
    for job in jobs.values():
        if job.state in TERMINAL_JOB_STATES or not job.spec.refs:
            continue
        for ref in job.spec.refs.values():
            obj = objects.get(ref)
            hops = 0
            while obj is not None and hops < 1000:
                if obj.producer is not None:
                    out.add(obj.producer)
                if obj.state != DELEGATED or not obj.target:
                    break
                obj = objects.get(obj.target)
                hops += 1
    return out


def collectable(graph: Graph, now: float, keep: float) -> tuple[list[Job], int]:
    """Finished jobs older than `keep` (by their end) that nothing unfinished
    needs, and how many finished jobs stay."""
    need = needed(graph)
    cutoff = now - keep
    old: dict[str, Job] = {}
    done = 0
    for job in graph.jobs.values():
        if job.state not in TERMINAL_JOB_STATES:
            continue
        done += 1
        if job.id in need:
            continue
        ended = job.finished if job.finished is not None else job.submitted
        if ended <= cutoff:
            old[job.id] = job
    # A delegate stays while the job that delegated to it stays.
    for job in graph.jobs.values():
        if job.delegate and job.id not in old:
            d = graph.jobs.get(job.delegate)
            hops = 0
            while d is not None and d.id in old and hops < 1000:
                del old[d.id]
                d = graph.jobs.get(d.delegate) if d.delegate else None
                hops += 1
    return list(old.values()), done - len(old)


def resolve_for_delete(graph: Graph, refs: Iterable[str], force: bool) -> list[Job]:
    """The jobs `weft delete` names (each a job id or NAME, NAME@K), checked:
    SpecError (one line) naming the first that cannot go."""
    jobs: list[Job] = []
    need = None
    for ref in refs:
        jid = graph.names.resolve(ref)
        job = graph.jobs.get(jid)
        if job is None:
            raise BusError(f"no job {ref!r}", code=ErrorCode.MISSING)
        if job.state not in TERMINAL_JOB_STATES:
            raise SpecError(f"job {jid} is {job.shown_state}: only finished jobs can be deleted "
                            "(cancel it first)")
        if not force:
            if need is None:
                need = needed(graph)
            if jid in need:
                readers = _readers(graph, job)
                raise SpecError(f"job {jid} is needed by {len(readers)} unfinished job(s) (e.g. {readers[0]}): "
                                "wait for them, or delete with --force (they fail)")
        if job not in jobs:
            jobs.append(job)
    return jobs


def _readers(graph: Graph, job: Job) -> list[str]:
    outs = set(job.outputs())
    return [j.id for j in graph.jobs.values()
            if j.state not in TERMINAL_JOB_STATES and any(graph.resolve(r).name in outs or r in outs
                                                          for r in j.spec.refs.values())] or ["?"]


def forget(state: CoordinatorState, jobs: list[Job], *, fail_readers: bool = False,
           into: Forgotten | None = None, compact: bool = True) -> Forgotten:
    """Take `jobs` out of the state. Storage deletes are listed per node:
    every node that holds or may hold each object (where we know copies
    are, the job's placement; with neither known, every storage node: a
    delete of an absent name costs storage a dictionary miss)."""
    # Loaded here, not with the coordinator: its image is startup's time (docs/performance.md).
    from weft.actors.depfiles import DEPS_OUTPUT

    g = state.graph
    f = into if into is not None else Forgotten()
    every = list(state.storages)
    gone_names: set[str] = set()
    for job in jobs:
        if job.id not in g.jobs:
            continue
        log_name = f"{job.id}/{LOG_OUTPUT}"
        # Its depfile record, when storage said it has one (few jobs write one).
        deps_name = f"{job.id}/{DEPS_OUTPUT}"
        extra = (log_name, deps_name) if deps_name in g.objects else (log_name,)
        names = [*job.outputs(), *extra]
        gone_names.update(job.outputs())
        objs = {o.name: o for o in g.forget_job(job, extra)}
        for name in names:
            obj = objs.get(name)
            nodes = list(obj.locs) if obj is not None and obj.locs else []
            for n in job.placement or ():
                if n not in nodes:
                    nodes.append(n)
            if obj is not None:
                if obj.size:
                    f.bytes += obj.size
                if obj.data is not None:
                    state.inline_bytes -= len(obj.data)
                    obj.data = None
                state.repair.forget(name)
                state.lost_objects.discard(name)
            for n in nodes or every:
                f.objects.setdefault(n, []).append(name)
        state.watchers.pop(job.id, None)
        state.awaiting.pop(job.id, None)
        f.jobs.append(job.id)
    if compact and len(f.jobs) > 1000 and len(f.jobs) > len(g.jobs) // 4:
        g.compact()
    if fail_readers and gone_names:
        # Forced: jobs waiting to read what went fail now, naming it, rather than wait forever.
        for j in list(g.jobs.values()):
            if j.done or (j.state == RUNNING and not j.ahead):
                continue  # (one running has its inputs: left to finish)
            for ref in j.spec.refs.values():
                if ref in gone_names:
                    if j.state == RUNNING:
                        _unpark(state, j)
                    producer = ref.split("/", 1)[0]
                    f.failed += [x.id for x in g.fail(j, f"input {ref}: job {producer} was deleted")]
                    break
    return f


def _unpark(state: CoordinatorState, job: Job) -> None:
    """A job started ahead (parked on the node making its other input) is
    taken back there, as a cancel does."""
    ref = state.computes.get(job.node or "")
    if ref is not None:
        ref.unassign(job.id)
        state._out.append(Send(ref.endpoint, "cancel", TaskRef(job.id, state.epoch),
                               f"taking back {job.id} (its input was deleted) on {ref.node}"))
