"""What the coordinator's state asks its shell to do: plain records, no I/O.

The state (state.py) never touches a socket or a task: every decision that
needs the outside world comes back as one of these, and the shell (node.py)
carries it out. That is what makes the state testable in-process: a test
feeds it news and reads the effects.
"""

from __future__ import annotations

import logging
from dataclasses import field
from typing import Any

from weft.protocol.objects import DelegateObject
from weft.protocol.record import record
from weft.protocol.tasks import Start, TaskRef

from .graph import Job
from .nodes import ComputeRef, NodeRef, StorageRef

Message = DelegateObject | TaskRef


@record
class Send:
    """One message to a node whose answer changes nothing here (logged if it fails)."""

    endpoint: str
    op: str
    body: Message  # the request's record (protocol); the shell sends its wire form
    what: str  # for the log line if it fails
    level: int = logging.INFO


@record
class Dispatch:
    """Start `items` on `node`: one start_many (and one create_many per
    storage node for retries). Each job's Start has its inputs, inline bytes
    and `after` from the planner; its outputs are filled in when it is sent."""

    node: ComputeRef
    items: list[tuple[Job, Start]]


@record
class Scavenge:
    """Delete partial objects nobody writes, then tell the state (`scavenged`)."""

    storage: StorageRef
    names: list[str]


@record
class Track:
    """A node was met: watch its liveness and start its poller."""

    ref: NodeRef


@record
class StopPoller:
    """The node's poller must end (the node was lost, moved or restarted)."""

    ref: NodeRef


@record
class DropPeer:
    """Forget the connection to this endpoint (the node restarted in place)."""

    endpoint: str


@record
class JournalWrite:
    """Stage these jobs in the journal: `new` as rows, `changed` as updates,
    `attempts` as rows of ended attempts (attempts.py; `(job, n, None)`: delete one)."""

    new: list[Job] = field(default_factory=list)
    changed: list[Job] = field(default_factory=list)
    attempts: list[tuple] = field(default_factory=list)


class Waiter:
    """One `wait` call: how many of its jobs are unfinished. The shell hangs
    its wake-up (a trio.Event) on `event`; the state only counts."""

    __slots__ = ("remaining", "ids", "event")

    def __init__(self, event: Any = None) -> None:
        self.remaining = 0
        self.ids: list[str] = []
        self.event = event


@record
class Wake:
    """Every job this waiter waits for is finished."""

    waiter: Waiter


@record
class Copy:
    """Repair: ask `target` to copy each object from the storage endpoint
    given (one `replicate`), then tell the state (`copies_answered`)."""

    target: StorageRef
    items: list[tuple[str, str]]


@record
class Trim:
    """Repair: delete these extra copies on `storage` (its `deleted` events tell the state)."""

    storage: StorageRef
    names: list[str]


@record
class Kick:
    """Run a scheduling round soon (work may be runnable, or a slot freed)."""


KICK = Kick()

Effect = Send | Dispatch | Scavenge | Track | StopPoller | DropPeer | JournalWrite | Wake | Kick | Copy | Trim
