"""What a compute node offers (CPUs, memory, its host name) and the FIFO
that hands them to tasks.

A task waits until its CPUs and memory chunks are free, in arrival order
(the head of the line is never overtaken, so a big task is not starved by
small ones behind it). A workorder takes its share at once, even past what
the node has: the coordinator decided to overcommit, and the node counts it.
"""

from __future__ import annotations

import os
import socket
from collections import deque
from collections.abc import Callable
from typing import Any

import trio

from weft.actors.resources import CHUNK, chunks


def default_cpus() -> int:
    """The cores this process may run on, or its cgroup's CPU quota if lower."""
    try:
        cores = len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    quota = cgroup_cpus()
    return max(1, min(cores, quota)) if quota else cores


def cgroup_cpus() -> int | None:
    """CPUs this process's cgroup allows (v2 `cpu.max`, v1 CFS quota), rounded
    up; None if unlimited or unknown."""
    for path, controller in _cgroup_paths():
        if controller == "":
            quota, _, period = (_read(f"/sys/fs/cgroup{path}/cpu.max") or "").partition(" ")
        elif "cpu" in controller.split(","):
            quota = _read(f"/sys/fs/cgroup/cpu{path}/cpu.cfs_quota_us") or ""
            period = _read(f"/sys/fs/cgroup/cpu{path}/cpu.cfs_period_us") or ""
        else:
            continue
        if quota.isdigit() and period.isdigit() and int(period) > 0:  # ("max" or -1: no quota)
            return -(-int(quota) // int(period))
    return None


def _cgroup_paths() -> list[tuple[str, str]]:
    """(path, controllers) of each line of /proc/self/cgroup."""
    try:
        with open("/proc/self/cgroup") as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) == 3:
            out.append((parts[2], parts[1]))
    return out


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def _read_int(path: str) -> int | None:
    text = _read(path)
    return int(text) if text is not None and text.isdigit() else None


def cgroup_limit() -> int | None:
    """This process's cgroup memory limit (v2 `memory.max` or v1
    `memory.limit_in_bytes`), None if there is none."""
    for path, controllers in _cgroup_paths():
        if controllers == "":
            limit = _read_int(f"/sys/fs/cgroup{path}/memory.max")
        elif "memory" in controllers.split(","):
            limit = _read_int(f"/sys/fs/cgroup/memory{path}/memory.limit_in_bytes")
        else:
            continue
        if limit is not None and limit < 1 << 60:  # v1 says "no limit" with a huge number
            return limit
    return None


def default_memory() -> int:
    """The machine's memory, or this process's cgroup limit when lower."""
    total = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    total = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError):
        pass
    limit = cgroup_limit()
    found = [v for v in (total, limit) if v]
    return min(found) if found else 4 << 30


def default_host() -> str:
    return socket.gethostname() or "localhost"


class Withdrawn(Exception):
    """The task was given back while it waited for room (see `withdraw`)."""


class Resources:
    """CPUs and memory chunks of one node, taken by tasks in FIFO order."""

    def __init__(self, cpus: int, memory: int) -> None:
        self.cpus = cpus
        self.memory = memory
        self.chunks = max(1, memory // CHUNK)
        self.used_cpus = 0
        self.used_chunks = 0
        self.overcommits = 0  # workorders started past what was free
        self._held: dict[Any, tuple[int, int]] = {}
        self._line: deque[tuple[Any, int, int, trio.Event]] = deque()
        self._withdrawn: set[Any] = set()

    def _fits(self, cpus: int, n: int) -> bool:
        # A task larger than the whole node still runs, alone: the
        # coordinator only sends it here when nothing fits better.
        free_c, free_m = self.cpus - self.used_cpus, self.chunks - self.used_chunks
        return (cpus <= free_c or self.used_cpus == 0) and (n <= free_m or self.used_chunks == 0)

    def _take(self, owner: Any, cpus: int, n: int) -> None:
        self.used_cpus += cpus
        self.used_chunks += n
        self._held[owner] = (cpus, n)

    async def acquire(self, owner: Any, cpus: int, memory: int | None, *, force: bool = False,
                      first: bool = False) -> None:
        """Wait for room in arrival order; `first`: at the head of the line
        (a follower whose input is ready, ahead.py)."""
        n = chunks(memory)
        if force or ((first or not self._line) and self._fits(cpus, n)):
            if force and not self._fits(cpus, n):
                self.overcommits += 1
            self._take(owner, cpus, n)
            try:
                # Not a full checkpoint: room that is free is taken in the
                # same wake-up (a chain's follower goes on to its call at
                # once); what the caller does next yields.
                await trio.lowlevel.checkpoint_if_cancelled()
            except BaseException:
                # Cancelled at the checkpoint: the caller never learns it held
                # room, so it would never give it back (seen: a cancelled task
                # keeping a CPU for good, every task behind it waiting).
                self.release(owner)
                raise
            return
        event = trio.Event()
        item = (owner, cpus, n, event)
        if first:
            self._line.appendleft(item)
        else:
            self._line.append(item)
        try:
            await event.wait()
        except BaseException:
            try:
                self._line.remove(item)
            except ValueError:
                self.release(owner)  # granted as we were cancelled: give it back
            self._withdrawn.discard(owner)
            raise
        if owner in self._withdrawn:
            self._withdrawn.discard(owner)
            raise Withdrawn

    def waiting(self) -> list[Any]:
        """The owners waiting for room, in line order."""
        return [item[0] for item in self._line]

    def withdraw(self, count: int, movable: Callable[[Any], bool]) -> list[Any]:
        """Take up to `count` waiting owners out of the line, newest first
        (those that `movable` allows); their `acquire` raises Withdrawn. A
        task already holding room is never touched: nothing starts twice."""
        out: list[Any] = []
        for item in reversed(list(self._line)):
            if len(out) >= count:
                break
            if movable(item[0]):
                self._line.remove(item)
                self._withdrawn.add(item[0])
                item[3].set()
                out.append(item[0])
        return out

    def backlogged(self) -> bool:
        """More tasks wait for room than the node has CPUs: ends are coming,
        and a round of work is still queued once they are reported (a poll
        answer may gather them, bus/events.py; the node does not run dry)."""
        return len(self._line) > self.cpus

    def release(self, owner: Any) -> None:
        held = self._held.pop(owner, None)
        if held is None:
            return
        self.used_cpus -= held[0]
        self.used_chunks -= held[1]
        while self._line:
            owner2, cpus, n, event = self._line[0]
            if not self._fits(cpus, n):
                break
            self._line.popleft()
            self._take(owner2, cpus, n)
            event.set()

    def view(self) -> dict[str, Any]:
        return {"cpus": self.cpus, "memory": self.memory, "used_cpus": self.used_cpus,
                "used_memory": self.used_chunks * CHUNK, "waiting": len(self._line),
                "overcommits": self.overcommits}
