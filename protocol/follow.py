"""Following a job while it runs: its log and its reported progress.

Clients only ever call the coordinator, and the coordinator calls compute
nodes, so both ops exist twice with the same records: `logs` and `progress`
on the coordinator, which relays them as `log` and `progress` to the compute
node running the job (a finished job's log is read from storage instead).

    LogRead    {job, offset, wait?, limit?}      `logs` (coordinator), `log` (compute)
    LogChunk   {data, offset, done}              their reply: bytes from `offset`,
                                                 `offset` after them, and whether the
                                                 log is complete (the job ended)
    ProgressAsk   {jobs}                         `progress` (coordinator and compute)
    ProgressReply {progress: {job: [pct, msg]}}  the latest line of each job that wrote one

Reading the log is a long poll: with `wait` > 0 an answer with no new bytes
comes only after `wait` seconds or when the job ends.
"""

from __future__ import annotations

from dataclasses import field
from typing import Any

from .fields import bad, body_map, flag, int_field, job_field, seconds_field, str_list
from .record import record

# The object a job's log is kept as, beside its outputs: `JOB/_log`. A name
# a job may declare too; then its own output wins and no log is kept.
LOG_OUTPUT = "_log"
# One answer's bytes at most; a longer log takes several reads.
LOG_LIMIT = 1 << 20
LOG_LIMIT_MAX = 16 << 20
# The longest a log read may wait for new bytes (below every caller's call timeout).
LOG_WAIT_MAX = 30.0


@record
class LogRead:
    job: str
    offset: int = 0
    wait: float = 0.0
    limit: int = LOG_LIMIT

    def to_wire(self) -> dict[str, Any]:
        d: dict[str, Any] = {"job": self.job, "offset": self.offset}
        if self.wait:
            d["wait"] = self.wait
        if self.limit != LOG_LIMIT:
            d["limit"] = self.limit
        return d

    @classmethod
    def from_wire(cls, body: Any, op: str = "logs") -> LogRead:
        b = body_map(op, body)
        return cls(job_field(op, b), int_field(op, b, "offset"), seconds_field(op, b, "wait", 0.0, LOG_WAIT_MAX),
                   int_field(op, b, "limit", LOG_LIMIT, minimum=1, maximum=LOG_LIMIT_MAX))


@record
class LogChunk:
    data: bytes
    offset: int
    done: bool = False

    def to_wire(self) -> dict[str, Any]:
        return {"data": self.data, "offset": self.offset, "done": self.done}

    @classmethod
    def from_wire(cls, body: Any) -> LogChunk:
        op = "logs reply"
        b = body_map(op, body)
        data = b.get("data")
        if isinstance(data, memoryview):
            data = bytes(data)
        if type(data) is not bytes:
            bad(op, "data", "must be bytes")
        return cls(data, int_field(op, b, "offset"), flag(b, "done"))


@record
class ProgressAsk:
    jobs: list[str]

    def to_wire(self) -> dict[str, Any]:
        return {"jobs": self.jobs}

    @classmethod
    def from_wire(cls, body: Any) -> ProgressAsk:
        op = "progress"
        b = body_map(op, body)
        return cls(str_list(op, b, "jobs", what="job ids"))


@record
class ProgressReply:
    # job -> (percent, message); only jobs that reported some progress.
    progress: dict[str, tuple[float, str]] = field(default_factory=dict)

    def to_wire(self) -> dict[str, Any]:
        return {"progress": {j: [p, m] for j, (p, m) in self.progress.items()}}

    @classmethod
    def from_wire(cls, body: Any) -> ProgressReply:
        op = "progress reply"
        b = body_map(op, body)
        raw = b.get("progress")
        if type(raw) is not dict:
            bad(op, "progress", "must be a map")
        out: dict[str, tuple[float, str]] = {}
        for job, v in raw.items():
            if (type(job) is not str or type(v) is not list or len(v) != 2
                    or type(v[0]) not in (int, float) or type(v[1]) is not str):
                bad(op, "progress", f"entry {job!r} must be [percent, message]")
            out[job] = (float(v[0]), v[1])
        return cls(out)
