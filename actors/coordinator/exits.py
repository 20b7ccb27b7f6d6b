"""How a job's own failure ends: retried, failed, or followed by a flow;
and pending timeouts. A mixin of CoordinatorState (state.py).

Own failures (non-zero exit, killed by a signal, over its time limit) are
the job's: they use its `--retries` (none by default), the first retry
`--retry-delay` after the failure (1 s by default), each next one twice
as late, up to an hour. Infrastructure failures never use them (they use
the cluster's `--max-soft-retries`, see state.py).

Exit actions (`--on-exit WHEN=ACTION`) decide per ending: WHEN an exit code,
`timed-out` or `crashed`. `succeed` is applied by the compute node (it
collects the outputs as after exit 0); `fail` fails at once, retries left
or not; `retry` retries within `--retries`, or up to RETRY_ACTION_DEFAULT
times when the job has none; `submit:FLOW.toml` submits the flow kept with
the job once the job ended that way (whatever it ended as: it ends as it
would have without the action). Each job of the flow gets two more
immediate inputs, `ended_job` (the ended job's id) and `ended_when` (the
WHEN that matched), and, if the ended job succeeded, one object input
`ended_<output>` per output of it.

A pending timeout is a timer: one heap entry per job that has one, armed
when it is submitted (again after a journal replay), looked at only when
due: a job not started by then fails `pending-timeout`, its `detail`
saying why it could not start.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from weft.actors.model import SpecError
from weft.protocol.enums import (
    PENDING_INPUTS_MISSING,
    PENDING_NO_CAPACITY,
    PENDING_QUEUED,
    JobFailure,
    Outcome,
)
from weft.protocol.tasks import TaskRef, TaskReport

from . import attempts
from .effects import Effect, Send
from .graph import CANCELLING, FINISHED, RUNNING, WAITING, Graph, Job

log = logging.getLogger("weft.coordinator")

DEFAULT_RETRY_DELAY = 1.0
RETRY_DELAY_MAX = 3600.0
# Retries an exit action `retry` allows a job submitted without --retries.
RETRY_ACTION_DEFAULT = 3


def own_retry_delay(spec_delay: float | None, retry: int) -> float:
    """Seconds before the `retry`-th retry (from 1) of a job's own failure."""
    first = DEFAULT_RETRY_DELAY if spec_delay is None else spec_delay
    return min(max(first, RETRY_DELAY_MAX), first * 2 ** (retry - 1))


