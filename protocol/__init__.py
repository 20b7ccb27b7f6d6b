"""weft.protocol: every message of the wire as a typed record.

One record per op request, reply and event, each with one `to_wire()` (the
msgpack-ready dict, field names and shapes exactly as on the wire) and one
`from_wire()` (validates; a malformed field raises `BadRequest`, code
`bad-request`, naming op and field). The modules:

    enums    job, task and object states, outcomes, error codes, event kinds
    fields   the field readers `from_wire` is written with
    jobs     the coordinator's ops: submit, status, wait, cancel, locate, nodes, stats, hello
    tasks    the compute node's ops and news: start, start_many, result, cancel, the task report
    objects  the storage node's ops and news: create, put, populate, finish, read, delegate, ...
    events   poll, ping, info (served by every node)
    follow   a job's log and progress: logs/log, progress (coordinator and compute)

Only the enums load with the package: the record modules import the job spec
(weft.actors.model), which itself takes its enums from here.
"""

from .enums import (
    TERMINAL_JOB_STATES,
    ErrorCode,
    EventKind,
    JobState,
    ObjectState,
    Outcome,
    Role,
    StopReason,
    TaskState,
    Wake,
)

__all__ = [
    "TERMINAL_JOB_STATES", "ErrorCode", "EventKind", "JobState", "ObjectState", "Outcome", "Role",
    "StopReason", "TaskState", "Wake",
]
