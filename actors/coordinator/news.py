"""News from compute and storage nodes as typed records, parsed from the wire.

The shell parses each wire map once, here; the state takes these records, so
its rules never look at wire keys. Malformed entries are dropped (a daemon
never crashes on input): the node's next inventory tells the truth again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from weft.actors.model import SpecError, split_object_name


@dataclass(slots=True)
class TaskNews:
    """A compute node's word on one task (an event or an inventory entry)."""

    job: str
    state: str | None  # pending | fetching | running | storing | done
    token: int | None = None
    outcome: str | None = None  # when done: success | failed-soft | failed-hard | cancelled | timed-out
    cause: str | None = None
    exit_code: int | None = None  # of the command, when one ran
    stored: dict | None = None  # output -> [storage node, size, bytes?]: acknowledged durable
    delegation: Any = None  # {job, stream, output?}: checked when applied
    unmet: bool = False  # started ahead of an input that was never made
    started: float | None = None


def task_news(t: Any) -> TaskNews | None:
    if not isinstance(t, dict):
        return None
    job = t.get("job")
    if type(job) is not str:
        return None
    token = t.get("token")
    cause = t.get("cause")
    x = t.get("exit")
    stored = t.get("stored")
    started = t.get("started")
    return TaskNews(
        job,
        t.get("state"),
        token if type(token) is int else None,
        t.get("outcome"),
        cause if isinstance(cause, str) else None,
        x if type(x) is int else None,
        stored if isinstance(stored, dict) else None,
        t.get("delegation"),
        bool(t.get("unmet")),
        started if isinstance(started, int | float) else None,
    )


def task_events(events: Any) -> list[TaskNews]:
    """A compute poll's events: the `task` ones, parsed."""
    out = []
    for ev in events:
        if isinstance(ev, list | tuple) and len(ev) == 3 and ev[1] == "task":
            n = task_news(ev[2])
            if n is not None:
                out.append(n)
    return out


@dataclass(slots=True)
class ObjectNews:
    """A storage node's word on one object (an event or an inventory entry)."""

    name: str
    state: str | None  # empty | partial | finished | delegated | deleted
    size: int | None = None
    data: bytes | None = None  # a small finished object's bytes
    target: str | None = None  # what a delegated object stands for
    kind: str | None = None  # the event kind (created, partial, deleted, ...), None in an inventory


def object_news(info: Any, kind: str | None = None) -> ObjectNews | None:
    if not isinstance(info, dict):
        return None
    name = info.get("name")
    try:
        split_object_name(name)
    except SpecError:
        return None
    size = info.get("size")
    data = info.get("data")
    target = info.get("target")
    # A `partial` event may carry the object's old state: partial bytes are the news.
    state = "partial" if kind == "partial" else info.get("state")
    return ObjectNews(
        name,
        state if isinstance(state, str) else None,
        size if type(size) is int else None,
        data if isinstance(data, bytes) else None,
        target if isinstance(target, str) else None,
        kind,
    )


def storage_events(events: Any) -> list[ObjectNews]:
    out = []
    for ev in events:
        if isinstance(ev, list | tuple) and len(ev) == 3:
            n = object_news(ev[2], ev[1] if isinstance(ev[1], str) else None)
            if n is not None:
                out.append(n)
    return out


def storage_inventory(inv: dict[str, Any]) -> list[ObjectNews]:
    objs = inv.get("objects")
    if not isinstance(objs, list):
        return []
    return [n for info in objs if (n := object_news(info)) is not None]


def compute_inventory(inv: dict[str, Any]) -> tuple[int, list[TaskNews]]:
    """(slots, tasks) of a compute node's `list` answer."""
    slots = inv.get("slots", 0)
    tasks = inv.get("tasks")
    parsed = [n for t in tasks if (n := task_news(t)) is not None] if isinstance(tasks, list) else []
    return (slots if type(slots) is int and slots >= 0 else 0), parsed
