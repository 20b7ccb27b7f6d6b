"""News from compute and storage nodes, parsed once from the wire into the
protocol's records: a compute node's tasks are TaskReports, a storage node's
objects ObjectInfos (with, for an event, its EventKind).

The state takes these records as they are. A malformed entry is dropped, not
fatal (a daemon never crashes on input): the node's next inventory tells the
truth again. What was dropped is counted and logged at most once a minute.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from weft.bus.errors import BusError
from weft.protocol.enums import EventKind, ObjectState, TaskState
from weft.protocol.objects import ObjectInfo, ObjectInventory
from weft.protocol.tasks import Refused, StartManyReply, TaskInventory, TaskReport

log = logging.getLogger("weft.coordinator")

# An object event: what happened (created, partial, finished, delegated,
# deleted) and the object as the node reports it.
ObjectEvent = tuple[EventKind, ObjectInfo]

_TASK = EventKind.TASK
_PARTIAL = EventKind.PARTIAL
_KINDS = EventKind._value2member_map_
_TASK_STATES = TaskState._value2member_map_
_LOG_EVERY = 60.0
_dropped = {"count": 0, "logged": 0.0}


def _drop(what: str, error: Exception) -> None:
    _dropped["count"] += 1
    now = time.monotonic()
    if now - _dropped["logged"] >= _LOG_EVERY:
        _dropped["logged"] = now
        log.warning("dropped %d malformed %s entries so far; latest: %s", _dropped["count"], what, error)


def task_events(events: list) -> list[TaskReport]:
    """A compute poll's events: the `task` ones (others are `deleted`)."""
    out = []
    from_wire = TaskReport.from_wire
    for ev in events:
        if ev[1] == _TASK:  # PollReply checked each is [seq, kind, data]
            try:
                out.append(from_wire(ev[2]))
            except BusError as e:
                _drop("task event", e)
    return out


# Task steps the state does nothing with (task_news acts on `storing` and
# `done` only). A command sends four steps per task; parsing these two into
# records was half of the reports the coordinator parsed.
_PASSING = frozenset((TaskState.PENDING, TaskState.FETCHING, TaskState.RUNNING))


def task_ends(events: list) -> list[TaskReport]:
    """A compute poll's `task` events that the state acts on: slots given
    back (`storing`) and ends (`done`). The other steps are skipped unparsed;
    an entry that is not a map with a known state still goes through the
    record's checks, so it is dropped and counted as malformed."""
    out = []
    from_wire = TaskReport.from_wire
    passing = _PASSING
    for ev in events:
        if ev[1] == _TASK:  # PollReply checked each is [seq, kind, data]
            d = ev[2]
            if type(d) is dict:
                s = d.get("state")
                if type(s) is str and s in passing and type(d.get("job")) is str:
                    continue
            try:
                out.append(from_wire(d))
            except BusError as e:
                _drop("task event", e)
    return out


def storage_events(events: list) -> list[ObjectEvent]:
    out = []
    from_wire = ObjectInfo.from_wire
    for ev in events:
        try:
            kind = _KINDS.get(ev[1])
        except TypeError:  # unhashable
            continue
        if kind is None or kind is _TASK:
            continue
        try:
            info = from_wire(ev[2])
        except BusError as e:
            _drop("object event", e)
            continue
        if kind is _PARTIAL:
            # Partial bytes are the news, whatever state the event carries.
            info.state = ObjectState.PARTIAL
        out.append((kind, info))
    return out


def compute_inventory(body: Any) -> TaskInventory:
    """A compute node's `list` answer; a malformed task drops only itself."""
    return _inventory(body, TaskInventory, "tasks", TaskReport, "task inventory")


def storage_inventory(body: Any) -> ObjectInventory:
    """A storage node's `list` answer; a malformed object drops only itself."""
    return _inventory(body, ObjectInventory, "objects", ObjectInfo, "object inventory")


def _inventory(body: Any, record: Any, key: str, item: Any, what: str) -> Any:
    try:
        return record.from_wire(body)
    except BusError as e:
        if type(body) is not dict or type(body.get(key)) is not list:
            raise
        inv = record.from_wire({**body, key: []})  # the rest must be good
        _drop(what, e)
        setattr(inv, key, _each(item.from_wire, body[key]))
        return inv


def start_answers(body: Any) -> list[TaskReport | Refused]:
    """A `start_many` answer: per start, the task the node has or its refusal;
    a malformed item drops only itself (the node's news tells the rest).

    Of a task only what the dispatch reads (job, state, token) is taken: a
    task that ended already is reported whole again by its `task` event,
    parsed there (a report parsed twice per job was a dispatch's largest
    parse; docs/performance.md)."""
    items = body.get("tasks") if type(body) is dict else None
    if type(items) is not list:
        StartManyReply.from_wire(body)  # words what is wrong (raises)
    out: list[TaskReport | Refused] = []
    append = out.append
    for t in items:
        if type(t) is dict and "error" not in t:
            job, state, token = t.get("job"), t.get("state"), t.get("token", 0)
            try:
                state = _TASK_STATES.get(state)
            except TypeError:  # unhashable
                state = None
            if type(job) is str and state is not None and type(token) is int:
                append(TaskReport(job, state, token))
                continue
        try:
            append(StartManyReply.from_wire({"tasks": [t]}).tasks[0])  # a refusal, or words the fault
        except BusError as e:
            _drop("start_many answer", e)
    return out


def _each(from_wire: Any, items: list) -> list:
    out = []
    for item in items:
        try:
            out.append(from_wire(item))
        except BusError:
            pass
    return out
