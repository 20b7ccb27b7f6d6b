"""Submission-control ops of the coordinator (actors/coordinator/spawn_ops.py).

    tree          RootRef -> {root, jobs: [job view with spawned_by]}
    decommission  RootRef -> {root, since, cancelled: [job id]}
    submit        (jobs.py) with `queue: false`: TrySubmitReply

Job ends go to the coordinator's own event queue (`poll`, events.py) as
events of kind `job-end` with a JobEnd record as data.
"""

from __future__ import annotations

from dataclasses import field
from typing import Any

from .fields import bad, body_map, job_field
from .record import record

# The event kind of a job's end in the coordinator's event queue.
JOB_END = "job-end"
SIZES = ("tiny", "small", "medium", "large")


@record
class RootRef:
    """`tree` and `decommission`: `{root}` (a job id or NAME)."""

    root: str

    def to_wire(self) -> dict[str, Any]:
        return {"root": self.root}

    @classmethod
    def from_wire(cls, body: Any, op: str = "tree") -> RootRef:
        return cls(job_field(op, body_map(op, body), "root"))


def check_slots(op: str, value: Any) -> dict[str, int]:
    if type(value) is not dict or set(value) != set(SIZES) or not all(type(v) is int and v >= 0 for v in value.values()):
        bad(op, "slots", f"must map {', '.join(SIZES)} to counts >= 0")
    return value


@record
class TrySubmitReply:
    """A submit with `queue: false`: the jobs that started (or were already
    done or running), those that could not start now (not kept), and an
    estimate of what still fits by size class."""

    started: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    slots: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SIZES, 0))

    def to_wire(self) -> dict[str, Any]:
        return {"started": self.started, "rejected": self.rejected, "slots": self.slots}

    @classmethod
    def from_wire(cls, body: Any) -> TrySubmitReply:
        op = "submit reply"
        b = body_map(op, body)
        started, rejected = b.get("started"), b.get("rejected")
        for k, v in (("started", started), ("rejected", rejected)):
            if type(v) is not list or not all(type(x) is str for x in v):
                bad(op, k, "must be a list of job ids")
        return cls(started, rejected, check_slots(op, b.get("slots")))


@record
class JobEnd:
    """A job's end, as `weft events` shows it."""

    job: str
    state: str  # succeeded | failed | cancelled
    finished: float
    parameters: dict[str, Any] | None = None
    code: str | None = None
    slots: dict[str, int] | None = None

    def to_wire(self) -> dict[str, Any]:
        d: dict[str, Any] = {"job": self.job, "state": self.state, "finished": self.finished}
        if self.parameters:
            d["parameters"] = self.parameters
        if self.code is not None:
            d["code"] = self.code
        if self.slots is not None:
            d["slots"] = self.slots
        return d

    @classmethod
    def from_wire(cls, body: Any) -> JobEnd:
        op = "job-end"
        b = body_map(op, body)
        job, state, finished = b.get("job"), b.get("state"), b.get("finished")
        if type(job) is not str or type(state) is not str or not isinstance(finished, int | float):
            bad(op, "job", "needs job, state and finished")
        slots = b.get("slots")
        return cls(job, state, float(finished), b.get("parameters"), b.get("code"),
                   None if slots is None else check_slots(op, slots))


@record
class Recurring:
    """`recurring`: `{do: add, name, every, job: spec}`, `{do: ls}` or
    `{do: delete, name}` -> {recurring: [definition view]}."""

    do: str
    name: str | None = None
    every: float | None = None
    job: Any = None  # a job spec's wire form (add)

    def to_wire(self) -> dict[str, Any]:
        d: dict[str, Any] = {"do": self.do}
        if self.name is not None:
            d["name"] = self.name
        if self.every is not None:
            d["every"] = self.every
        if self.job is not None:
            d["job"] = self.job
        return d

    @classmethod
    def from_wire(cls, body: Any) -> Recurring:
        op = "recurring"
        b = body_map(op, body)
        do = b.get("do")
        if do not in ("add", "ls", "delete"):
            bad(op, "do", "must be add, ls or delete")
        name, every = b.get("name"), b.get("every")
        if do != "ls" and type(name) is not str:
            bad(op, "name", "must be a job name")
        if do == "add" and (not isinstance(every, int | float) or isinstance(every, bool) or not every > 0):
            bad(op, "every", "must be a positive number of seconds")
        if do == "add" and type(b.get("job")) is not dict:
            bad(op, "job", "must be a job spec")
        return cls(do, name, None if every is None else float(every), b.get("job"))
