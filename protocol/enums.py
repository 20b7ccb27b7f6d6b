"""The one vocabulary of states, outcomes and error codes.

Every enum is a `StrEnum` whose values are the strings the wire carried before
these enums existed: a member compares equal to (and msgpack-encodes as) its
string, so a node that still uses bare strings interoperates with one that
uses the enums.
"""

from __future__ import annotations

import enum


class JobState(enum.StrEnum):
    """A job as the coordinator tracks it."""

    WAITING = "waiting"  # an input is not made yet
    RUNNABLE = "runnable"  # queued for a compute slot
    RUNNING = "running"
    # Asked to stop while running; its outcome is not known yet (the task may
    # still end succeeded or failed). Settled by the node's next report, its
    # loss, or the job's max-cancellation-time plus a margin: never for good.
    CANCELLING = "cancelling"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL_JOB_STATES = frozenset((JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED))


class TaskState(enum.StrEnum):
    """A task on a compute node."""

    PENDING = "pending"
    FETCHING = "fetching"
    RUNNING = "running"
    STORING = "storing"
    DONE = "done"


class Outcome(enum.StrEnum):
    """How a task (and so its job) ended."""

    SUCCESS = "success"
    FAILED_HARD = "failed-hard"  # the job's own fault
    FAILED_SOFT = "failed-soft"  # the infrastructure's: it may run again
    CANCELLED = "cancelled"
    TIMED_OUT = "timed-out"


class ObjectState(enum.StrEnum):
    """An object in a storage node."""

    EMPTY = "empty"
    PARTIAL = "partial"
    FINISHED = "finished"
    DELEGATED = "delegated"


class StopReason(enum.StrEnum):
    """Why a running task was stopped from outside: decides its outcome
    (a cancel ends it `cancelled`, a shutdown `failed-soft`)."""

    CANCEL = "cancel"
    SHUTDOWN = "shutdown"


class Role(enum.StrEnum):
    COORDINATOR = "coordinator"
    COMPUTE = "compute"
    STORAGE = "storage"


class Wake(enum.StrEnum):
    """Which events end a `poll`'s wait."""

    ALL = "all"
    URGENT = "urgent"


class EventKind(enum.StrEnum):
    """The kinds of events on a node's queue (`poll` answers `[seq, kind, data]`)."""

    TASK = "task"  # compute: a task's state changed (data: a TaskReport)
    DELETED = "deleted"  # compute: a task was deleted; storage: an object was
    CREATED = "created"  # storage: object news (data: an ObjectInfo)
    PARTIAL = "partial"
    FINISHED = "finished"
    DELEGATED = "delegated"


class ErrorCode(enum.StrEnum):
    """Machine-readable error codes: in error replies (`{code, message}`), in
    per-item errors of batch ops, and in task-failure news (`code` beside the
    human `cause`)."""

    # requests
    BAD_REQUEST = "bad-request"  # a field of a request is malformed (the message names it)
    BAD_SPEC = "bad-spec"  # a job spec, object name or delegation is malformed
    BAD_MESSAGE = "bad-message"  # not a valid envelope
    BAD_ENDPOINT = "bad-endpoint"
    UNKNOWN_OP = "unknown-op"
    INTERNAL = "internal"
    # admission, fencing, transport
    BUSY = "busy"
    FENCED = "fenced"
    TIMEOUT = "timeout"
    CONNECTION_LOST = "connection-lost"
    UNREACHABLE = "unreachable"
    PEER_CLOSED = "peer-closed"
    # objects
    MISSING = "missing"
    EXISTS = "exists"
    IMMUTABLE = "immutable"
    NOT_FINISHED = "not-finished"
    NOT_READABLE = "not-readable"
    REDIRECTED = "redirected"
    DELEGATION_CYCLE = "delegation-cycle"
    NO_SPACE = "no-space"
    IO_ERROR = "io-error"
    BAD_OFFSET = "bad-offset"
    BAD_SIZE = "bad-size"
    SHORT_READ = "short-read"
    NO_DESCRIPTOR = "no-descriptor"  # a put by descriptor found none usable: the writer sends the bytes
    # tasks
    RUNNING = "running"  # a task still running cannot be deleted
    SHUTTING_DOWN = "shutting-down"  # the compute node stopped while the task ran
    UNMET = "unmet"  # started ahead of an input whose producer did not make it
    BAD_DELEGATION = "bad-delegation"
    CALLABLE_FAILED = "callable-failed"
    CALLABLE_NOT_FOUND = "callable-not-found"
    WORKER_LOST = "worker-lost"
    # submission control (actors/coordinator/spawn.py)
    SPAWN_LIMIT = "spawn-limit"  # a child submit past its root's --max-spawns
    DECOMMISSIONED = "decommissioned"  # a child submit under a decommissioned root


class JobFailure(enum.StrEnum):
    """Why a job failed or was cancelled: the `code` of a finished job that
    did not succeed (beside an optional `detail` and the human `cause`).
    A fixed, documented set (README, "Job states, outcomes and failure
    codes"); apart from ErrorCode, which names why a request or a task step
    failed on the wire."""

    EXIT_STATUS = "exit-status"  # the command exited non-zero (detail: the exit code)
    CRASHED = "crashed"  # killed by a signal it did not get from us (detail: the signal)
    TIMED_OUT = "timed-out"  # ran longer than its time limit
    PENDING_TIMEOUT = "pending-timeout"  # not started within --pending-timeout (detail: why)
    CANCELLED = "cancelled"
    COMMAND_NOT_FOUND = "command-not-found"
    INPUT_FAILED = "input-failed"  # a job making an input failed (detail: that job)
    INPUT_LOST = "input-lost"  # an input object is gone and nothing can make it (detail: the object)
    NODE_LOST = "node-lost"  # its compute node was lost, too often
    STORAGE_UNAVAILABLE = "storage-unavailable"  # reading inputs or storing outputs failed, too often
    SPAWN_LIMIT = "spawn-limit"  # the node could not start its process (or worker), too often
    NO_CAPACITY = "no-capacity"  # nothing could ever run it
    MEMORY_LIMIT = "memory-limit"  # used more memory than its --memory (killed by the compute node)
    OUTPUT_MISSING = "output-missing"  # the command ended well but did not write a declared output
    CALLABLE_FAILED = "callable-failed"  # a callable raised (or was not found)
    BAD_SPEC = "bad-spec"  # a delegation or an exit action's flow was malformed
    INTERNAL = "internal"  # a bug: the traceback is in the daemon's log


# Why a job waiting for its start could not start (`detail` of `pending-timeout`).
PENDING_INPUTS_MISSING = "inputs-missing"
PENDING_NO_CAPACITY = "no-capacity"
PENDING_QUEUED = "queued"  # runnable, but every slot was busy
PENDING_BACKING_OFF = "backing-off"  # (a retry's delay: a retried job is not pending)
