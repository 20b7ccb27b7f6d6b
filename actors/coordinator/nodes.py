"""What the coordinator knows of the compute and storage nodes it has met."""

from __future__ import annotations

import sys
import time
from typing import Any

from weft.actors.resources import CHUNK
from weft.protocol.enums import Role

# What a job takes of a node while it runs: (CPUs, memory chunks).
Cost = tuple[int, int]
TINY: Cost = (1, 1)
UNSAID = 1 << 30  # the chunks of a node that did not say its memory: plenty (32 PiB)


class Running(set):
    """The jobs holding room on a compute node, with the CPUs and memory
    chunks they hold summed as they come and go (the planner reads the sums
    per job placed: no walk over a node's jobs)."""

    __slots__ = ("ref",)

    def __init__(self, ref: ComputeRef) -> None:
        super().__init__()
        self.ref = ref

    def add(self, job: str) -> None:
        if job not in self:
            super().add(job)
            c, m = self.ref.cost.get(job, TINY)
            self.ref.used_cpus += c
            self.ref.used_chunks += m

    def discard(self, job: str) -> None:
        if job in self:
            super().discard(job)
            c, m = self.ref.cost.get(job, TINY)
            self.ref.used_cpus -= c
            self.ref.used_chunks -= m

    def clear(self) -> None:
        super().clear()
        self.ref.used_cpus = self.ref.used_chunks = 0


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
    __slots__ = ("slots", "running", "assigned", "following", "importable", "chunks", "host", "isolation", "_drained",
                 "cost", "used_cpus", "used_chunks", "overcommits", "_ready", "run_avg")
    # Bumped whenever a compute node becomes ready or not, is drained or
    # undrained, or says what it offers: the planner looks at the nodes again
    # only then (placing.py), not every round.
    generation = 0

    def __init__(self, node: str, endpoint: str) -> None:
        self._ready = False
        self._drained = False
        super().__init__(node, Role.COMPUTE, endpoint)
        self.slots = 0  # the CPUs it offers
        self.chunks = UNSAID  # the memory it offers, in chunks (resources.CHUNK)
        self.host: str | None = None
        self.isolation: dict[str, Any] | None = None  # as the node said (compute/isolation.py)
        self.drained = False  # no new work (weft node drain)
        self.cost: dict[str, Cost] = {}  # what each job assigned here takes while it runs
        self.used_cpus = 0
        self.used_chunks = 0
        self.overcommits = 0  # workorders placed here past its room
        # Jobs holding room on it (started, not yet storing) ...
        self.running: set[str] = Running(self)
        # ... and every job it has not finished yet (storing included).
        self.assigned: set[str] = set()
        # Jobs started ahead of their input, waiting on the node for the task
        # that makes it (job -> that producer's job): assigned, holding no slot.
        self.following: dict[str, str] = {}
        # Modules its callable workers can import (its inventory's, then probed at submit; see imports.py).
        self.importable: set[str] = set()
        # Seconds its tasks ran, a moving average (0: none seen): how many it
        # is sent ahead (planner.ahead_per_slot).
        self.run_avg = 0.0

    @property
    def ready(self) -> bool:
        return self._ready

    @ready.setter
    def ready(self, value: bool) -> None:
        if value != self._ready:
            self._ready = value
            ComputeRef.generation += 1

    @property
    def drained(self) -> bool:
        return self._drained

    @drained.setter
    def drained(self, value: bool) -> None:
        if value != self._drained:
            self._drained = value
            ComputeRef.generation += 1

    def assign(self, job: str, cost: Cost = TINY) -> None:
        if cost != TINY:
            self.cost[job] = cost
        self.running.add(job)
        self.assigned.add(job)

    def follow(self, job: str, producer: str, cost: Cost = TINY) -> None:
        if cost != TINY:
            self.cost[job] = cost
        self.assigned.add(job)
        self.following[job] = producer

    def unassign(self, job: str) -> None:
        self.running.discard(job)
        self.assigned.discard(job)
        self.following.pop(job, None)
        self.cost.pop(job, None)

    def fits(self, cost: Cost) -> bool:
        """Room for `cost` now."""
        c, m = cost
        return self.used_cpus + c <= self.slots and self.used_chunks + m <= self.chunks

    def could_fit(self, cost: Cost) -> bool:
        """Room for `cost` once idle."""
        return cost[0] <= self.slots and cost[1] <= self.chunks

    def producer_done(self, producer: str) -> list[str]:
        """The jobs that followed `producer` now take a slot (or fail at once)."""
        promoted = [job for job, p in self.following.items() if p == producer]
        for job in promoted:
            del self.following[job]
            self.running.add(job)
        return promoted

    @property
    def free(self) -> int:
        return self.slots - self.used_cpus if self.ready else 0

    def view(self) -> dict[str, Any]:
        return {
            "node": self.node, "role": self.role, "endpoint": self.endpoint, "slots": self.slots,
            "busy": len(self.running), "ready": self.ready, "last_seen": self.last_seen,
            "events": self.applied, "host": self.host, "drained": self.drained,
            "cpus": self.slots, "cpus_used": self.used_cpus, "cpus_free": max(0, self.slots - self.used_cpus),
            "memory": None if self.chunks == UNSAID else self.chunks * CHUNK,
            "memory_used": self.used_chunks * CHUNK,
            "memory_free": None if self.chunks == UNSAID else max(0, self.chunks - self.used_chunks) * CHUNK,
            "overcommits": self.overcommits, "isolation": self.isolation,
        }


class StorageRef(NodeRef):
    __slots__ = ("objects", "free_bytes", "used_bytes", "placed", "full_until", "drained")

    def __init__(self, node: str, endpoint: str) -> None:
        super().__init__(node, Role.STORAGE, endpoint)
        self.drained = False  # nothing new placed here; its objects copied to others
        self.objects = 0
        self.free_bytes = 0  # its disk's free space, and its objects' bytes (its `usage`)
        self.used_bytes = 0
        self.placed = 0  # outputs placed here since start: the load half of placement
        self.full_until = 0.0  # said "no space": place nothing here until then (monotonic)

    def view(self) -> dict[str, Any]:
        return {
            "node": self.node, "role": self.role, "endpoint": self.endpoint, "objects": self.objects,
            "free": self.free_bytes, "bytes": self.used_bytes, "ready": self.ready, "last_seen": self.last_seen,
            "events": self.applied, "drained": self.drained,
        }


def set_resources(ref: ComputeRef, inv: Any) -> None:
    """What a compute node offers, from its inventory (a node that says no
    memory is taken to have plenty: it predates memory accounting)."""
    ref.chunks = max(1, inv.memory // CHUNK) if inv.memory else UNSAID
    ref.host = inv.host
    ref.isolation = inv.isolation
    # What its workers import, known without a probe (compute/importable.py);
    # interned: every node of a cluster names mostly the same modules.
    ref.importable.update(map(sys.intern, inv.importable))
    ComputeRef.generation += 1


def pick_storage(storages: list[StorageRef]) -> StorageRef | None:
    """Least loaded first; among equals, the most free space."""
    ready = [s for s in storages if s.ready and not s.drained]
    if not ready:
        return None
    return min(ready, key=lambda s: (s.placed, -s.free_bytes))
