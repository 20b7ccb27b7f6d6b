"""Submits, as part of the coordinator state: every spec checked before any
is taken, then jobs registered and linked to their inputs in slices, so the
shell answers other calls between slices; a spec matching a known job joins
it or is answered from it, and the answer names what it did not get."""

from __future__ import annotations

import logging
from collections.abc import Generator

from weft.actors.model import JobSpec, SpecError
from weft.actors.plainspec import PlainSpec

from . import names, order
from .effects import Effect
from .graph import CANCELLED, FAILED, SUCCEEDED, WAITING, Job

log = logging.getLogger("weft.coordinator")

# A submit is taken this many specs at a time: between slices the shell
# answers other calls (stats, status, polls).
SUBMIT_SLICE = 1000
# Submit settings that are not part of a job's identity, by the name a user
# knows them under: a resubmit asking for other values gets the existing job
# (and is told which settings it did not get).
_SETTINGS = (("priority", "priority"), ("timeout", "time_limit"), ("retries", "retries"),
             ("retry_delay", "retry_delay"), ("pending_timeout", "pending_timeout"), ("on_exit", "on_exit"),
             ("cpus", "cpus"), ("memory", "memory"), ("host", "host"), ("prefer_host", "prefer_host"),
             ("node", "node"), ("job_class", "class"), ("deadline", "deadline"))
# With a user-given name the name is the identity: the work itself may differ.
_WORK = (("command", "command"), ("call", "call"), ("inputs", "inputs"), ("refs", "refs"), ("outputs", "outputs"))


class SubmitMixin:
    """Part of CoordinatorState (state.py), which has the graph, the clock and the effects."""

    # -- user requests -----------------------------------------------------------------------
    def submit(self, specs: list[JobSpec], replace: bool = False,
               owner: str | None = None) -> tuple[list[Submitted], list[Effect]]:
        """Accept jobs (all checked before any is accepted; within one call a
        job may read the outputs of jobs listed before or after it). A spec
        matching a known job joins it, is answered from it (cached), or runs
        it again if it failed or was cancelled."""
        steps = self.submitting(specs, replace=replace, owner=owner)
        effects: list[Effect] = []
        while True:
            try:
                effects += next(steps)
            except StopIteration as done:
                return done.value, effects

    def submitting(self, specs: list[JobSpec], chunk: int = SUBMIT_SLICE,
                   replace: bool = False, owner: str | None = None) -> Generator[list[Effect], None, list[Submitted]]:
        """`submit` in slices of `chunk` specs: yields the effects of each
        slice, so the shell can answer other calls between slices, and
        returns the results. Every spec is checked before any is taken (a
        bad one refuses the whole submit with SpecError, nothing changed).
        Jobs are registered, then linked to their inputs, in slices; one
        cancelled or joined meanwhile by another call is left as it is.
        New jobs belong to `owner`, children to their root's owner (owners.py)."""
        g = self.graph
        # (A PlainSpec has none of what the passes below look for: one pass
        # over a `map`'s specs instead of three.)
        other = [s for s in specs if type(s) is not PlainSpec]
        if any(s.spawned_by is not None or s.windows or s.root is not None for s in other):
            self.take_submission_fields(specs)  # (spawn.py) children named under their parents
        # Names and versions (names.py): a taken name given other work is refused unless `replace`.
        named, made = names.named_ids(specs, g.names, g.jobs, replace)
        ids: list[str] = []
        ordered = [s for s in other if s.after or s.after_groups]
        if ordered:
            self.expand_after_groups(ordered)  # (control.py) before ids: they are identity
        for i in range(0, len(specs), chunk):
            ids += [jid if jid is not None else names.unnamed_id(spec, g.names, made)
                    for jid, spec in zip(named[i:i + chunk], specs[i:i + chunk], strict=True)]
            if i + chunk < len(specs):
                yield []
        # Only jobs reading objects or ordered after others have anything to
        # check (a `map`'s have not: no set of every output name is made).
        if ordered or any(s.refs for s in other):
            pending = {f"{jid}/{o}" for jid, spec in zip(ids, specs, strict=True) for o in spec.outputs}
            id_set = set(ids) if ordered else set()
            for i, spec in enumerate(specs):
                if i and i % chunk == 0:
                    yield []  # nothing taken yet: only checked
                try:
                    g.check_inputs(spec, pending)
                    if spec.after:
                        g.check_after(spec, id_set)
                except SpecError as e:
                    raise SpecError(f"job #{i + 1}: {e}") from None
        if ordered:
            order.check_cycles(g, ids, specs)
        results: list[Submitted] = []
        new_jobs: list[Job] = []
        now = self.wall()
        for n, (jid, spec) in enumerate(zip(ids, specs, strict=True)):
            if n and n % chunk == 0:
                yield self._flush()
            job = g.jobs.get(jid)
            if job is None:
                job = g.add_job(jid, spec, now=now)
                root = g.jobs.get(spec.root) if spec.root is not None else None
                job.owner = root.owner if root is not None else owner
                new_jobs.append(job)
                self._new.append(job)
                results.append(Submitted(job))
                continue
            sub = Submitted(job, differs=differing_settings(job, spec))
            if job.state in (FAILED, CANCELLED):
                # Resubmitting a failed job runs it again.
                job.state, job.outcome, job.cause, job.finished, job.attempts = WAITING, None, None, None, 0
                job.excused = job.own = 0
                job.exit_code = job.code = job.detail = job.tail = None
                job.priority = spec.priority
                new_jobs.append(job)
                g.changed.append(job)
            else:
                sub.cached = job.state == SUCCEEDED
                sub.joined = not sub.cached
                if spec.priority > job.priority:
                    job.priority = spec.priority
            results.append(sub)
        for n, job in enumerate(new_jobs):
            if n and n % chunk == 0:
                g.flush_demand()  # before anything else may run (demand.py)
                yield self._flush()
            if job.state == WAITING:  # (not cancelled meanwhile)
                g.link_inputs(job, defer_demand=True)
                if job.spec.pending_timeout is not None:
                    self.arm_pending(job, now)
        g.flush_demand()
        yield self._flush()
        return results




class Submitted:
    """How one submitted spec was taken: a new job, the cached result of a
    finished one, or joined to one queued or running (`differs`: settings the
    submit asked for that the existing job does not have)."""

    __slots__ = ("job", "cached", "joined", "differs")

    def __init__(self, job: Job, differs: list[str] | None = None) -> None:
        self.job = job
        self.cached = False
        self.joined = False
        self.differs = differs or []


def differing_settings(job: Job, spec: JobSpec) -> list[str]:
    """Settings of `spec` that differ from the existing `job`'s and are not
    part of its identity, by their user-facing names."""
    old = job.spec
    out = [label for attr, label in _SETTINGS
           if (job.priority if attr == "priority" else getattr(old, attr)) != getattr(spec, attr)]
    if spec.name is not None:
        out += [label for attr, label in _WORK if getattr(old, attr) != getattr(spec, attr)]
    return out
