"""Flows by name, and submissions that fail fast. A mixin of
CoordinatorState (state.py).

Flow names
    A submit from a flow file says the flow's name and each job's name in
    it; the newest submission of a flow replaces the table of that name,
    so `FLOW:JOB` (status, wait, get) means the job JOB of the flow's
    newest submission; a job's FLOW:JOB names it in its dependents' causes
    (causes.py). The table is journaled as one meta value (FLOWS),
    rewritten when a flow is submitted: flows are few and small next to
    their jobs. A job forgotten by gc leaves its entry pointing at nothing
    (`no job ...`, as for any id).

Failing fast
    A submit with `fail_fast` (a submission id; a flow submitted in several
    slices sends the same id with each) watches its jobs that are not done:
    at the first one that fails (not cancelled; one failed by the submit
    itself, its input's job having failed, counts), every other watched job of
    the submission still queued, waiting or running is cancelled (with its
    dependents), its cause naming the failure. A job succeeding leaves the
    watch; the watch ends when none is left. Kept in memory only: a
    coordinator restart ends the watch (the jobs run on as without it).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from weft.protocol.jobs import FlowPart

from .effects import Effect
from .graph import FAILED, Graph, Job

log = logging.getLogger("weft.coordinator")

# The journal's meta key for the flow table.
FLOWS = "flows"
# An error lists at most this many of a flow's job names.
_SHOWN = 20


class FlowError(LookupError):
    """A `FLOW:JOB` that names no flow, or no job of it (one line)."""


class FlowsMixin:
    graph: Graph

    if TYPE_CHECKING:  # given by ControlMixin and CoordinatorState
        def cancel_jobs(self, jobs: list[Job], cause: str) -> None: ...
        def _flush(self) -> list[Effect]: ...

    def init_flows(self) -> None:
        # flow name -> {job's name in the flow: job id}, of its newest submission.
        self.flows: dict[str, dict[str, str]] = {}
        # Failing fast: job id -> its submission; submission -> its watched jobs.
        self.fail_fast_of: dict[str, str] = {}
        self.fail_fast_jobs: dict[str, set[str]] = {}

    # -- flow names -----------------------------------------------------------------------
    def record_flow(self, flow: FlowPart, ids: list[str]) -> None:
        labels = self.graph.labels
        if flow.part == 0:
            for jid in self.flows.get(flow.name, {}).values():
                labels.pop(jid, None)
        table = {} if flow.part == 0 else self.flows.get(flow.name, {})
        table.update(zip(flow.jobs, ids, strict=True))
        self.flows[flow.name] = table
        for name, jid in zip(flow.jobs, ids, strict=True):
            labels[jid] = f"{flow.name}:{name}"

    def restore_flows(self, value: Any) -> None:
        if not isinstance(value, dict):
            return
        for name, table in value.items():
            if isinstance(name, str) and isinstance(table, dict):
                self.flows[name] = {k: v for k, v in table.items() if isinstance(k, str) and isinstance(v, str)}
                for local, jid in self.flows[name].items():
                    self.graph.labels[jid] = f"{name}:{local}"

    def flow_job(self, ref: str) -> str:
        """The job id `FLOW:JOB` means; FlowError naming what is unknown."""
        flow, _, name = ref.partition(":")
        table = self.flows.get(flow)
        if table is None:
            known = ", ".join(sorted(self.flows)[:_SHOWN]) or "none"
            raise FlowError(f"no flow {flow!r} was submitted (flows: {known})")
        jid = table.get(name)
        if jid is None:
            names = sorted(table)
            shown = ", ".join(names[:_SHOWN]) + (", ..." if len(names) > _SHOWN else "")
            raise FlowError(f"flow {flow!r} has no job {name!r} (its jobs: {shown})")
        return jid

    # -- failing fast ---------------------------------------------------------------------
    def watch_fail_fast(self, submission: str, jobs: list[Job]) -> list[Effect]:
        """Watch a submission's jobs (after the submit took them). One that
        failed already (an input or `after` job of it had failed) is its
        first failure: the rest is cancelled now."""
        watched = self.fail_fast_jobs.setdefault(submission, set())
        failed = []
        for job in jobs:
            if not job.done:
                watched.add(job.id)
                self.fail_fast_of[job.id] = submission
            elif job.state == FAILED:
                failed.append(job)
        if failed and watched:
            self.fail_fast_of[failed[0].id] = submission
            self.check_fail_fast(failed[:1])
        if not watched:
            self.fail_fast_jobs.pop(submission, None)
        return self._flush()

    def check_fail_fast(self, changed: list[Job]) -> None:
        """Changed jobs of fail-fast submissions: the first failure cancels
        the rest of its submission. Called with the graph's changes before
        they are journaled, so the cancels go in the same write."""
        of = self.fail_fast_of
        for job in list(changed):
            submission = of.get(job.id)
            if submission is None or not job.done:
                continue
            watched = self.fail_fast_jobs.get(submission, set())
            watched.discard(job.id)
            del of[job.id]
            if job.state == FAILED:
                rest = [j for jid in watched if (j := self.graph.jobs.get(jid)) is not None and not j.done]
                for jid in watched:
                    of.pop(jid, None)
                watched.clear()
                if rest:
                    log.info("job %s failed: cancelling %d jobs of its fail-fast submission", job.id, len(rest))
                    self.cancel_jobs(rest, f"cancelled by --fail-fast: job {job.id} failed")
            if not watched:
                self.fail_fast_jobs.pop(submission, None)

