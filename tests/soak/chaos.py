"""The soak's faults, in turn, while the DAG runs; and the loop that watches it.

Six faults strike one after the other, each when a share of the DAG is done
(1/8, 2/8, ... 6/8) and the one before has ended and recovered (or 10 s
after it ended), so every fault lands mid-run on a busy cluster and its
effects can be told apart:

* `compute kill`: kill -9 of compute-0, restarted 3 s later;
* `storage kill`: kill -9 of storage-0, restarted 3 s later;
* `coordinator kill`: kill -9, restarted 3 s later;
* `compute pause`: SIGSTOP of compute-1 for 8 s;
* `storage pause`: SIGSTOP of storage-1 for 8 s;
* `disk full`: storage-2's data directory is a small tmpfs; a ballast file
  fills it (ENOSPC) for 8 s, then is removed, as an operator freeing space would.

A restart uses the daemon's command line, on the endpoint it had (as a
daemon started by hand on a fixed port comes back).
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from faults.conftest import kill

from weft.actors.client import Client
from weft.localcluster.cluster import LocalCluster, Proc

DOWN = 3.0  # a killed daemon is restarted after this long
PAUSE = 8.0  # SIGSTOP lasts this long
DISK_FULL = 8.0  # the tmpfs stays full this long
TMPFS_MIB_PER_1000_JOBS = 64  # the outputs of 1000 jobs take ~25 MiB per storage node
READY_TIMEOUT = 30.0
MIN_GAP = 2.0  # seconds between the end of one fault and the next strike
MAX_WAIT = 10.0  # after a fault ended, the next strikes even if its jobs have not recovered
TERMINAL = ("succeeded", "failed", "cancelled")
# The coordinator's under-replicated count is followed this long after a storage kill.
REPAIR_TRACK = 60.0


@dataclass
class Fault:
    name: str
    victim: str  # node id, or "coordinator"
    node: str | None = None  # for compute faults: only jobs on this node were in flight
    strike: float | None = None  # Unix seconds
    end: float | None = None
    in_flight: set[str] = field(default_factory=set)
    recovered: float | None = None
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    # A storage kill: the coordinator's under-replicated count (`stats`), its
    # peak and when it was 0 again after the node was back (Unix seconds).
    under_peak: int | None = None
    repaired: float | None = None


class Chaos:
    def __init__(self, cluster: LocalCluster, tmpfs: Path | None, skip_disk: str | None) -> None:
        self.cluster = cluster
        self.tmpfs = tmpfs
        c = cluster
        self.faults = [
            Fault("compute kill", c.computes[0].node_id, node=c.computes[0].node_id),
            Fault("storage kill", c.storages[0].node_id),
            Fault("coordinator kill", "coordinator"),
            Fault("compute pause", c.computes[1].node_id, node=c.computes[1].node_id),
            Fault("storage pause", c.storages[1].node_id),
        ]
        if tmpfs is not None:
            self.faults.append(Fault("disk full", c.storages[2].node_id))
        self.skipped = skip_disk

    def inject(self, f: Fault) -> None:
        """Run one fault to its end (in a thread: the watcher keeps polling)."""
        c = self.cluster
        try:
            if f.name == "compute kill":
                self._kill_restart(c.computes, 0, f)
            elif f.name == "storage kill":
                self._kill_restart(c.storages, 0, f)
            elif f.name == "coordinator kill":
                kill(c.coordinator)
                time.sleep(DOWN)
                c.start_coordinator(timeout=READY_TIMEOUT)
            elif f.name == "compute pause":
                self._pause(c.computes[1])
            elif f.name == "storage pause":
                self._pause(c.storages[1])
            elif f.name == "disk full":
                self._fill(f)
            else:
                raise ValueError(f.name)
        except BaseException as e:  # reported by the run; the soak goes on
            f.error = f"{type(e).__name__}: {e}"
        finally:
            f.end = time.time()

    def _kill_restart(self, procs: list[Proc], i: int, f: Fault) -> None:
        old = procs[i]
        kill(old)
        time.sleep(DOWN)
        procs[i] = self._restart(old)

    def _restart(self, old: Proc) -> Proc:
        # The node's own arguments end with the coordinator endpoint; a
        # --listen appended is the last word (tests/faults/test_kills.py).
        args = old.args if "--listen" in old.args else [*old.args, "--listen", old.endpoint]
        p = Proc(old.role, args, old.log_path, self.cluster.env)
        p.wait_ready(READY_TIMEOUT)
        return p

    def _pause(self, p: Proc) -> None:
        p.signal(signal.SIGSTOP)
        try:
            time.sleep(PAUSE)
        finally:
            p.signal(signal.SIGCONT)

    def _fill(self, f: Fault) -> None:
        ballast = self.tmpfs / "soak-ballast"
        chunk = b"\0" * (1 << 20)
        fd = os.open(ballast, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        filled = 0
        try:
            for _ in range(1 << 16):  # bounded: the tmpfs is far smaller than 64 GiB
                try:
                    filled += os.write(fd, chunk)
                except OSError as e:
                    if e.errno != errno.ENOSPC:
                        raise
                    break
        finally:
            os.close(fd)
        f.notes.append(f"{filled >> 20} MiB of ballast filled the tmpfs")
        try:
            time.sleep(DISK_FULL)
        finally:
            ballast.unlink()
        p = self.cluster.storages[2]
        if not p.alive():
            f.notes.append(f"{p.node_id} exited with code {p.popen.poll()} on the full disk; restarted")
            self.cluster.storages[2] = self._restart(p)


def mount_tmpfs(path: Path, mib: int) -> str | None:
    """Mount a tmpfs of `mib` MiB on `path`; None, or why it cannot be done."""
    path.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={mib}m", "tmpfs", str(path)],
                       capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        return f"mount -t tmpfs is not permitted here: {(r.stderr or r.stdout).strip()[:200]}"
    return None


def unmount(path: Path) -> None:
    r = subprocess.run(["umount", str(path)], capture_output=True, text=True, timeout=30)
    if r.returncode != 0:  # something still holds it open: detach it at least
        subprocess.run(["umount", "-l", str(path)], capture_output=True, text=True, timeout=30)


@dataclass
class Watch:
    """What the watcher saw: Unix times, by job id."""

    t_submit: float = 0.0
    t_done: float | None = None  # every job terminal
    first_done: dict[str, float] = field(default_factory=dict)
    seen_running: dict[str, list[float]] = field(default_factory=dict)
    polls: int = 0
    final: list[dict[str, Any]] = field(default_factory=list)


def watch(client: Client, chaos: Chaos, ids: list[str], deadline: float) -> Watch:
    """Submit is done by the caller; poll until every job is terminal or the
    deadline, striking the faults in turn."""
    w = Watch(t_submit=time.time())
    n = len(ids)
    pending = set(ids)
    faults = chaos.faults
    k, thread = 0, None
    while pending and time.time() < deadline:
        sts = client.status(sorted(pending))
        now = time.time()
        w.polls += 1
        running: dict[str, str | None] = {}
        for s in sts:
            job, state = s["job"], s["state"]
            if state == "running":
                running[job] = s.get("node")
                w.seen_running.setdefault(job, []).append(now)
            elif state in TERMINAL:
                pending.discard(job)
                if state == "succeeded":
                    w.first_done.setdefault(job, now)
        for f in faults[:k]:
            if f.recovered is None and f.in_flight and f.in_flight <= w.first_done.keys():
                f.recovered = now
        for f in faults[:k]:
            if f.name == "storage kill" and f.repaired is None and now - (f.strike or now) < REPAIR_TRACK:
                # How long until every object is at its count again (`stats`).
                under = int(client.stats().get("under_replicated", 0))
                f.under_peak = max(f.under_peak or 0, under)
                if under == 0 and f.end is not None:
                    f.repaired = time.time()
        if k < len(faults) and (thread is None or not thread.is_alive()) and pending:
            prev = faults[k - 1] if k else None
            ready = prev is None or (
                prev.end is not None and now >= prev.end + MIN_GAP
                and (prev.recovered is not None or not prev.in_flight or now >= prev.end + MAX_WAIT))
            if ready and (n - len(pending)) / n >= (k + 1) / (len(faults) + 2):
                f = faults[k]
                f.in_flight = {j for j, node in running.items() if f.node is None or node == f.node}
                f.strike = time.time()
                thread = threading.Thread(target=chaos.inject, args=(f,), name=f"soak {f.name}", daemon=True)
                thread.start()
                k += 1
        # Fewer pending jobs, cheaper polls: 0.25 s, slower while thousands are pending.
        time.sleep(0.25 * max(1.0, len(pending) / 2000))
    if not pending:
        w.t_done = time.time()
    if thread is not None:
        thread.join(READY_TIMEOUT + PAUSE + 30)
    w.final = client.status(ids)
    return w
