"""The coordinator's job graph: jobs, the objects they read and write, and the
runnable queue. Pure bookkeeping: no sockets, no disk, so every rule here is
testable on its own and the hot path stays a few dict operations per job.

Rules:
* A job is `waiting` until every input object is finished, then `runnable`.
  Object completion comes from storage events, never from compute results.
* Runnable jobs leave the queue workorders first, then by demand (unfinished
  jobs transitively blocked on them), priority, deadline, age (submit order).
  Demand is counted once, when a dependent is registered, by walking its
  unfinished ancestors.
* A hard failure fails every job that waits on the failed job's outputs,
  transitively, with a cause naming the job that failed.
* A delegation points an output at another job's output; the waiters move.
* `after` (spec): a job also waits until each named job has succeeded (and
  what it delegated is made: order.py); it fails (or is cancelled) with
  them like a reader of their outputs.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Iterable, Iterator

from weft.actors.model import JobSpec, SpecError, split_object_name
from weft.actors.plainspec import PlainSpec
from weft.protocol.enums import JobFailure, JobState, ObjectState, Outcome

from . import demand
from .causes import cause_from_failed, dependent_cause, root_failure
from .names import Names
from .order import release_after, settle_waits
from .records import (  # noqa: F401  (the names every graph rule uses)
    _CANCELLED_CODE,
    _INPUT_FAILED,
    _INTERNAL,
    CANCELLED,
    CANCELLING,
    DELEGATED,
    FAILED,
    FINISHED,
    LOST,
    RUNNABLE,
    RUNNING,
    SUCCEEDED,
    UNKNOWN,
    WAITING,
    Job,
    Obj,
    ObjState,
    is_late,
)

_INF = float("inf")
# The one empty map specs without refs or inputs share (see Graph._share).
_NO_MAP: dict = {}
_NO_SEEN: set = set()  # (never added to: a job with no refs does not loop)
# Distinct values Graph._share keeps before starting over.
_SHARED_MAX = 10_000


def _key(job: Job) -> tuple[int, int, int, float, int, str]:
    """The runnable heap's order: workorders first, then a job that already
    ran and goes again (its node lost, a retry: it was picked before what
    queued behind it, and keeps that place, as a requeued job does under
    HTCondor or Slurm), then the most jobs blocked on it, then priority,
    then the earliest deadline, then age. (The first two share one element:
    a seventh costs every comparison of the heap's sifts.)"""
    spec = job.spec
    rank = 0 if spec.job_class == "workorder" else 1 if job.attempts > job.excused else 2
    return (rank, -job.demand, -job.priority, _INF if spec.deadline is None else spec.deadline, job.seq, job.id)


class Graph:
    def __init__(self) -> None:
        self.jobs: dict[str, Job] = {}
        self.objects: dict[str, Obj] = {}
        self._heap: list[tuple[int, int, int, float, int, str]] = []
        self._seq = itertools.count(1)
        self.runnable_count = 0
        # Jobs whose state changed since the owner last drained this list:
        # the owner journals them and wakes whoever waits on them, in one place.
        self.changed: list[Job] = []
        # Job id -> jobs waiting for it to succeed (`after`), while it has not.
        self.after_waiters: dict[str, list[str]] = {}
        # (job, compute node) of dependents cancelled while started ahead on
        # a node (following): the owner tells the node, then clears this.
        self.to_stop: list[tuple[str, str]] = []
        self.names = Names()  # job names -> their versions (names.py)
        self.labels: dict[str, str] = {}  # job id -> FLOW:NAME, for causes (causes.py, flows.py)
        self._shared: dict = {}  # value -> its one copy (add_job)
        # Linked with defer_demand, their demand not counted yet (demand.py).
        self._deferred: list[Job] = []

    # -- registration ------------------------------------------------------------
    def add_job(self, job_id: str, spec: JobSpec | PlainSpec, *, now: float | None = None, seq: int | None = None) -> Job:
        """Register a new job (its outputs and its inputs' waits)."""
        if type(spec) is not PlainSpec:  # (shared as it was parsed: plainspec.py)
            self._share(spec)
        job = Job(job_id, spec, seq if seq is not None else next(self._seq), now or time.time())
        self.jobs[job_id] = job
        if spec.name is not None:
            self.names.add(job_id, spec.name)
        objects = self.objects
        prefix = job_id + "/"
        for out in spec.outputs:
            name = prefix + out
            obj = objects.get(name)
            if obj is None:
                objects[name] = Obj(name, job_id)
            else:
                obj.producer = job_id
        return job

    def _share(self, spec: JobSpec) -> None:
        """One copy of what many specs hold alike (the callable's name, the
        output names, an empty map): each decoded spec has its own, ~200
        bytes a job at 1,000,000 queued (docs/performance.md). Specs are
        never changed in place, so sharing is safe."""
        shared = self._shared
        if len(shared) > _SHARED_MAX:
            shared.clear()  # many distinct values: stop growing, share afresh
        call = spec.call
        if call is not None:
            spec.call = shared.setdefault(call, call)
        outs = spec.outputs
        if outs:
            spec.outputs = shared.setdefault(tuple(outs), outs)
        if not spec.refs:
            spec.refs = _NO_MAP
        if not spec.inputs:
            spec.inputs = _NO_MAP

    def bump_seq(self, seq: int) -> None:
        """After a journal replay: new jobs are numbered after the replayed ones."""
        self._seq = itertools.count(max(seq + 1, next(self._seq)))

    def check_inputs(self, spec: JobSpec, pending: set[str] = frozenset()) -> None:
        """Refuse a job whose input no known job produces and no storage holds."""
        for name, ref in spec.refs.items():
            if ref in self.objects or ref in pending:
                continue
            job, _ = split_object_name(ref)
            if job in self.jobs:
                raise SpecError(f"input {name!r}: job {job!r} has no output {ref.split('/', 1)[1]!r}")
            raise SpecError(f"input {name!r}: no job produces {ref!r} and no storage node holds it")

    def check_after(self, spec: JobSpec, pending: set[str] = frozenset()) -> None:
        """Refuse ordering after a job nobody submitted."""
        for a in spec.after:
            if a not in self.jobs and a not in pending:
                raise SpecError(f"after {a!r}: no such job")

    def _link_after(self, job: Job) -> int | None:
        """Wait for each `after` job not succeeded yet; None when one of them
        already failed or was cancelled (then `job` is failed)."""
        missing = 0
        waiters = self.after_waiters
        for a in dict.fromkeys(job.spec.after):
            other = self.jobs.get(a)
            if other is None or other is job:
                continue
            if other.state == SUCCEEDED:
                # After a delegator: after what it delegated (order.py).
                n = settle_waits(self, job, other) if other.handed else 0
                if n is None:
                    return None
                missing += n
                continue
            if other.state in (FAILED, CANCELLED):
                self.fail(job, cause_from_failed("after ", other, self.jobs, self.labels))
                return None
            lst = waiters.setdefault(a, [])
            if job.id not in lst:
                lst.append(job.id)
            missing += 1
        return missing

    def link_inputs(self, job: Job, *, defer_demand: bool = False) -> list[Job]:
        """Count the job's unfinished inputs; returns jobs that failed it at once.

        defer_demand: count its demand at the next flush_demand() (a batch's
        walks merged: O(n) for a chain of n instead of O(n^2)); the caller
        flushes before anything else can change the graph."""
        missing = 0
        if job.spec.after:
            after = self._link_after(job)
            if after is None:
                return [job]
            missing = after
        refs = job.spec.refs
        seen: set[str] = set() if refs else _NO_SEEN  # (a `map`'s jobs read no objects)
        for ref in refs.values():
            obj = self.resolve(ref)
            if obj.state == FINISHED or obj.name in seen:
                continue  # (two inputs may read one object: it is one wait)
            seen.add(obj.name)
            producer = self.jobs.get(obj.producer) if obj.producer else None
            if producer is not None and producer.state in (FAILED, CANCELLED):
                self.fail(job, cause_from_failed(f"input {ref}: ", producer, self.jobs, self.labels),
                          code=_INPUT_FAILED, detail=producer.id)
                return [job]
            if obj.waiters is None:
                obj.waiters = []
            # A job linked again (resubmitted after failing) may still be
            # listed from before: listed once, released once.
            if job.id not in obj.waiters:
                obj.waiters.append(job.id)
            missing += 1
        job.missing = missing
        if missing and defer_demand:
            self._deferred.append(job)
        elif missing:
            self._add_demand(job)
        else:
            self.make_runnable(job)
        return []

    def flush_demand(self) -> None:
        """Count the demand of the jobs linked with defer_demand (demand.py)."""
        if self._deferred:
            jobs, self._deferred = self._deferred, []
            demand.add_batch(self, jobs, _key)

    def _add_demand(self, job: Job) -> None:
        touched: dict[str, Job] = {}
        demand.walk(self, job, 1, touched)
        for p in touched.values():
            if p.state == RUNNABLE:
                heapq.heappush(self._heap, _key(p))

    def resolve(self, name: str) -> Obj:
        """The object at the end of a delegation chain (created as unknown if new)."""
        obj = self.objects.get(name)
        if obj is None:
            job, _ = split_object_name(name)
            obj = self.objects[name] = Obj(name, job if job in self.jobs else None)
        hops = 0
        while obj.state == DELEGATED and obj.target and hops < 1000:
            nxt = self.objects.get(obj.target)
            if nxt is None:
                break
            obj = nxt
            hops += 1
        return obj

    # -- the runnable queue ------------------------------------------------------
    def make_runnable(self, job: Job) -> None:
        job.state = RUNNABLE
        job.node = None
        self.runnable_count += 1
        heapq.heappush(self._heap, _key(job))

    def pop_runnable(self) -> Job | None:
        heap = self._heap
        jobs = self.jobs
        while heap:
            _, neg_demand, _, _, _, jid = heapq.heappop(heap)
            job = jobs.get(jid)
            if job is None or job.state != RUNNABLE or -neg_demand != job.demand:
                continue  # stale entry: a newer one with the current demand exists
            self.runnable_count -= 1
            return job
        return None

    def runnable(self) -> Iterator[Job]:
        return (j for j in self.jobs.values() if j.state == RUNNABLE)

    # -- object news -------------------------------------------------------------
    def object_finished(self, name: str, storage: str | None, size: int | None = None) -> list[Job]:
        """Storage says `name` is finished: returns the jobs that became runnable."""
        obj = self.objects.get(name)
        if obj is None:
            job, _ = split_object_name(name)
            obj = self.objects[name] = Obj(name, job if job in self.jobs else None)
        obj.state = FINISHED
        obj.lost_at = None
        if storage is not None:
            obj.add_loc(storage)
        obj.size = size
        return self._release_waiters(obj)

    def copy_gone(self, obj: Obj, node: str, *, lost_at: float | None) -> bool:
        """`node` no longer holds `obj`. If that was the last copy of a
        finished object, it is lost since `lost_at` (lineage may make it
        again), or unknown when `lost_at` is None (deleted on purpose).
        True if it became lost."""
        if node not in obj.locs:
            return False
        obj.locs = tuple(n for n in obj.locs if n != node)
        if obj.locs or obj.state != FINISHED:
            return False
        if lost_at is None:
            obj.state = UNKNOWN
            return False
        obj.state = LOST
        obj.lost_at = lost_at
        return True

    def mark_lost(self, obj: Obj, now: float) -> None:
        """A finished object has no live copy left (noticed when reading it)."""
        obj.state = LOST
        obj.lost_at = obj.lost_at or now

    def forget_state(self, obj: Obj) -> None:
        """What storage said of an unfinished object no longer holds (its
        partial bytes were deleted, or it is to be made again)."""
        if obj.state != FINISHED:
            obj.state = UNKNOWN

    def object_reported(self, obj: Obj, state: ObjectState) -> None:
        """Storage reports an unfinished state (`empty`, `partial`); a
        finished object stays finished (another replica is still arriving)."""
        if obj.state != FINISHED:
            obj.state = state

    def fail_waiters(self, obj: Obj, cause: str) -> None:
        """Nothing can make `obj`: every job waiting on it fails."""
        waiters, obj.waiters = obj.waiters, None
        for wid in waiters or ():
            w = self.jobs.get(wid)
            if w is not None and not w.done:
                self.fail(w, cause, code=JobFailure.INPUT_LOST, detail=obj.name)

    def adopt(self, job: Job, node: str, token: int) -> None:
        """A task we had not started (or had given up on) runs on `node`: it is this job's attempt."""
        if job.state == RUNNABLE:
            self.runnable_count -= 1
        job.state, job.node, job.token = RUNNING, node, token
        job.ran_on = node

    def wait_on(self, job: Job, obj: Obj) -> None:
        """`job` cannot run until `obj` is finished (again)."""
        if obj.waiters is None:
            obj.waiters = []
        if job.id not in obj.waiters:
            obj.waiters.append(job.id)
            job.missing += 1
        job.state = WAITING

    def rerun(self, job: Job, cause: str) -> None:
        """Lineage: a finished job runs again because an output it made was lost."""
        job.state = WAITING
        job.outcome = None
        job.finished = None
        job.started = None
        job.node = None
        job.cause = cause
        job.placement = None
        # A retry (its attempts so far kept): its outputs may still exist
        # finished on a node that comes back, so the rerun must create them
        # with `replace` (dispatch.py retry_creates).
        job.attempts = max(job.attempts, job.excused + 1)
        self.changed.append(job)
        self.link_inputs(job)

    def _release_waiters(self, obj: Obj) -> list[Job]:
        ready = []
        waiters, obj.waiters = obj.waiters, None
        for jid in waiters or ():
            job = self.jobs.get(jid)
            if job is None or job.state != WAITING:
                continue
            job.missing -= 1
            if job.missing <= 0:
                self.make_runnable(job)
                ready.append(job)
        return ready

    def delegate(self, name: str, target: str) -> list[Job]:
        """`name` now resolves to `target`; its waiters wait on the target instead."""
        obj = self.objects.get(name) or self.resolve(name)
        obj.state = DELEGATED
        obj.target = target
        final = self.resolve(target)
        if final.state == FINISHED:
            return self._release_waiters(obj)
        if obj.waiters:
            if final.waiters is None:
                final.waiters = []
            final.waiters.extend(obj.waiters)
            obj.waiters = None
        return []

    # -- job outcomes ------------------------------------------------------------
    def succeed(self, job: Job, now: float | None = None) -> None:
        job.state = SUCCEEDED
        job.outcome = Outcome.SUCCESS
        if job.code is not None or job.detail is not None:  # (no __dict__ made for nothing: records.py)
            job.code = job.detail = None
        job.finished = now or time.time()
        job.node = None
        self.changed.append(job)
        if self.after_waiters:
            release_after(self, job)  # (order.py)

    def fail(self, job: Job, cause: str, *, outcome: Outcome = Outcome.FAILED_HARD,
             state: JobState = FAILED, code: str | None = None, detail: str | None = None,
             cascade: JobState = FAILED) -> list[Job]:
        """Fail `job` and, transitively, every job waiting on its outputs
        (`input-failed`, naming the job), or with `cascade=CANCELLED` cancel
        them all, naming `job`. `code` is a JobFailure (by default `cancelled`
        for a cancelled job, else `internal`)."""
        if self._deferred:
            self.flush_demand()  # counted while the jobs it fails are not done, as unbatched
        failed = []
        if cascade == CANCELLED:
            return self._cancel_tree([job], cause, job.id)
        if code is None:
            code = _CANCELLED_CODE if state == CANCELLED else _INTERNAL
        stack = [(job, cause, outcome, state, code, detail)]
        root_text = None  # the root failure, worded once for every dependent (causes.py)
        while stack:
            j, c, oc, st, j_code, j_detail = stack.pop()
            if j.done:
                continue
            if j.state == RUNNABLE:
                self.runnable_count -= 1
            j.state = st
            j.outcome = oc
            j.cause = c
            j.code, j.detail = j_code, j_detail
            j.finished = time.time()
            j.node = None
            failed.append(j)
            self.changed.append(j)
            for name in self._output_chain(j):
                obj = self.objects.get(name)
                if obj is None or not obj.waiters:
                    continue
                waiters, obj.waiters = obj.waiters, None
                for wid in waiters:
                    w = self.jobs.get(wid)
                    if w is not None and not w.done:
                        root_text = root_text or root_failure(job, state, cause, self.labels)
                        stack.append((w, dependent_cause(f"input {name}: ", j, st, job, root_text),
                                      Outcome.FAILED_HARD, FAILED, _INPUT_FAILED, j.id))
            if self.after_waiters:
                for wid in self.after_waiters.pop(j.id, ()):
                    w = self.jobs.get(wid)
                    if w is not None and not w.done:
                        root_text = root_text or root_failure(job, state, cause, self.labels)
                        stack.append((w, dependent_cause("after ", j, st, job, root_text),
                                      Outcome.FAILED_HARD, FAILED, _INPUT_FAILED, j.id))
        return failed

    def cancel_dependents(self, job: Job, cause: str) -> list[Job]:
        """Cancel every job waiting on `job`'s outputs, transitively (not `job`)."""
        return self._cancel_tree(self._take_waiters(job), cause, job.id)

    def _take_waiters(self, job: Job) -> list[Job]:
        out = []
        for name in self._output_chain(job):
            obj = self.objects.get(name)
            if obj is None or not obj.waiters:
                continue
            waiters, obj.waiters = obj.waiters, None
            out += [w for wid in waiters if (w := self.jobs.get(wid)) is not None and not w.done]
        if self.after_waiters:
            out += [w for wid in self.after_waiters.pop(job.id, ())
                    if (w := self.jobs.get(wid)) is not None and not w.done]
        return out

    def _cancel_tree(self, jobs: list[Job], cause: str, root: str) -> list[Job]:
        done = []
        stack = list(jobs)
        now = time.time()
        while stack:
            j = stack.pop()
            if j.done:
                continue
            if j.state == RUNNABLE:
                self.runnable_count -= 1
            elif j.state == RUNNING and j.node is not None and j.id != root:
                self.to_stop.append((j.id, j.node))
            j.state = CANCELLED
            j.outcome = Outcome.CANCELLED
            j.cause = cause if j.id == root else f"job {root} was cancelled"
            j.code, j.detail = _CANCELLED_CODE, (None if j.id == root else root)
            j.finished = now
            j.node = None
            done.append(j)
            self.changed.append(j)
            stack += self._take_waiters(j)
        return done

    def start_cancelling(self, job: Job, cause: str) -> None:
        """A running job asked to stop: its outcome waits for its node's word."""
        job.state = CANCELLING
        job.cause = cause
        self.changed.append(job)

    def _output_chain(self, job: Job) -> Iterable[str]:
        yield from job.outputs()

    def requeue(self, job: Job, cause: str, *, runnable: bool = True) -> None:
        """A soft failure: the job runs again (now, or `waiting` until its
        owner makes it runnable again: a retry backing off)."""
        job.cause = cause
        job.node = None
        job.started = None
        if runnable:
            self.make_runnable(job)
        else:
            job.state = WAITING
            job.missing = 0
        self.changed.append(job)

    # -- forgetting (gc.py decides what) -----------------------------------------
    def forget_job(self, job: Job, extra: tuple[str, ...] = ()) -> list[Obj]:
        """Drop a finished job, its outputs' records and those of `extra`
        objects of it (e.g. its log); returns the objects dropped."""
        del self.jobs[job.id]
        if job.spec.name is not None:
            self.names.forget(job.id, job.spec.name)
        if self.labels:
            self.labels.pop(job.id, None)
        gone = []
        for name in (*job.outputs(), *extra):
            obj = self.objects.pop(name, None)
            if obj is not None:
                gone.append(obj)
        return gone

    def compact(self) -> None:
        """After many jobs were forgotten: a dict never gives back the table
        its deleted keys used, so the tables are rebuilt at their live size
        (in place: others hold these dicts)."""
        for table in (self.jobs, self.objects):
            live = dict(table)
            table.clear()
            table.update(live)

    # -- views -----------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        c: dict[str, int] = {}
        for j in self.jobs.values():
            state = j.shown_state
            c[state] = c.get(state, 0) + 1
        return c
