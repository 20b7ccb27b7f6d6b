"""Steering jobs: cancelling (with confirmation), pausing, and groups.

A mixin of CoordinatorState (state.py), apart so the state's hot paths stay
where they were and these rules read in one place.

Cancelling
    A job not yet given to a compute node (waiting, runnable) is `cancelled`
    at once. A running one becomes `cancelling`: its node is told to stop it
    (SIGTERM to the process group, SIGKILL after the job's max cancellation
    time) and the next report of the task decides: `cancelled`, or
    `succeeded` / `failed` if it ended first. If that report never comes (the
    node missed the message, restarted, or is lost) the job is settled
    `cancelled` when its node is lost or `cancel_time + CANCEL_MARGIN` after
    the request: nothing stays `cancelling`.
    Dependents (jobs waiting on its outputs, transitively) are cancelled at
    once with it, even if it then ends succeeded: the user asked to stop them
    too. With `dependents=False` they are left alone: they run if the job
    ends succeeded, and fail (`input ... cancelled`) as today if it does not.
    Cancelling a finished or cancelling job changes nothing.

Pausing
    Paused (the cluster, or one group): no new job of it starts; running jobs
    go on and submits are taken. A paused group's jobs that come up in a
    round are set aside (waiting, linked to nothing) until resumed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from weft.actors.model import DEFAULT_CANCEL_TIME, JobSpec, SpecError
from weft.protocol.enums import Outcome
from weft.protocol.tasks import TaskRef

from .effects import KICK, Effect, Send
from .graph import CANCELLED, CANCELLING, RUNNING, WAITING, Graph, Job
from .nodes import ComputeRef

log = logging.getLogger("weft.coordinator")

# A cancelling job whose node said nothing this long after its SIGKILL was
# due is settled cancelled: the node missed the message or cannot answer.
CANCEL_MARGIN = 5.0
# The key of a whole-cluster pause in `pauses`.
ALL = ""
# The journal's meta key for `pauses`.
PAUSES = "pauses"
# `weft stats` counters of forgetting: jobs forgotten (gc or delete), objects
# storage deleted for them, when gc last ran (unix seconds), journal
# compactions; content objects `weft prune` deleted, and when it last did.
GC_COUNTERS = {"gc_jobs_forgotten": 0, "gc_objects_deleted": 0, "gc_last": 0, "journal_compactions": 0,
               "prune_objects_deleted": 0, "prune_last": 0}


class ControlMixin:
    graph: Graph
    computes: dict[str, ComputeRef]
    epoch: int
    wall: Callable[[], float]
    mono: Callable[[], float]
    _out: list[Effect]

    if TYPE_CHECKING:  # given by CoordinatorState
        def _flush(self) -> list[Effect]: ...
        def unacked_jobs(self, node: ComputeRef) -> set[str]: ...
        stats: dict[str, int]

    def init_control(self) -> None:
        # Cancelling jobs: id -> when (monotonic) to settle them without word.
        self.cancelling: dict[str, float] = {}
        # Cancelled while their start was on its way: told once it arrived.
        self.cancel_on_start: set[str] = set()
        # What is paused: ALL or a group name -> since (wall time).
        self.pauses: dict[str, float] = {}
        # Groups paused, read by the planner per picked job (a set lookup).
        self.paused_groups: set[str] = set()
        # Jobs of paused groups set aside by a round, until resumed.
        self.held_jobs: dict[str, Job] = {}
        # Forgetting (gc_ops.py): in `weft stats`, journaled like the rest.
        self.stats.update(GC_COUNTERS)

    # -- cancelling ------------------------------------------------------------------------
    def cancel(self, jobs: list[Job], *, dependents: bool = True) -> list[Effect]:
        self.cancel_jobs(jobs, "cancelled by user", dependents=dependents)
        return self._flush()

    def cancel_jobs(self, jobs: list[Job], cause: str, *, dependents: bool = True) -> None:
        """Cancel as the module doc says, naming `cause`; the changes are
        left for the next flush."""
        g = self.graph
        deadline_base = self.mono()
        for job in jobs:
            if job.done or job.state == CANCELLING:
                continue
            self.held_jobs.pop(job.id, None)
            node = self.computes.get(job.node or "") if job.state == RUNNING else None
            if node is None:
                # Not on any compute node (or its node is gone): nothing to stop.
                if dependents:
                    g.fail(job, cause, outcome=Outcome.CANCELLED, state=CANCELLED, cascade=CANCELLED)
                else:
                    g.fail(job, cause, outcome=Outcome.CANCELLED, state=CANCELLED)
                continue
            g.start_cancelling(job, cause)
            grace = job.spec.cancel_time if job.spec.cancel_time is not None else DEFAULT_CANCEL_TIME
            self.cancelling[job.id] = deadline_base + grace + CANCEL_MARGIN
            if job.id in self.unacked_jobs(node):
                # Its start may not have arrived: a cancel now could find no
                # task. Sent once the node answered (dispatch_ended).
                self.cancel_on_start.add(job.id)
            else:
                self._send_cancel(node, job)
            if dependents:
                g.cancel_dependents(job, cause)
        if g.to_stop:
            # Dependents started ahead on a node (following): not to run there.
            for jid, node_id in g.to_stop:
                ref = self.computes.get(node_id)
                if ref is not None:
                    ref.unassign(jid)
                    self._out.append(Send(ref.endpoint, "cancel", TaskRef(jid, self.epoch),
                                          f"cancelling {jid} on {node_id}"))
            g.to_stop.clear()

    def _send_cancel(self, node: ComputeRef, job: Job) -> None:
        self._out.append(Send(node.endpoint, "cancel", TaskRef(job.id, self.epoch),
                              f"cancelling {job.id} on {node.node}"))

    def cancels_after_dispatch(self, d: Any, tokens: dict[str, int]) -> None:
        """A dispatch was answered (or failed): its jobs cancelled meanwhile
        are told to stop now, or settled if they never started."""
        for job, _ in d.items:
            if job.id not in self.cancel_on_start:
                continue
            self.cancel_on_start.discard(job.id)
            if job.state != CANCELLING or job.token != tokens.get(job.id):
                continue
            if d.node.node in self.computes and job.id in d.node.assigned:
                self._send_cancel(d.node, job)
            else:
                self.settle_cancelled(job, "its start did not reach a node")

    def settle_cancelled(self, job: Job, why: str | None = None) -> None:
        """A cancelling job's end: cancelled (its dependents, if still
        waiting, fail as for any cancelled input)."""
        self.cancelling.pop(job.id, None)
        node = self.computes.get(job.node or "")
        if node is not None:
            node.unassign(job.id)
        cause = job.cause or "cancelled by user"
        if why:
            cause = f"{cause} ({why})"
        self.graph.fail(job, cause, outcome=Outcome.CANCELLED, state=CANCELLED)

    def settle_overdue(self) -> list[Effect]:
        """Time passed: cancelling jobs whose node never answered are cancelled."""
        if not self.cancelling:
            return []
        now = self.mono()
        for jid, due in list(self.cancelling.items()):
            job = self.graph.jobs.get(jid)
            if job is None or job.state != CANCELLING:
                self.cancelling.pop(jid, None)
            elif now >= due:
                log.warning("job %s: its compute node %s did not confirm the cancel in time", jid, job.node)
                self.settle_cancelled(job, f"compute node {job.node} did not confirm it stopped")
        return self._flush()

    # -- pausing ---------------------------------------------------------------------------
    def pause(self, group: str | None) -> list[Effect]:
        key = group or ALL
        self.pauses.setdefault(key, self.wall())
        if group:
            self.paused_groups.add(group)
        return []

    def resume(self, group: str | None) -> list[Effect]:
        key = group or ALL
        self.pauses.pop(key, None)
        if group:
            self.paused_groups.discard(group)
        g = self.graph
        for jid, job in list(self.held_jobs.items()):
            if job.state == WAITING and job.missing == 0 and not self.is_held(job):
                del self.held_jobs[jid]
                g.make_runnable(job)
            elif job.done:
                del self.held_jobs[jid]
        return [KICK]

    def restore_pauses(self, pauses: Any) -> None:
        """From the journal: what was paused, and since when."""
        if not isinstance(pauses, dict):
            return
        for key, since in pauses.items():
            if isinstance(key, str) and isinstance(since, int | float):
                self.pauses[key] = float(since)
                if key:
                    self.paused_groups.add(key)

    @property
    def paused_all(self) -> bool:
        return ALL in self.pauses

    def is_held(self, job: Job) -> bool:
        paused = self.paused_groups
        return bool(paused) and any(grp in paused for grp in job.spec.groups)

    def pause_view(self) -> dict[str, Any]:
        """What is paused and since when (for status and stats)."""
        out: dict[str, Any] = {}
        if ALL in self.pauses:
            out["cluster"] = self.pauses[ALL]
        groups = {k: v for k, v in self.pauses.items() if k}
        if groups:
            out["groups"] = groups
        return out

    # -- groups ----------------------------------------------------------------------------
    def group_members(self, group: str) -> list[Job]:
        return [j for j in self.graph.jobs.values() if group in j.spec.groups]

    def expand_after_groups(self, specs: list[JobSpec]) -> None:
        """`after_groups` become `after`: every member known now (a submit's
        own jobs are not yet members). SpecError for a group with none."""
        members: dict[str, list[str]] = {}
        for spec in specs:
            extra: list[str] = []
            for grp in spec.after_groups:
                if grp not in members:
                    members[grp] = [j.id for j in self.group_members(grp)]
                if not members[grp]:
                    raise SpecError(f"after group {grp!r}: no job is in it (members are those submitted before)")
                extra += members[grp]
            if extra:
                spec.after = list(dict.fromkeys([*spec.after, *extra]))

    def groups(self) -> dict[str, dict[str, int]]:
        """Every group with its members' counts by state."""
        out: dict[str, dict[str, int]] = {}
        for j in self.graph.jobs.values():
            for grp in j.spec.groups:
                c = out.setdefault(grp, {})
                st = j.shown_state
                c[st] = c.get(st, 0) + 1
        return out
