"""A scheduling round and the life of one dispatch, as state transitions.

A mixin of CoordinatorState (state.py). The round asks the planner for
picks (marked running before any message leaves) and returns one `Dispatch`
effect per compute node. The shell then carries each out in steps, calling
back here between its awaits: the creates a retry needs, the start messages,
the node's answers, and the soft failures of what did not start. While the
shell awaits, the job may fail soft and go elsewhere: each step checks that
the job is still on the attempt the dispatch is for (`tokens`).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from weft.bus.errors import BusError, Busy, CallTimeout, ConnectionLost, RemoteError
from weft.bus.rpc import PeerClosed
from weft.protocol.enums import ErrorCode, JobFailure, TaskState
from weft.protocol.objects import CreateManyReply, ObjectInfo
from weft.protocol.tasks import Refused, Start, TaskReport, Withdraw

from .effects import KICK, Dispatch, Effect, Send
from .graph import CANCELLING, FINISHED, RUNNING, Graph, Job
from .nodes import ComputeRef, StorageRef
from .planner import Batches, Planner
from .retry import HOLD_FIRST

log = logging.getLogger("weft.coordinator")

# Error codes of a start_many that no live process took: the node said so
# before starting anything.
_NOT_TAKEN = frozenset((ErrorCode.BUSY, ErrorCode.SHUTTING_DOWN, ErrorCode.UNREACHABLE,
                        ErrorCode.CONNECTION_LOST, ErrorCode.PEER_CLOSED))


def never_started(e: BaseException) -> bool:
    """Did a failed start_many surely start nothing? True when no live process
    took it: no connection, the connection closed or dropped before the
    answer (the node died: its next inventory says what it had), or the
    node refused the whole call as busy or shutting down. A plain timeout
    on a live connection is not known to have started nothing."""
    if isinstance(e, ConnectionLost | PeerClosed | Busy):
        return True
    if isinstance(e, CallTimeout):
        return e.unreachable
    if isinstance(e, RemoteError):
        return e.code in _NOT_TAKEN
    return False


# One storage node's share of a retry's creates: (storage id, its ref if
# still known, [[object, token]...], the jobs owning them).
CreateBatch = tuple[str, StorageRef | None, list[list[Any]], list[Job]]


class DispatchMixin:
    graph: Graph
    planner: Planner
    computes: dict[str, ComputeRef]
    storages: dict[str, StorageRef]
    stats: dict[str, int]
    fenced: bool
    epoch: int
    awaiting: dict[str, set[str]]
    to_delete: dict[str, list[str]]
    unacked: dict[int, Dispatch]
    settle_until: float

    if TYPE_CHECKING:  # given by CoordinatorState
        def _flush(self) -> list[Effect]: ...
        def mono(self) -> float: ...
        def next_due(self) -> float | None: ...
        def task_news(self, ref: ComputeRef, tasks: list[TaskReport]) -> list[Effect]: ...
        def _succeeded(self, job: Job) -> None: ...
        def _soft_failure(self, job: Job, cause: str, code: str | None = None, *, counted: bool = True,
                          delay: float | None = None) -> None: ...
        def hold(self, ref: ComputeRef, why: str, *, busy: bool = False) -> None: ...
        def took_starts(self, ref: ComputeRef) -> None: ...
        def _apply_object(self, ref: StorageRef, info: ObjectInfo, scavenge: list[str]) -> None: ...

    def schedule_round(self) -> list[Effect]:
        """Pick and place runnable work: one Dispatch per compute node."""
        if self.fenced or self.paused_all:
            return self._flush()
        batches: Batches = {}
        self.planner.plan(batches)
        out = self._flush()
        asks = self.planner.stealing.asks
        while asks:
            victim, count = asks.pop()
            out.append(Send(victim.endpoint, "withdraw", Withdraw(count, self.epoch),
                            f"asking {victim.node} to give back {count} queued jobs"))
        for node_id, items in batches.items():
            self.stats["dispatched"] += len(items)
            d = Dispatch(self.computes[node_id], items)
            self.unacked[id(d)] = d
            out.append(d)
        return out

    def task_news_round(self, ref: ComputeRef, tasks: list[TaskReport]) -> list[Effect]:
        """A compute node's news, and with nothing runnable the round it calls
        for at once, in this wake-up: a chain's next links (pick_followers)
        leave with the producer's end instead of one scheduler pass later.
        With runnable work the kick stays, so the scheduler's one round
        still gathers the news of every node that arrived meanwhile."""
        out = self.task_news(ref, tasks)
        if (out and out[-1] is KICK and not self.graph.runnable_count and self.planner.follow_ahead
                and self.mono() >= self.settle_until):
            out.pop()
            out += self.schedule_round()
            if self.next_due() is not None:
                # The scheduler sleeps until the due it saw last: a retry's
                # back-off, a hold or a steal this news or round set must wake
                # it to look again (without the kick a retry never ran).
                out.append(KICK)
        return out

    def unacked_jobs(self, node: ComputeRef) -> set[str]:
        """Jobs of dispatches to `node` that it has not answered yet (a node
        lost meanwhile never said it took them: they are not attempts)."""
        return {job.id for d in self.unacked.values() if d.node is node for job, _ in d.items}

    @staticmethod
    def attempt_tokens(d: Dispatch) -> dict[str, int]:
        """The attempt each job of the dispatch is for."""
        return {j.id: j.token for j, _ in d.items}

    @staticmethod
    def _ours(job: Job | None, node: ComputeRef, tokens: dict[str, int]) -> bool:
        return (job is not None and job.state == RUNNING and job.node == node.node
                and job.token == tokens.get(job.id))

    def retry_creates(self, d: Dispatch) -> list[CreateBatch]:
        """A retry's outputs, created empty with `replace` under its new token
        before it starts: that fences the earlier attempt and drops what it
        left. A first attempt's outputs are made by its own first write."""
        jobs = [j for j, _ in d.items if j.attempts > 1]
        by_storage: dict[str, list] = defaultdict(list)
        for job in jobs:
            for node_id in job.placement or ():
                for name in job.outputs():
                    by_storage[node_id].append([name, job.token])
        return [
            (sid, self.storages.get(sid), objs, [j for j in jobs if sid in (j.placement or ())])
            for sid, objs in by_storage.items()
        ]

    def creates_answered(self, storage: StorageRef, reply: CreateManyReply, failed: dict[str, str]) -> list[str]:
        """A create_many's per-object errors (`{code, message, info?}`; the
        object's info when an earlier attempt finished it). Returns the
        copies to delete there before the starts go out: finished by an
        attempt since fenced, they would refuse the new attempt's write."""
        scavenge: list[str] = []
        for name, err in reply.errors.items():
            code = err.get("code")
            # "exists": the producer's first write got there first.
            if code != ErrorCode.IMMUTABLE and code != ErrorCode.EXISTS:
                failed[str(name).split("/", 1)[0]] = f"creating {name}: {err.get('message')}"
                continue
            info = err.get("info")
            if type(info) is dict and info.get("state") == FINISHED:
                # An earlier attempt finished it (its node died before
                # saying so): the same news as storage's `finished` event.
                try:
                    finished = ObjectInfo.from_wire(info, "create_many reply")
                except BusError as e:
                    log.warning("create_many on %s: %s", storage.node, e)
                    continue
                self._apply_object(storage, finished, scavenge)
        return scavenge

    def start_messages(self, d: Dispatch, tokens: dict[str, int], failed: dict[str, str],
                       unsent: dict[str, str]) -> list[Start]:
        """The starts of what is still to start, their outputs filled in;
        a job whose outputs' storage node is gone goes to `unsent`, those
        already in `failed` or `unsent` are left out."""
        node = d.node
        starts = []
        # A batch's jobs share their output placement (planner.py): its
        # endpoints are looked up once per placement, not once per job.
        where: dict[int, tuple[list[str] | None, list[str]]] = {}
        for job, start in d.items:
            if job.id in failed or job.id in unsent or not self._ours(job, node, tokens):
                if job.state == CANCELLING and job.token == tokens.get(job.id):
                    self.settle_cancelled(job, "before it started")  # (control.py)
                continue
            if job.attempts > 1 and job.spec.outputs and self.planner.outputs_finished(job):
                # Every output was made by an earlier attempt: adopt, don't
                # rerun. This dispatch's attempt was never made: not counted.
                job.attempts -= 1
                node.unassign(job.id)
                self.awaiting.pop(job.id, None)
                self._succeeded(job)
                continue
            placement = job.placement
            seen = where.get(id(placement))
            if seen is not None and seen[0] is placement:
                endpoints = seen[1]
            else:
                endpoints = [self.storages[n].endpoint for n in placement or () if n in self.storages]
                where[id(placement)] = (placement, endpoints)
            if job.spec.outputs and len(endpoints) != len(job.placement or ()):
                unsent[job.id] = f"a storage node for its outputs ({', '.join(job.placement)}) is gone"
                continue
            start.outputs = dict.fromkeys(job.spec.outputs, endpoints)
            if job.spec.refs:
                start.near = self.planner.placing.near_copies(job, node, start.inline)
            if self.secrets:  # (rare: one dict look-up per start only when some job has secrets)
                start.secrets = self.secrets.get(job.id)
            starts.append(start)
        return starts

    def starts_answered(self, d: Dispatch, tokens: dict[str, int], answers: list[TaskReport | Refused]) -> None:
        """The node's answer per task: the task it has, or why it refused the start."""
        self.unacked.pop(id(d), None)
        busy = 0
        for answer in answers:
            job = self.graph.jobs.get(answer.job or "")
            if not self._ours(job, d.node, tokens):
                continue
            assert job is not None
            if type(answer) is Refused and answer.code == ErrorCode.BUSY:
                # Its queue is full: not an attempt, not a failure. The job
                # goes back in the queue; the node gets nothing for a moment.
                busy += 1
                self._soft_failure(job, f"compute node {d.node.node} was busy", counted=False)
            elif type(answer) is Refused:
                d.node.unassign(job.id)
                self.graph.fail(job, f"compute node refused the job: {answer.message}", code=JobFailure.BAD_SPEC)
            elif 0 < answer.token < job.token and answer.state != TaskState.DONE:
                # The node still runs an earlier attempt of this job (it
                # answers a start with the task it has): follow that one, or
                # its end would be taken for a late result and the job would
                # wait forever. This start was no attempt; that one is, and
                # counts once: ours (settled if we charged it when the node
                # was lost), one the journal counted, or else one begun
                # before our restart and never journalled.
                job.token = answer.token
                job.attempts -= 1
                if answer.token >> 32 == self.epoch:
                    self.charge_goes_on(d.node.node, job, answer.token)
                elif self.replayed_tokens.get(job.id) != answer.token:
                    job.attempts += 1
                self.graph.changed.append(job)
        if busy:
            self.stats["busy_starts"] += busy
            self.hold(d.node, "busy", busy=True)
        else:
            self.took_starts(d.node)

    def dispatch_ended(self, d: Dispatch, tokens: dict[str, int], failed: dict[str, str],
                       not_started: dict[str, str] | None = None,
                       unsent: dict[str, str] | None = None) -> list[Effect]:
        """What did not start fails soft (if the job is still on this attempt);
        what surely reached no live process (`not_started`) is queued again
        without counting an attempt, and its node is held back for a moment.
        What was never sent (`unsent`: its outputs' storage node gone or not
        answering the creates) is no attempt either: placed afresh after a
        moment (the compute node is not to blame)."""
        self.unacked.pop(id(d), None)
        if self.cancel_on_start:
            self.cancels_after_dispatch(d, tokens)  # (control.py)
        for job, cause in self._still_ours(d, tokens, unsent):
            self.stats["not_started"] += 1
            job.placement = None
            self._soft_failure(job, cause, counted=False, delay=HOLD_FIRST)
        for job, cause in self._still_ours(d, tokens, failed):
            self._soft_failure(job, cause)
        if not_started:
            for job, cause in self._still_ours(d, tokens, not_started):
                self.stats["not_started"] += 1
                self._soft_failure(job, cause, counted=False)
            self.hold(d.node, next(iter(not_started.values())))
        return self._flush()

    def _still_ours(self, d: Dispatch, tokens: dict[str, int],
                    causes: dict[str, str] | None) -> Iterator[tuple[Job, str]]:
        """The jobs of `causes` (job id -> cause) still on the attempt `d` started."""
        for jid, cause in (causes or {}).items():
            job = self.graph.jobs.get(jid)
            if self._ours(job, d.node, tokens):
                assert job is not None
                yield job, cause

    def take_deletions(self) -> list[tuple[ComputeRef, list[str]]]:
        """Finished tasks' results to delete, per compute node still known."""
        pending, self.to_delete = self.to_delete, defaultdict(list)
        return [(ref, jobs) for node_id, jobs in pending.items() if (ref := self.computes.get(node_id)) is not None]
