"""What the coordinator knows of the compute and storage nodes it has met."""

from __future__ import annotations

import time
from typing import Any

from weft.protocol.enums import Role


class NodeRef:
    __slots__ = ("node", "role", "endpoint", "inc", "last_seen", "ready", "scope", "info", "applied")

    def __init__(self, node: str, role: str, endpoint: str) -> None:
        self.node = node
        self.role = role
        self.endpoint = endpoint
        self.inc: str | None = None
        self.last_seen = time.time()
        self.ready = False  # inventory taken, poller running
        self.scope: Any = None  # cancel scope of its poller
        self.info: dict[str, Any] = {}
        # Sequence number up to which its events are applied here (`weft
        # nodes` shows it): how far behind its news the coordinator is.
        self.applied = 0


class ComputeRef(NodeRef):
    __slots__ = ("slots", "running", "assigned", "following", "importable")

    def __init__(self, node: str, endpoint: str) -> None:
        super().__init__(node, Role.COMPUTE, endpoint)
        self.slots = 0
        # Jobs holding one of its slots (started, not yet storing) ...
        self.running: set[str] = set()
        # ... and every job it has not finished yet (storing included).
        self.assigned: set[str] = set()
        # Jobs started ahead of their input, waiting on the node for the task
        # that makes it (job -> that producer's job): assigned, holding no slot.
        self.following: dict[str, str] = {}
        # Modules its callable workers can import (probed at submit; see imports.py).
        self.importable: set[str] = set()

    def assign(self, job: str) -> None:
        self.running.add(job)
        self.assigned.add(job)

    def follow(self, job: str, producer: str) -> None:
        self.assigned.add(job)
        self.following[job] = producer

    def unassign(self, job: str) -> None:
        self.running.discard(job)
        self.assigned.discard(job)
        self.following.pop(job, None)

    def producer_done(self, producer: str) -> list[str]:
        """The jobs that followed `producer` now take a slot (or fail at once)."""
        promoted = [job for job, p in self.following.items() if p == producer]
        for job in promoted:
            del self.following[job]
            self.running.add(job)
        return promoted

    @property
    def free(self) -> int:
        return self.slots - len(self.running) if self.ready else 0

    def view(self) -> dict[str, Any]:
        return {
            "node": self.node, "role": self.role, "endpoint": self.endpoint, "slots": self.slots,
            "busy": len(self.running), "ready": self.ready, "last_seen": self.last_seen,
            "events": self.applied,
        }


class StorageRef(NodeRef):
    __slots__ = ("objects", "free_bytes", "placed", "full_until")

    def __init__(self, node: str, endpoint: str) -> None:
        super().__init__(node, Role.STORAGE, endpoint)
        self.objects = 0
        self.free_bytes = 0
        self.placed = 0  # outputs placed here since start: the load half of placement
        self.full_until = 0.0  # said "no space": place nothing here until then (monotonic)

    def view(self) -> dict[str, Any]:
        return {
            "node": self.node, "role": self.role, "endpoint": self.endpoint, "objects": self.objects,
            "free": self.free_bytes, "ready": self.ready, "last_seen": self.last_seen,
            "events": self.applied,
        }


def pick_storage(storages: list[StorageRef]) -> StorageRef | None:
    """Least loaded first; among equals, the most free space."""
    ready = [s for s in storages if s.ready]
    if not ready:
        return None
    return min(ready, key=lambda s: (s.placed, -s.free_bytes))
