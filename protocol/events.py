"""Ops every node serves (runtime.node, bus.events).

    ping   Ping       -> {node, role, inc, epoch} (the coordinator's liveness check; fences)
    info   (no body)  -> the node's description
    poll   Poll       -> PollReply: events `[seq, kind, data]` (kind: an EventKind)
"""

from __future__ import annotations

from dataclasses import field
from typing import Any

from .enums import Wake
from .fields import (
    bad,
    body_map,
    enum_field,
    epoch_field,
    int_field,
    opt_str,
    put_epoch,
    seconds_field,
)
from .record import record


@record
class Ping:
    epoch: int | None = None

    def to_wire(self) -> dict[str, Any]:
        return put_epoch({}, self.epoch)

    @classmethod
    def from_wire(cls, body: Any) -> Ping:
        return cls(epoch_field("ping", body_map("ping", body, optional=True)))


@record
class Poll:
    """`poll`: events from `since` on, waiting up to `timeout` for the first
    (with wake `urgent`: for the first urgent one). `inc` is the incarnation
    the poller numbered `since` in; another one answers `resync`. `gather`
    (urgent only): once woken, wait up to that many seconds more for further
    urgent events while the node says more are coming (bus/events.py)."""

    since: int = 0
    timeout: float = 30.0
    inc: str | None = None
    wake: Wake = Wake.ALL
    max: int | None = None
    gather: float = 0.0

    def to_wire(self) -> dict[str, Any]:
        d: dict[str, Any] = {"since": self.since, "timeout": self.timeout}
        if self.inc is not None:
            d["inc"] = self.inc
        if self.wake != Wake.ALL:
            d["wake"] = self.wake
        if self.max is not None:
            d["max"] = self.max
        if self.gather:
            d["gather"] = self.gather
        return d

    @classmethod
    def from_wire(cls, body: Any) -> Poll:
        op = "poll"
        b = body_map(op, body)
        return cls(int_field(op, b, "since", 0), seconds_field(op, b, "timeout", 30.0, 300),
                   opt_str(op, b, "inc"), enum_field(op, b, "wake", Wake, Wake.ALL),
                   int_field(op, b, "max", None, minimum=1, nullable=True), seconds_field(op, b, "gather", 0.0, 1))


@record
class PollReply:
    events: list = field(default_factory=list)  # [seq, kind, data]
    next: int = 0
    inc: str = ""
    resync: bool = False

    def to_wire(self) -> dict[str, Any]:
        return {"events": self.events, "next": self.next, "inc": self.inc, "resync": self.resync}

    @classmethod
    def from_wire(cls, body: Any) -> PollReply:
        op = "poll reply"
        b = body_map(op, body)
        events = b.get("events") or []
        if type(events) is not list or not all(type(e) is list and len(e) == 3 for e in events):
            bad(op, "events", "must be a list of [seq, kind, data]")
        inc = b.get("inc", "")
        if type(inc) is not str:
            bad(op, "inc", "must be a string")
        return cls(events, int_field(op, b, "next", 0), inc, b.get("resync") is True)
