"""The coordinator's state machine: no sockets, no tasks, no disk.

News comes in through typed methods (a node met or lost, an inventory, task
and object news, a submit, a cancel, a delegation, time passing) and every
method returns the effects the shell must carry out (effects.py): messages
to nodes, dispatches, journal writes, waiters to wake, a scheduling round.
Object state changes go through the graph (graph.py); which job runs where
is the planner's (planner.py); storage news is storage_news.py.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections import defaultdict
from collections.abc import Callable

from weft.actors.model import JobSpec, SpecError
from weft.protocol.enums import ErrorCode, JobFailure, Outcome, Role, TaskState
from weft.protocol.objects import DelegateObject
from weft.protocol.tasks import Delegation, TaskRef, TaskReport

from .attempts import soft_code as _soft_code
from .control import ControlMixin
from .dispatch import DispatchMixin
from .effects import (
    KICK,
    Dispatch,
    DropPeer,
    Effect,
    JournalWrite,
    Send,
    StopPoller,
    Track,
    Waiter,
    Wake,
)
from .exits import ExitsMixin
from .flows import FlowsMixin
from .gate import GateMixin
from .graph import (
    CANCELLED,
    CANCELLING,
    DELEGATED,
    FAILED,
    FINISHED,
    RUNNABLE,
    RUNNING,
    SUCCEEDED,
    WAITING,
    Graph,
    Job,
)
from .nodes import ComputeRef, NodeRef, StorageRef
from .placing import cost_of
from .planner import Planner
from .recurring import RecurringMixin
from .repair import Repair
from .retry import RetryMixin
from .spawn import SpawnMixin
from .storage_news import StorageNewsMixin
from .submit import SUBMIT_SLICE, SubmitMixin, Submitted  # noqa: F401  (SUBMIT_SLICE: the shell slices with it)

log = logging.getLogger("weft.coordinator")

# Read per task event: module globals (see graph.py on enum attribute reads).
_DONE = TaskState.DONE
_STORING = TaskState.STORING
_SUCCESS = Outcome.SUCCESS
_FAILED_SOFT = Outcome.FAILED_SOFT
_NO_SPACE = ErrorCode.NO_SPACE

# Infrastructure failures a job is retried after (`weft coordinator
# --max-soft-retries`); it fails after one more. Its own failures use its
# --retries instead (exits.py).
MAX_SOFT_RETRIES = 5
MAX_SOFT_FAILURES = MAX_SOFT_RETRIES + 1
# A storage node that said "no space" gets nothing new for this long.
FULL_BACKOFF = 30.0

class CoordinatorState(StorageNewsMixin, DispatchMixin, RetryMixin, ExitsMixin, ControlMixin, SubmitMixin,
                       FlowsMixin, GateMixin, SpawnMixin, RecurringMixin):
    def __init__(
        self,
        *,
        epoch: int = 1,
        replicas: int = 1,
        storage_grace: float = 30.0,
        prefetch: int = 8,
        follow_ahead: int = 4,
        repair_per_node: int = 8,
        repair_total: int = 32,
        retry_backoff: float = 2.0,
        retry_backoff_max: float = 60.0,
        max_soft_retries: int = MAX_SOFT_RETRIES,
        time_windows: list | None = None,
        wall: Callable[[], float] = time.time,
        mono: Callable[[], float] = time.monotonic,
    ) -> None:
        if replicas < 1:
            raise ValueError("replicas must be at least 1")
        self.graph = Graph()
        self.epoch = epoch
        self.computes: dict[str, ComputeRef] = {}
        self.storages: dict[str, StorageRef] = {}
        self.secrets: dict[str, dict[str, str]] = {}  # job -> its secret inputs, in memory only (secrets.py)
        self.storage_grace = storage_grace
        self.wall = wall
        self.mono = mono
        # Storage nodes lost, and since when: their objects wait out the grace
        # period in case the node comes back with them.
        self.lost_storages: dict[str, float] = {}
        self.lost_objects: set[str] = set()
        self.inline_bytes = 0
        # Jobs whose task succeeded but whose outputs storage has not yet
        # announced finished: they succeed when the last one is (a reader told
        # "succeeded" must find the bytes).
        self.awaiting: dict[str, set[str]] = {}
        # Fencing tokens grow across restarts: epoch in the high bits.
        self.tokens = itertools.count((epoch << 32) + 1)
        self.fenced = False
        # No round before this (monotonic): after a replay, running tasks get
        # a moment to be re-adopted from compute inventories.
        self.settle_until = 0.0
        self.watchers: dict[str, list[Waiter]] = {}
        self.to_delete: dict[str, list[str]] = defaultdict(list)
        self.stats = {
            "dispatched": 0, "succeeded": 0, "failed": 0, "soft_failures": 0, "delegations": 0,
            "lineage_reruns": 0, "followed": 0, "unmet": 0, "not_started": 0, "busy_starts": 0,
            "retries": 0, "pending_timeouts": 0, "exit_submits": 0,
        }
        if max_soft_retries < 0:
            raise ValueError("max_soft_retries must be at least 0")
        self.max_soft_retries = max_soft_retries
        # Ended attempts to journal (exits.py): (job, n, ...) rows; (job, n, None) deletes one.
        self._attempt_rows: list[tuple] = []
        self.init_exits()
        self.init_retries(retry_backoff, retry_backoff_max)
        self.init_control()
        self.init_flows()
        # Attempts counted (or excused) when their compute node was lost
        # (node -> job -> (token, counted)), until the node says which ran.
        self.charged: dict[str, dict[str, tuple[int, bool]]] = {}
        # Unfinished jobs' attempt tokens as the journal had them at replay:
        # the attempts it counted (a start that finds one running counts none).
        self.replayed_tokens: dict[str, int] = {}
        # Dispatches whose start_many the node has not answered, by id().
        self.unacked: dict[int, Dispatch] = {}
        self.planner = Planner(
            self.graph, self.computes, self.storages, self.lost_objects, self.stats, self.tokens,
            replicas=replicas, prefetch=prefetch, follow_ahead=follow_ahead, wall=wall, mono=mono,
        )
        self.planner.paused_groups, self.planner.held_jobs = self.paused_groups, self.held_jobs
        self.init_spawn()
        self.init_recurring()
        self.init_gate(time_windows)  # (after the planner: it may arm its gate)
        # Finished objects kept at their replica count (repair.py).
        self.repair = Repair(self.graph, self.storages, replicas=replicas, per_node=repair_per_node,
                             total=repair_total, mono=mono)
        self._out: list[Effect] = []
        self._new: list[Job] = []  # jobs to journal as new rows
        self._kicked = False

    # -- effects -------------------------------------------------------------------------
    def _kick(self) -> None:
        self._kicked = True

    def _flush(self) -> list[Effect]:
        """Journal every job the graph changed, wake whoever waits on them,
        and hand over what was gathered."""
        if self.fail_fast_of and self.graph.changed:
            self.check_fail_fast(self.graph.changed)  # (cancels join the changes)
        changed, self.graph.changed = self.graph.changed, []
        if changed or self._new or self._attempt_rows:
            new, self._new = self._new, []
            rows, self._attempt_rows = self._attempt_rows, []
            if changed:
                watchers = self.watchers
                for job in changed:
                    if job.done and job.id in watchers:
                        self._job_finished(job)
                self._kicked = True
            self._out.append(JournalWrite(new, changed, rows))
        out, self._out = self._out, []
        if self._kicked:
            self._kicked = False
            out.append(KICK)
        return out

    # -- waiters ---------------------------------------------------------------------------
    def final(self, job: Job) -> Job:
        """Follow delegations: the job whose outcome decides this one's output."""
        hops = 0
        while job.delegate and job.state == SUCCEEDED and hops < 10_000:
            nxt = self.graph.jobs.get(job.delegate)
            if nxt is None:
                break
            job = nxt
            hops += 1
        return job

    def watch(self, jobs: list[Job], waiter: Waiter) -> Waiter:
        """Count `jobs` (following delegations) unfinished into `waiter`; a
        `Wake` effect names it once the last one is."""
        for j in jobs:
            final = self.final(j)
            if not final.done:
                self.watchers.setdefault(final.id, []).append(waiter)
                waiter.ids.append(final.id)
                waiter.remaining += 1
        return waiter

    def unwatch(self, waiter: Waiter) -> None:
        for jid in waiter.ids:
            lst = self.watchers.get(jid)
            if lst and waiter in lst:
                lst.remove(waiter)
                if not lst:
                    del self.watchers[jid]

    def _job_finished(self, job: Job) -> None:
        final = self.final(job)
        for w in self.watchers.pop(job.id, ()):
            if final is not job and not final.done:
                # It handed its output to another job: wait for that one.
                self.watchers.setdefault(final.id, []).append(w)
                w.ids.append(final.id)
            else:
                w.remaining -= 1
                if w.remaining <= 0:
                    self._out.append(Wake(w))

    # -- membership ------------------------------------------------------------------------
    def meet(self, role: str, node: str, endpoint: str, inc: str | None) -> list[Effect]:
        """A node said hello (or its beacon was heard). No effects: known already."""
        if role not in (Role.COMPUTE, Role.STORAGE):
            return []
        table: dict = self.computes if role == Role.COMPUTE else self.storages
        ref = table.get(node)
        if ref is not None and ref.endpoint == endpoint and (inc is None or ref.inc is None or inc == ref.inc):
            ref.last_seen = self.wall()
            return []
        fresh = ComputeRef(node, endpoint) if role == Role.COMPUTE else StorageRef(node, endpoint)
        if ref is not None:
            log.info("%s %s is back (%s)", role, node, endpoint)
            if ref.endpoint == endpoint or isinstance(ref, ComputeRef):
                # Restarted (in place, or on a new endpoint with its data
                # dir): its new inventory tells what became of the tasks we
                # gave it: finished ones are adopted, not rerun, and those
                # that never took a slot are not counted as attempts.
                self._out.append(StopPoller(ref))
                if isinstance(ref, ComputeRef):
                    # Followers too: else its producer's end never releases them.
                    fresh.assigned, fresh.following = ref.assigned, ref.following
                self._out.append(DropPeer(ref.endpoint))
            else:
                self._forget(ref, "moved")
        table[node] = fresh
        fresh.drained = node in self.planner.placing.drained
        self.lost_storages.pop(node, None)
        log.info("met %s %s at %s", role, node, endpoint)
        self._out.append(Track(fresh))
        return self._flush()

    def node_lost(self, role: str, node: str) -> list[Effect]:
        """The node stopped answering pings."""
        ref = (self.computes if role == Role.COMPUTE else self.storages).get(node)
        if ref is not None:
            log.warning("%s %s lost", ref.role, node)
            self._forget(ref, "lost")
        return self._flush()

    def _forget(self, ref: NodeRef, why: str) -> None:
        self._out.append(StopPoller(ref))
        ref.ready = False
        if isinstance(ref, ComputeRef):
            self.computes.pop(ref.node, None)
            # Which of them ran there we cannot know yet: each counts, and
            # if the node comes back saying one never took a slot, that one
            # is given back (see task_news). Starts it never answered did
            # not reach it alive: not attempts, unless it comes back with one.
            charged = self.charged.setdefault(ref.node, {})
            unacked = self.unacked_jobs(ref)
            for jid in list(ref.assigned):
                job = self.graph.jobs.get(jid)
                if job is not None and job.state == CANCELLING and job.node == ref.node:
                    self.settle_cancelled(job, f"compute node {ref.node} {why}")
                elif job is not None and job.state == RUNNING and job.node == ref.node:
                    counted = jid not in unacked
                    charged[jid] = (job.token, counted)
                    self._soft_failure(job, f"compute node {ref.node} {why}", JobFailure.NODE_LOST, counted=counted)
            ref.running.clear()
            ref.assigned.clear()
            return
        assert isinstance(ref, StorageRef)
        self._storage_lost(ref)
        for jid in list(self.awaiting):
            job = self.graph.jobs.get(jid)
            placement = job.placement if job is not None else None
            if job is None or not placement or ref.node not in placement:
                continue
            if not any(n in self.storages for n in placement):
                # Its outputs' only nodes are gone: they will not be announced.
                del self.awaiting[jid]
                if job.state == RUNNING:
                    self._soft_failure(job, f"storage node {ref.node} {why} before the outputs were durable",
                                       JobFailure.STORAGE_UNAVAILABLE)
                elif job.state == CANCELLING:
                    self.settle_cancelled(job, f"storage node {ref.node} {why}")

    # -- compute news ----------------------------------------------------------------------
    def compute_inventory(self, ref: ComputeRef, slots: int, tasks: list[TaskReport]) -> list[Effect]:
        """A compute node's task list (first contact, or after a resync)."""
        ref.slots = slots
        seen = set()
        finished = []
        pending: dict[str, int] = {}  # held, no slot taken yet: charges kept for their end
        for t in tasks:
            job = self.graph.jobs.get(t.job)
            if job is None:
                continue
            seen.add(t.job)
            if t.state != _DONE and t.started is None:
                pending[t.job] = t.token
            if t.state == _DONE:
                if (not job.done and job.state != RUNNING and t.started is not None and t.token >= job.token
                        and job.token >> 32 != self.epoch):
                    # It ran, and ended, while we were down: its end is this
                    # job's (counted, with its node and times), not a late
                    # result to ignore.
                    self._adopt(job, ref, t)
                finished.append(t)
            elif job.state == CANCELLED and t.token == job.token:
                # Cancelled while we could not tell its node (we restarted
                # while it was cancelling): it must not run on.
                self._out.append(Send(ref.endpoint, "cancel", TaskRef(job.id, self.epoch),
                                      f"cancelling {job.id} on {ref.node}"))
            elif job.state == CANCELLING:
                pass  # the cancel is under way; its end settles it
            elif not job.done and t.token >= job.token:
                # A task we did not know was running (e.g. after our restart): adopt it.
                self._adopt(job, ref, t)
                if t.state == _STORING:
                    ref.running.discard(t.job)
        for jid in list(ref.assigned):
            if jid not in seen:
                job = self.graph.jobs.get(jid)
                ref.unassign(jid)
                if job is not None and job.state == RUNNING and job.node == ref.node:
                    self._soft_failure(job, f"task vanished from compute node {ref.node}")
                elif job is not None and job.state == CANCELLING and job.node == ref.node:
                    self.settle_cancelled(job, f"its task vanished from compute node {ref.node}")
        ref.ready = True
        self._kick()
        effects = self.task_news(ref, finished) if finished else self._flush()
        self.keep_charges(ref.node, pending)
        return effects

    def _adopt(self, job: Job, ref: ComputeRef, t: TaskReport) -> None:
        if job.node != ref.node or job.token != t.token:
            # Adopted, not dispatched by us: an earlier attempt's error
            # is no longer what is going on with it.
            if job.cause is not None:
                job.cause = None
        if t.token != job.token:
            # An attempt the journal had not seen (started after its last
            # commit of this job): count it.
            job.attempts += 1
        else:
            self.charge_goes_on(ref.node, job, t.token)  # charged when the node was lost: it goes on
        self.graph.adopt(job, ref.node, t.token)
        job.started = t.started or job.started or self.wall()
        producer = ref.following.get(t.job) if job.ahead else None
        if producer is not None:  # still waiting there for its producer: no slot yet
            ref.follow(t.job, producer, cost_of(job))
        else:
            ref.assign(t.job, cost_of(job))
        self.graph.changed.append(job)

    def task_news(self, ref: ComputeRef, tasks: list[TaskReport]) -> list[Effect]:
        """Task steps and ends from a compute node (fenced by attempt token)."""
        g = self.graph
        for t in tasks:
            state = t.state
            jid = t.job
            if state == _STORING:
                # The task gave its slot back; its outputs are on their way.
                if jid in ref.running:
                    ref.running.discard(jid)
                    self._kicked = True
                continue
            if state != _DONE:
                continue
            job = g.jobs.get(jid)
            if jid in ref.running:
                self._kicked = True
            ref.unassign(jid)
            outcome = t.outcome
            if t.finished is not None and t.started is not None and t.finished > t.started:
                ran = t.finished - t.started
                avg = ref.run_avg
                ref.run_avg = ran if avg == 0.0 else avg + (ran - avg) * 0.125
            if ref.following and outcome == _SUCCESS:
                # Its followers start now (if it failed, they end unmet).
                now = self.wall()
                for fid in ref.producer_done(jid):
                    follower = g.jobs.get(fid)
                    if follower is not None and follower.ahead:
                        follower.ahead = False
                        follower.started = now
            if job is not None and t.token >> 32:
                # Only tasks of our jobs (dispatched: a coordinator's token
                # has its epoch in the high bits): a task someone started on
                # the node by hand (`weft task create`) is theirs to delete.
                self.to_delete[ref.node].append(jid)
            if job is not None and job.state == RUNNABLE and t.token == job.token and outcome == _SUCCESS:
                # The node we gave up on finished it after all, and nothing
                # started it again yet: adopt the result instead of rerunning.
                g.adopt(job, ref.node, job.token)
                self.charge_goes_on(ref.node, job, t.token)
            if job is not None and job.state == CANCELLING and job.node == ref.node and t.token == job.token:
                if outcome != _SUCCESS and outcome != Outcome.FAILED_HARD and outcome != Outcome.TIMED_OUT:
                    # Stopped (or stopped by infrastructure): that is the cancel.
                    self.settle_cancelled(job)
                    continue
                # It ended by itself first: that is its outcome.
                self.cancelling.pop(jid, None)
            elif job is None or job.state != RUNNING or job.node != ref.node or t.token != job.token:
                # A late result of an attempt we gave up on. If we gave up
                # on it with its lost node and it never took a slot there,
                # it was not an attempt: give it back. If it took one, the
                # charge stands (and is settled).
                if job is not None and ref.node in self.charged:
                    if t.started is None and outcome == _FAILED_SOFT:
                        self.refund(ref.node, job, t.token)
                    else:
                        self.charge_goes_on(ref.node, job, t.token, ended=True)
                continue
            job.exit_code = t.exit
            cause = t.cause
            if outcome == _SUCCESS:
                if t.stored is not None:
                    self.stored_outputs(job, t.stored)
                if t.dropped:  # copies that will never be announced: repair them now
                    for name, _endpoint in t.dropped:
                        self.repair.dropped(name)
                if t.delegation is not None:
                    self._delegate(job, t.delegation)
                # Per job done: names built here, a set only if one is pending.
                pending = None
                objects = g.objects
                prefix = jid + "/"
                for out in job.spec.outputs:
                    n = prefix + out
                    o = objects.get(n)
                    if o is None or (o.state != FINISHED and o.state != DELEGATED):
                        if pending is None:
                            pending = set()
                        pending.add(n)
                if pending:
                    self.awaiting[job.id] = pending
                else:
                    self._succeeded(job)
                if job.spec.on_exit:
                    self.after_success(job, t)
            elif outcome == _FAILED_SOFT and t.unmet:
                # Started ahead of an input whose producer did not make it:
                # not this job's attempt that failed. It waits for the input.
                self.stats["unmet"] += 1
                job.ahead = False
                self._soft_failure(job, cause or "input not made", counted=False)
            elif outcome == _FAILED_SOFT:
                # A task that never took a slot (queued when its node stopped
                # or restarted, or withdrawn for an idle node: steal.py) did
                # not run: not an attempt.
                if t.code == "withdrawn":
                    self.stats["withdrawn"] += 1
                self._soft_failure(job, cause or "failed soft", t.code, counted=t.started is not None)
            elif outcome == Outcome.CANCELLED:
                self.record_attempt(job, t, outcome, JobFailure.CANCELLED, None)
                self.stats["failed"] += len(g.fail(job, cause or str(outcome), outcome=outcome, state=CANCELLED))
            else:
                outcome = outcome or Outcome.FAILED_HARD
                self.own_failure(job, t, cause or str(outcome), outcome)
        return self._flush()

    def _succeeded(self, job: Job) -> None:
        self.graph.succeed(job, self.wall())
        self.stats["succeeded"] += 1

    def _soft_failure(self, job: Job, cause: str, code: str | None = None, *, counted: bool = True,
                      delay: float | None = None) -> None:
        """Infrastructure failed the job: run it again (it is needed: it was
        submitted). `code` is the failure's ErrorCode when the node gave one;
        `delay` the back-off if not the retry policy's (none if not counted)."""
        fcode = _soft_code(code)
        job.ahead = False  # queued again: it follows no producer now
        if counted:
            self.stats["soft_failures"] += 1
            self.record_attempt(job, None, _FAILED_SOFT, fcode, cause)
        else:
            job.excused += 1
        if job.node and job.node in self.computes:
            self.computes[job.node].unassign(job.id)
        if code == _NO_SPACE:
            # Out of disk there: put nothing more on it for a while, and place
            # this job's outputs elsewhere.
            until = self.mono() + FULL_BACKOFF
            for node_id in job.placement or ():
                if node_id in self.storages:
                    self.storages[node_id].full_until = until
            job.placement = None
        tries = job.attempts - job.excused - job.own
        if tries > self.max_soft_retries:
            self.graph.fail(job, f"gave up after {tries} attempts; last: {cause}", outcome=_FAILED_SOFT, code=fcode)
            return
        if delay is None:
            delay = self.retry_delay(tries) if counted else 0.0
        if delay <= 0:
            log.info("job %s failed soft (%s); queued again", job.id, cause)
            self.graph.requeue(job, cause)
            return
        log.info("job %s failed soft (%s); queued again in %.3gs", job.id, cause, delay)
        self.graph.requeue(job, cause, runnable=False)
        self.back_off(job, delay)

    # -- repair ----------------------------------------------------------------------------
    def repair_round(self) -> list[Effect]:
        """Time passed: copies to start and extra copies to trim (repair.py)."""
        if self.fenced or self.mono() < self.settle_until:
            return []
        return self.repair.plan(self._read_by_tasks)

    def copies_answered(self, target: StorageRef, refused: dict[str, str | None]) -> None:
        self.repair.answered(target.node, refused)

    def _read_by_tasks(self) -> set[str]:
        """Objects that jobs given to compute nodes read (or will): not to be trimmed now."""
        g = self.graph
        out: set[str] = set()
        for c in self.computes.values():
            for jid in c.assigned:
                job = g.jobs.get(jid)
                if job is not None:
                    out.update(g.resolve(ref).name for ref in job.spec.refs.values() if ref in g.objects)
        return out

    # -- delegation ------------------------------------------------------------------------
    def _delegate(self, job: Job, wire: dict) -> None:
        """`job` handed one output to a new job: create it and move the waiters."""
        try:
            delegation = Delegation.from_wire(wire)
            output = delegation.handed_output(job.spec)
        except SpecError as e:
            self.graph.fail(job, f"invalid delegation: {e}", code=JobFailure.BAD_SPEC)
            return
        self.delegate(job, delegation.spec, delegation.stream, output)

    def delegate(self, job: Job, spec: JobSpec, stream: str, output: str) -> None:
        """`job`'s `output` is now made by the job of `spec` (its `stream`)."""
        if not spec.priority:
            spec.priority = job.priority
        new_id = spec.job_id()
        g = self.graph
        name = f"{job.id}/{output}"
        new = g.jobs.get(new_id)
        if new is None or new.state in (FAILED, CANCELLED):
            if new is None:
                new = g.add_job(new_id, spec, now=self.wall())
                self._new.append(new)
            new.parent = job.id
            # The delegate's outputs live where the delegated object lives, so
            # storage resolves the chain locally.
            new.placement = job.placement
            try:
                g.check_inputs(spec)
            except SpecError as e:
                g.fail(new, str(e), code=JobFailure.INPUT_LOST)
            else:
                new.state = WAITING
                new.demand = job.demand
                g.link_inputs(new)
                g.changed.append(new)
        job.delegate = new_id
        target = f"{new_id}/{stream}"
        job.handed = (output, target)
        self.stats["delegations"] += 1
        g.delegate(name, target)
        for node_id in job.placement or ():
            storage = self.storages.get(node_id)
            if storage is not None:
                self._out.append(Send(
                    storage.endpoint, "delegate", DelegateObject(name, target, job.token, self.epoch),
                    f"marking {name} delegated to {target} on {storage.node}", logging.WARNING,
                ))
