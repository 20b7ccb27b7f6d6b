"""The records of the coordinator's job graph (graph.py): a Job, an Obj, and
the state names both use. Plain slotted classes, one per job and per
object, so they stay small at 100,000s of jobs (docs/performance.md).
"""

from __future__ import annotations

import time
from typing import Any

from weft.actors.model import JobSpec
from weft.protocol.enums import TERMINAL_JOB_STATES, JobFailure, JobState, ObjectState, Outcome

# Job states are JobState members; an object's is an ObjectState (what its
# storage nodes said) or one of the coordinator's own two, which `locate`
# shows as they are:
UNKNOWN = "unknown"  # no storage node has said anything of it (yet, or any more)
LOST = "lost"  # finished, but every node holding a copy is gone
ObjState = ObjectState | str

# Aliases of the members: on Python 3.11 a module global reads 3x faster
# than `JobState.X` (an enum class attribute), and these are read per job.
WAITING = JobState.WAITING
RUNNABLE = JobState.RUNNABLE
RUNNING = JobState.RUNNING
SUCCEEDED = JobState.SUCCEEDED
FAILED = JobState.FAILED
CANCELLED = JobState.CANCELLED
CANCELLING = JobState.CANCELLING
FINISHED = ObjectState.FINISHED
DELEGATED = ObjectState.DELEGATED
_INPUT_FAILED = JobFailure.INPUT_FAILED
_CANCELLED_CODE = JobFailure.CANCELLED
_INTERNAL = JobFailure.INTERNAL


class Job:
    # What every job sets; the fields below them few jobs ever set live in
    # the instance's __dict__, made only when one is (a queued job has none:
    # 80 bytes less a job at 1,000,000 queued, docs/performance.md). Until
    # set, they read as these class-level defaults.
    __slots__ = (
        "id", "spec", "priority", "seq", "state", "outcome", "node", "token",
        "submitted", "started", "finished", "missing", "demand", "attempts", "placement",
        "ahead", "exit_code", "ran_on", "owner", "__dict__",
    )
    cause: str | None = None
    delegate: str | None = None  # job this one handed its output to
    parent: str | None = None  # job that delegated to this one
    handed: tuple[str, str] | None = None  # (its output, the object standing for it)
    excused = 0  # attempts that ended before running (their input was not made)
    code: str | None = None  # a JobFailure, once it failed or was cancelled
    detail: str | None = None  # beside the code: an exit code, a signal, a job, a reason
    own = 0  # its own failures retried (--retries): not infrastructure's
    history: list[tuple] | None = None  # ended attempts (attempts.py), oldest first
    tail: str | None = None  # a failed command's last lines of stderr (exits.py)
    # Outputs it made empty: finished with no storage copy (the journal
    # holds them: StorageNewsMixin.hold_empty), so no storage write per empty stdout.
    empty: tuple[str, ...] | None = None

    def __init__(self, job_id: str, spec: JobSpec, seq: int, submitted: float) -> None:
        self.id = job_id
        self.spec = spec
        self.priority = spec.priority
        self.seq = seq
        self.state = WAITING
        self.outcome: Outcome | None = None
        self.node: str | None = None  # compute node running it
        self.token = 0
        self.submitted = submitted
        self.started: float | None = None
        self.finished: float | None = None
        self.missing = 0  # unfinished inputs
        self.demand = 0  # unfinished jobs transitively waiting on this one
        self.attempts = 0
        # Started ahead of its last input, on the node making it, and waiting
        # there for it: shown as waiting (it is), though it has a node and token.
        self.ahead = False
        self.placement: str | None = None  # storage node for its outputs
        self.exit_code: int | None = None  # of the last attempt's command, if one ran and said
        self.ran_on: str | None = None  # compute node of the last attempt (kept once it ended)
        self.owner: str | None = None  # who submitted it (owners.py: interned, one pointer)

    @property
    def done(self) -> bool:
        return self.state in TERMINAL_JOB_STATES

    @property
    def shown_state(self) -> JobState:
        return WAITING if self.ahead and self.state == RUNNING else self.state

    def outputs(self) -> list[str]:
        return [f"{self.id}/{o}" for o in self.spec.outputs]

    def summary(self, now: float | None = None) -> dict[str, Any]:
        now = now or time.time()
        d: dict[str, Any] = {
            "job": self.id,
            "state": self.shown_state,
            "priority": self.priority,
            "demand": self.demand,
            "submitted": self.submitted,
            "outputs": self.outputs(),
            # Tries that ran: not those started ahead of an input that never came.
            "attempts": self.attempts - self.excused - (1 if self.ahead else 0),
        }
        if self.spec.name:
            d["name"] = self.spec.name
        if self.owner is not None:
            d["owner"] = self.owner
        # (Spelled out, not a getattr loop: a `wait` on 20,000 jobs makes
        # 20,000 of these while the caller waits.)
        if self.outcome is not None:
            d["outcome"] = self.outcome
        if self.cause is not None:
            d["cause"] = self.cause
        if self.code is not None:
            d["code"] = self.code
        if self.detail is not None:
            d["detail"] = self.detail
        if self.node is not None:
            d["node"] = self.node
        if self.started is not None:
            d["started"] = self.started
        if self.finished is not None:
            d["finished"] = self.finished
        if self.delegate is not None:
            d["delegate"] = self.delegate
        if self.parent is not None:
            d["parent"] = self.parent
        if self.tail is not None:
            d["stderr_tail"] = self.tail
        if self.spec.deadline is not None and is_late(self, now):
            d["late"] = True
        start = self.started or now
        d["waited"] = round(max(0.0, start - self.submitted), 6)
        if self.started is not None:
            d["ran"] = round(max(0.0, (self.finished or now) - self.started), 6)
        return d


def set_rare(job: Job, **values: Any) -> None:
    """Set the rarely-set fields of a new `job` (those outside its
    __slots__) that differ from their defaults: setting one to its default
    would make the job's __dict__ for nothing (a journal replay sets every
    field)."""
    cls = type(job)
    for k, v in values.items():
        if v != getattr(cls, k):
            setattr(job, k, v)


class Obj:
    """What the coordinator knows of one object.

    `locs` are the storage nodes holding a finished (or delegated) copy; with
    replicas there are several, and the object is lost only when none is left.
    """

    __slots__ = ("name", "producer", "locs", "state", "target", "waiters", "size", "lost_at", "data")

    def __init__(self, name: str, producer: str | None) -> None:
        self.name = name
        self.producer = producer
        # A tuple, replaced on change: most objects have one copy, and an
        # empty list per object costs 56 bytes at 1,000,000 queued jobs.
        self.locs: tuple[str, ...] = ()
        self.state: ObjState = UNKNOWN  # until storage reports it; LOST when its copies are
        self.target: str | None = None
        self.waiters: list[str] | None = None
        self.size: int | None = None
        self.lost_at: float | None = None
        self.data: bytes | None = None  # the bytes of a small finished object, when known

    def add_loc(self, node: str) -> None:
        if node not in self.locs:
            self.locs = (*self.locs, node)

    @property
    def held(self) -> bool:
        """An empty output kept by the coordinator, on no storage node
        (StorageNewsMixin.hold_empty): readers get its bytes inline."""
        return self.state == FINISHED and not self.locs and self.data == b""


def is_late(job: Job, now: float) -> bool:
    """A batch job that ended, or has not ended, after its deadline."""
    dl = job.spec.deadline
    return dl is not None and job.spec.job_class == "batch" and (job.finished or now) > dl
