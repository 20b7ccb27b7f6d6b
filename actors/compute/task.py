"""A task on a compute node, the ways it fails, and the records it comes from.

A Task is made from a `start` (protocol.tasks.Start) and reported as a
TaskReport; a delegation it ends with is a protocol.tasks.Delegation judged
once where it enters (the command's delegate.json, a callable's Delegate).
"""

from __future__ import annotations

import time
from typing import Any

import trio

from weft.actors.delegate import Delegate
from weft.actors.model import DEFAULT_CANCEL_TIME, JobSpec, SpecError
from weft.protocol.enums import ErrorCode, Outcome, StopReason, TaskState
from weft.protocol.tasks import Delegation, Start, TaskReport

from .segments import Segment

# Seconds between SIGTERM and SIGKILL when a task's time limit is up, or its
# node shuts down.
STOP_GRACE = 2.0


def stop_grace(task: Task) -> float:
    """SIGTERM to SIGKILL: the job's max cancellation time when it is cancelled."""
    if task.stop == StopReason.CANCEL:
        ct = task.spec.cancel_time
        return DEFAULT_CANCEL_TIME if ct is None else ct
    return STOP_GRACE


class SoftFailure(Exception):
    """Infrastructure failed the task: it may run again elsewhere. `code`
    (an ErrorCode) travels beside the message in the task's news."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class HardFailure(Exception):
    """The job itself failed. `code` (an ErrorCode, when there is one)
    travels beside the message in the task's news, never inside it; so
    does `tail`, a failed command's last lines of stderr."""

    def __init__(self, message: str, code: str | None = None, tail: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.tail = tail


class Unmet(SoftFailure):
    """A task started ahead of its input found that input's local producer
    did not make it: the coordinator queues it again without counting an attempt."""

    def __init__(self, message: str) -> None:
        super().__init__(message, ErrorCode.UNMET)


class Task:
    __slots__ = (
        "job", "spec", "inputs", "outputs", "token", "state", "outcome", "exit_code",
        "cause", "code", "stop", "delegation", "created", "started", "finished", "scope", "written", "stored", "holding",
        "inline", "after", "ahead", "ended", "valued", "unsure", "followers", "taken", "values", "unmet", "dropped", "log_same",
        "call_log", "signal", "tail", "near", "secrets", "log_empty",
    )

    def __init__(
        self, job: str, spec: JobSpec, inputs: dict[str, tuple[list[str], str]], outputs: dict[str, list[str]], token: int
    ) -> None:
        self.job = job
        self.spec = spec
        self.inputs = inputs  # input name -> (storage endpoints with a copy, object name to read)
        self.outputs = outputs  # output name -> storage endpoints to write it to
        self.token = token
        self.state = TaskState.PENDING
        self.outcome: Outcome | None = None
        self.exit_code: int | None = None
        self.signal: int | None = None  # the signal that ended its command, if one did
        self.tail: str | None = None  # a failed command's last lines of stderr
        self.cause: str | None = None
        self.code: str | None = None  # the failure's ErrorCode, beside the human cause
        self.stop: StopReason | None = None  # why it was stopped from outside, if it was
        self.delegation: Delegation | None = None
        self.created = time.time()
        self.started: float | None = None
        self.finished: float | None = None
        self.scope: trio.CancelScope | None = None
        self.written: list[str] = []
        # Output -> [storage node, size, content if small]: the outputs this
        # task finished, reported in its `done` so the coordinator needs no
        # second event to learn that the job's results exist.
        self.stored: dict[str, list] = {}
        self.holding = False  # holds a slot of the node's limiter
        self.inline: dict[str, bytes] = {}  # inputs whose bytes came with the start
        # Input -> the compute node that made it, which may serve it from memory (valuecache.py).
        self.near: dict[str, str] = {}
        self.secrets: dict[str, str] | None = None  # secret inputs: environment variables of its command
        # Inputs still being made by a task on this node: input -> that task
        # (parsed as (job, token), then resolved by ComputeNode._follow). The
        # task waits for that task's end instead of being started by the
        # coordinator after it: one round trip less per dependent hop.
        self.after: dict[str, Any] = {}
        # Inputs started ahead whose producer was not (or no longer) here: if
        # storage does not have them yet, they were not made yet (Unmet).
        self.ahead: set[str] = set()
        self.ended: trio.Event | None = None  # set when done, made when a follower waits
        # Set when its values are known (before they are stored) or it is done.
        self.valued: trio.Event | None = None
        # Producers here whose value this task took before it was durable (compute/ahead.py).
        self.unsure: list[Task] = []
        self.followers = 0  # tasks here waiting for this one's outputs
        self.taken = False  # a follower took its values before they were stored (ahead.py)
        self.values: dict[str, bytes] | None = None  # its outputs' bytes, kept for followers
        self.unmet = False
        # [object, storage endpoint] of each replica a write gave up on (too
        # slow, or failed) while another copy was made: for repair.
        self.dropped: list[list[str]] = []
        # Its log is byte for byte its stored `stdout`: not stored apart (compute/follow.py).
        self.log_same = False
        # A command's log is empty: when it succeeds its directory holds nothing to read.
        self.log_empty = False
        self.call_log: Any = None  # a callable's prints (compute.pool.CallLog), once it ran

    def has_dir(self) -> bool:
        """Whether its task directory is still there (to recycle when it is
        deleted): a command's, unless it succeeded with an empty log (given
        back as it ended); a callable's only if it had object inputs (a tree
        input is laid out in it: no failing rename per callable)."""
        if self.spec.command is None:
            return bool(self.spec.refs)
        return not (self.log_empty and self.outcome == Outcome.SUCCESS)

    def summary(self) -> dict[str, Any]:
        return self.report().to_wire()

    def report(self) -> TaskReport:
        return TaskReport(
            self.job, self.state, self.token, self.outcome, self.exit_code, self.cause, self.code,
            None if self.delegation is None else self.delegation.to_wire(), self.unmet,
            self.stored if self.state == TaskState.DONE else None, self.started, self.finished,
            self.dropped or None if self.state == TaskState.DONE else None, self.signal, self.tail,
        )

    @classmethod
    def started_by(cls, start: Start) -> Task:
        task = cls(start.job, start.spec, start.inputs, start.outputs, start.token)
        task.inline = start.inline
        task.after = start.after
        task.near = start.near
        task.secrets = start.secrets  # in memory only: never in the task log or directory
        return task



def delegation_of(value: Delegate) -> Delegation:
    """A callable's Delegate, judged once here (it was built in the worker
    process and came back pickled, which skips its own check)."""
    job = value.job
    if isinstance(job, JobSpec):
        job.validate()
        return Delegation.of(job, value.stream)
    return Delegation.from_wire({"job": job, "stream": value.stream})


def restored_delegation(wire: Any) -> Delegation | None:
    """A delegation from the task log (written by this node, so valid unless damaged)."""
    if wire is None:
        return None
    try:
        return Delegation.from_wire(wire)
    except SpecError:
        return None


def callable_outputs(spec: JobSpec, value: Any) -> dict[str, bytes]:
    if value is None:
        return {}
    if isinstance(value, str):
        value = value.encode()
    if type(value) is Segment:  # a large result in its own memory file: read like bytes, never copied
        return {"result": value}
    if isinstance(value, bytes | bytearray | memoryview):
        return {"result": bytes(value)}
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if k not in spec.outputs:
                raise HardFailure(f"{spec.call} returned output {k!r}, which the job does not declare")
            if isinstance(v, str):
                v = v.encode()
            if not isinstance(v, bytes | bytearray | memoryview):
                raise HardFailure(f"{spec.call} returned {type(v).__name__} for output {k!r}; outputs are bytes or str")
            out[k] = bytes(v)
        return out
    raise HardFailure(f"{spec.call} returned {type(value).__name__}; return bytes, str, a dict of them, or Delegate")