class ExitsMixin:
    graph: Graph
    computes: dict
    stats: dict[str, int]
    wall: Callable[[], float]
    mono: Callable[[], float]
    _out: list[Effect]
    _attempt_rows: list[tuple]
    charged: dict[str, dict[str, tuple[int, bool]]]
    _kicked: bool
    epoch: int

    if TYPE_CHECKING:  # given by CoordinatorState / RetryMixin
        def back_off(self, job: Job, delay: float) -> None: ...
        def submit(self, specs: list) -> tuple[list, list[Effect]]: ...

    def init_exits(self) -> None:
        # Jobs with a pending timeout: heap of (due (monotonic), job id).
        self._pending: list[tuple[float, str]] = []

    # -- attempts ----------------------------------------------------------------------
    def record_attempt(self, job: Job, t: TaskReport | None, outcome: str, code: str | None,
                       detail: str | None) -> None:
        """One ended attempt that did not succeed: on the job, and one journal row."""
        rec = attempts.record(
            job, job.node or job.ran_on, (t.started if t is not None else None) or job.started,
            (t.finished if t is not None else None) or self.wall(), outcome,
            t.exit if t is not None else None, t.sig if t is not None else None, code, detail)
        self._attempt_rows.append((job.id, *rec))

    def unrecord_attempt(self, job: Job, node: str) -> None:
        """Its attempt counted when `node` was lost turned out never to have
        run there (a refund): off the list."""
        history = job.history or []
        for i in range(len(history) - 1, -1, -1):
            rec = history[i]
            if rec[1] == node and rec[7] == JobFailure.NODE_LOST:
                del history[i]
                self._attempt_rows.append((job.id, rec[0], None))  # a row to delete
                return

    # -- charges: attempts settled when a compute node was lost ------------------------
    # `charged[node][job] = (token, counted)`: counted (it had acked the
    # start) or excused (it had not: the start may still have reached it).
    # Settled by what the node says once back (state.py compute_inventory,
    # task_news), whenever it says it.
    def _charge(self, node: str, job: Job, token: int) -> bool | None:
        """Take `job`'s entry for attempt `token` off `node`'s list: was it
        counted (True), excused (False), or not there (None)?"""
        charged = self.charged.get(node)
        entry = charged.get(job.id) if charged is not None else None
        if entry is None or entry[0] != token:
            return None
        del charged[job.id]  # type: ignore[union-attr]
        if not charged:
            del self.charged[node]
        return entry[1]

    def refund(self, node: str, job: Job, token: int) -> None:
        """Attempt `token` ended on `node` without taking a slot: not an attempt."""
        if self._charge(node, job, token):
            job.excused += 1
            self.stats["soft_failures"] -= 1
            self.unrecord_attempt(job, node)
            self.graph.changed.append(job)

    def charge_goes_on(self, node: str, job: Job, token: int, *, ended: bool = False) -> None:
        """`node` held attempt `token` after all (adopted, finished, or it
        took a slot there): an attempt. Charged and not `ended` (it goes on),
        its failure row goes; excused, its start reached the node: counted."""
        counted = self._charge(node, job, token)
        if counted:
            if ended:
                return  # it ran and ended as charged
            self.stats["soft_failures"] -= 1
            self.unrecord_attempt(job, node)
        elif counted is False:
            job.excused -= 1
        else:
            return
        self.graph.changed.append(job)

    def keep_charges(self, node: str, pending: dict[str, int]) -> None:
        """`node` is back: what it did not give back as never run, it ran (or
        lost), so the charge stands; but a task it still holds without a
        slot (`pending`: job -> token) may end without ever taking one (a
        follower whose producer fails, a stale prefetched task): its end says."""
        charged = self.charged.pop(node, None)
        if charged and pending:
            kept = {j: e for j, e in charged.items() if pending.get(j) == e[0]}
            if kept:
                self.charged[node] = kept

    # -- own failures ------------------------------------------------------------------
    def own_failure(self, job: Job, t: TaskReport, cause: str, outcome: Outcome) -> None:
        """`job`'s attempt ended by its own fault: retry it, fail it, and
        carry out its exit action."""
        code, detail, when = attempts.own_failure(t, job.spec.call is not None)
        self.record_attempt(job, t, outcome, code, detail)
        spec = job.spec
        action = spec.exit_action(when) if when is not None and spec.on_exit else None
        flow = action if isinstance(action, dict) else None
        if action == "fail" or job.state == CANCELLING:
            # (A job being cancelled that failed by itself first is not retried.)
            budget = 0
        elif action == "retry":
            budget = spec.retries or RETRY_ACTION_DEFAULT
        else:
            budget = spec.retries
        if job.own < budget:
            job.own += 1
            self.stats["retries"] += 1
            delay = own_retry_delay(spec.retry_delay, job.own)
            why = f"{cause}; retry {job.own} of {budget}"
            log.info("job %s failed (%s); retry %d of %d in %.3gs", job.id, code, job.own, budget, delay)
            if delay <= 0:
                self.graph.requeue(job, why)
            else:
                self.graph.requeue(job, why, runnable=False)
                self.back_off(job, delay)
        else:
            job.tail = t.tail
            self.stats["failed"] += len(self.graph.fail(job, cause, outcome=outcome, code=code, detail=detail))
        if flow is not None and when is not None:
            self.exit_submit(job, flow, when, outputs=False)

    def after_success(self, job: Job, t: TaskReport) -> None:
        """A job with exit actions succeeded: one of them may submit a flow."""
        when = str(t.exit) if t.exit is not None else None
        action = job.spec.exit_action(when) if when is not None else None
        if isinstance(action, dict):
            self.exit_submit(job, action, when, outputs=True)  # type: ignore[arg-type]

    def exit_submit(self, job: Job, action: dict[str, Any], when: str, *, outputs: bool) -> None:
        """Submit the flow kept with `job` for its ending `when` (see the
        module doc); `outputs`: it succeeded, its outputs are inputs too."""
        # Loaded here, not with the coordinator: few jobs have exit actions (the image, docs/performance.md).
        from weft.actors.flow import parse_flow

        where = f"exit action {when}=submit:{action.get('flow') or 'flow'} of job {job.id}"
        data = action.get("submit") or {}
        extra: dict[str, str] = {"ended_job": f"{job.id}", "ended_when": when}
        if outputs:
            for o in job.spec.outputs:
                extra[f"ended_{o}"] = f"@{job.id}/{o}"
        try:
            jobs = data.get("jobs") if isinstance(data, dict) else None
            if not isinstance(jobs, dict):
                raise SpecError("expected one or more [jobs.NAME] tables")
            tables = {}
            for name, table in jobs.items():
                if not isinstance(table, dict):
                    raise SpecError(f"jobs.{name} must be a table")
                inputs = table.get("inputs") or {}
                if not isinstance(inputs, dict):
                    raise SpecError(f"jobs.{name}.inputs must be a table")
                tables[name] = {**table, "inputs": {**inputs, **extra}}
            specs = [spec for _, spec in parse_flow({"jobs": tables}, where)]
            _, effects = self.submit(specs, owner=job.owner)  # (its owner's, as its children are)
        except SpecError as e:
            log.warning("%s refused: %s", where, e)
            job.cause = f"{job.cause or ''}; {where} refused: {e}".lstrip("; ")
            self.graph.changed.append(job)
            return
        log.info("%s: submitted %d jobs", where, len(specs))
        self.stats["exit_submits"] += 1
        self._out.extend(effects)

    # -- pending timeouts ----------------------------------------------------------------
    def arm_pending(self, job: Job, since: float) -> None:
        """`job` fails if not started `pending_timeout` seconds after `since` (wall time)."""
        timeout = job.spec.pending_timeout
        if timeout is not None:
            due = self.mono() + max(0.0, since + timeout - self.wall())
            heapq.heappush(self._pending, (due, job.id))

    def pending_due(self) -> float | None:
        return self._pending[0][0] if self._pending else None

    def release_pending(self, now: float) -> None:
        heap = self._pending
        jobs = self.graph.jobs
        while heap and heap[0][0] <= now:
            _, jid = heapq.heappop(heap)
            job = jobs.get(jid)
            if job is None or job.done:
                continue
            ahead = job.state == RUNNING and job.ahead
            if (job.state == RUNNING and not ahead) or job.attempts - job.excused - ahead > 0:
                continue  # started in time
            detail = self.why_pending(job)
            if ahead:
                # Parked on the node making its input (follow-ahead), not
                # started: it leaves that node too.
                ref = self.computes.get(job.node or "")
                if ref is not None:
                    ref.unassign(job.id)
                    self._out.append(Send(ref.endpoint, "cancel", TaskRef(job.id, self.epoch),
                                          f"withdrawing {job.id} (pending timeout) from {ref.node}"))
                job.ahead = False
            self.stats["pending_timeouts"] += 1
            self.stats["failed"] += len(self.graph.fail(
                job, f"not started within its pending timeout of {job.spec.pending_timeout:g}s: {detail}",
                code=JobFailure.PENDING_TIMEOUT, detail=detail))
            self._kicked = True

    def why_pending(self, job: Job) -> str:
        """Why `job` has not started: the first input not made yet (naming
        its job), no compute node to run it, or every slot busy."""
        g = self.graph
        why = self.planner.placing.waiting.get(job.id)
        if why is not None:
            return why.shown()  # host-unknown, host-down, no-capacity, ... (waiting.py)
        if job.state == WAITING or job.ahead:
            for ref in job.spec.refs.values():
                obj = g.resolve(ref)
                if obj.state != FINISHED:
                    producer = g.jobs.get(obj.producer or "")
                    how = f"job {producer.id} {producer.shown_state}" if producer else "no job makes it"
                    return f"{PENDING_INPUTS_MISSING}: {obj.name} ({how})"
        if not any(c.ready or c.slots for c in self.computes.values()):
            return f"{PENDING_NO_CAPACITY}: no compute node connected"
        return f"{PENDING_QUEUED}: every compute slot was busy"
