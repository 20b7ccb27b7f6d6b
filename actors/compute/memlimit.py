"""Enforcing a job's `--memory` on the compute node.

Two ways, chosen once per node:

* `cgroup`: cgroup v2 with the memory controller delegated to us. Each
  limited command goes into its own cgroup under ours with `memory.max`
  set to its request; the kernel's OOM killer stops it there, and
  `memory.events` says so (`oom_kill`).
* `watch` (the fallback: cgroup v1 or hybrid hosts, no delegation, not
  root): the resident memory of the command's process group is summed from
  /proc every WATCH_EVERY seconds, one scan for all limited commands, and a
  group over its limit is killed with SIGKILL. Short peaks between two
  looks are missed; it never counts virtual memory (RLIMIT_AS would break
  compilers and runtimes that reserve big address ranges).

Either way a command stopped for its limit ends with the code
`memory-limit`. Commands without `--memory` are not limited (callables in
the shared worker pool are not either: they share processes).
"""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path

import trio

from .procs import group_stats

log = logging.getLogger("weft.compute")

WATCH_EVERY = 0.2
CGROUP_ROOT = Path("/sys/fs/cgroup")
MEMORY_LIMIT = "memory-limit"
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _own_cgroup2() -> Path | None:
    """Our cgroup v2 directory if its memory controller can be used below it."""
    try:
        with open("/proc/self/cgroup") as f:
            lines = f.read().splitlines()
        if not (CGROUP_ROOT / "cgroup.controllers").exists():
            return None  # v1 or hybrid: /sys/fs/cgroup is not the v2 tree
    except OSError:
        return None
    for line in lines:
        if line.startswith("0::"):
            here = CGROUP_ROOT / line[3:].lstrip("/")
            try:
                if "memory" in (here / "cgroup.controllers").read_text().split() and os.access(here, os.W_OK):
                    return here
            except OSError:
                return None
    return None


class MemoryGuard:
    def __init__(self, node_id: str) -> None:
        self.node_id = node_id
        self.root: Path | None = None
        base = _own_cgroup2()
        if base is not None:
            try:
                # A process may not sit in a cgroup whose children have
                # controllers, so the jobs get a sibling tree of their own.
                # (The root cgroup is exempt: in it, ours goes below.)
                root = (base if base == CGROUP_ROOT else base.parent) / f"weft-{node_id.replace('/', '_')}"
                root.mkdir(exist_ok=True)
                (root / "cgroup.subtree_control").write_text("+memory")
                self.root = root
            except OSError as e:
                log.info("memory limits: no cgroup of our own (%s); watching resident memory instead", e)
        self.mode = "cgroup" if self.root is not None else "watch"
        self.watched: dict[int, tuple[int, object]] = {}  # pgid -> (limit, owner)
        self.killed: set[object] = set()  # owners stopped for their limit
        self.cgroups: dict[object, Path] = {}
        self._wake = trio.Event()

    def limit(self, owner: object, pgid: int, limit: int) -> None:
        """Hold the command `owner` started (process group `pgid`) to `limit` bytes."""
        if self.root is not None:
            cg = self.root / f"{pgid}"
            try:
                cg.mkdir(exist_ok=True)
                (cg / "memory.max").write_text(str(limit))
                if (cg / "memory.swap.max").exists():
                    (cg / "memory.swap.max").write_text("0")  # else the limit only moves it to swap
                (cg / "cgroup.procs").write_text(str(pgid))
                self.cgroups[owner] = cg
                return
            except OSError as e:
                log.warning("memory limit of %s: cgroup failed (%s); watching it instead", owner, e)
        self.watched[pgid] = (limit, owner)
        self._wake.set()

    def exceeded(self, owner: object) -> bool:
        """Was `owner`'s command stopped for its limit? Forgets it either way."""
        cg = self.cgroups.pop(owner, None)
        if cg is not None:
            killed = False
            try:
                for line in (cg / "memory.events").read_text().splitlines():
                    k, _, v = line.partition(" ")
                    if k == "oom_kill" and v.strip() != "0":
                        killed = True
                cg.rmdir()
            except OSError:
                pass
            return killed
        for pgid, (_, o) in list(self.watched.items()):
            if o is owner:
                del self.watched[pgid]
        if owner in self.killed:
            self.killed.discard(owner)
            return True
        return False

    async def run(self) -> None:
        """The watcher: sleeps while nothing is limited."""
        while True:
            if not self.watched:
                self._wake = trio.Event()
                await self._wake.wait()
            await trio.sleep(WATCH_EVERY)
            if self.watched:
                # Reading /proc off the loop; deciding back on it.
                self._judge(await trio.to_thread.run_sync(_resident, set(self.watched)))

    def _judge(self, rss: dict[int, int]) -> None:
        for pgid, used in rss.items():
            entry = self.watched.get(pgid)
            if entry is not None and used > entry[0]:
                limit, owner = entry
                log.info("%s uses %d bytes, over its memory limit of %d: killing it", owner, used, limit)
                self.killed.add(owner)
                del self.watched[pgid]
                try:
                    os.killpg(pgid, signal.SIGKILL)
                except OSError:
                    pass


def _resident(pgids: set[int]) -> dict[int, int]:
    """Resident bytes per process group (of those in `pgids`), from /proc."""
    rss: dict[int, int] = {}
    for _, pgid, fields in group_stats(pgids):
        if fields[0] not in (b"Z", b"X") and len(fields) > 21:
            rss[pgid] = rss.get(pgid, 0) + int(fields[21]) * _PAGE
    return rss
