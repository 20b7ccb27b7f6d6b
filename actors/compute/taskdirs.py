"""Task directories, made ahead of need and recycled.

A command task needs `inputs/ outputs/ results/ work/` under its own
directory. On the machines we measured, directory metadata is the cost of a
small command: a mkdir takes ~0.27 ms, creating a file ~0.09 ms, an rmdir
~0.07 ms, while a rename takes ~0.02 ms and truncating a file ~0.007 ms. So
a task takes a ready skeleton from `tasks/.spare/` with one rename, and when
its results are deleted its directory is renamed back there, emptied in a
worker thread (its log files truncated, not unlinked) and used again. New
skeletons are made, in the worker thread, only when recycling cannot keep up.
"""

from __future__ import annotations

import itertools
import logging
import os
import secrets
import shutil
import signal
from pathlib import Path

import trio

from .procs import group_members

log = logging.getLogger("weft.compute")

SUBDIRS = ("inputs", "outputs", "results", "work")
# Files every command task has: emptied in place when the directory is reused.
KEPT_FILES = ("results/output.txt", "results/stdout")
MAX_SPARES = 1024


def make_skeleton(path: Path) -> None:
    os.mkdir(path)
    for sub in SUBDIRS:
        os.mkdir(path / sub)


def empty_skeleton(path: Path) -> bool:
    """Bring a used task directory back to an empty skeleton; False if it cannot be."""
    try:
        # A command's captured stdout was moved to outputs/stdout: move it
        # back, so the next task opens a file that exists instead of creating
        # one (ext4 inode allocation showed in profiles of `true` commands).
        captured, moved = path / "results" / "stdout", path / "outputs" / "stdout"
        if not captured.exists() and moved.is_file() and not moved.is_symlink():
            os.rename(moved, captured)
        for entry in os.scandir(path):
            if entry.name in SUBDIRS and entry.is_dir(follow_symlinks=False):
                continue
            _remove(entry)
        for sub in SUBDIRS:
            sub_path = path / sub
            if not sub_path.is_dir():
                os.mkdir(sub_path)
                continue
            for entry in os.scandir(sub_path):
                if f"{sub}/{entry.name}" in KEPT_FILES and entry.is_file(follow_symlinks=False):
                    os.truncate(entry.path, 0)
                else:
                    _remove(entry)
        return True
    except OSError as e:
        # e.g. a command left a directory it made unreadable: not worth fixing up.
        log.debug("cannot reuse task directory %s: %s", path, e)
        return False


def _remove(entry: os.DirEntry) -> None:
    if entry.is_dir(follow_symlinks=False):
        shutil.rmtree(entry.path)
    else:
        os.unlink(entry.path)


class TaskDirs:
    def __init__(self, tasks_dir: Path, *, keep: int = 16) -> None:
        self.tasks_dir = tasks_dir
        self.spare_dir = tasks_dir / ".spare"
        self.keep = keep
        self._spares: list[Path] = []
        self._used: list[Path] = []
        self._names = itertools.count()
        self._prefix = secrets.token_hex(3)
        self._low = trio.Event()

    def prepare(self) -> None:
        """Clear spares a previous run left behind (they may be half made)."""
        shutil.rmtree(self.spare_dir, ignore_errors=True)
        self.spare_dir.mkdir(parents=True, exist_ok=True)

    def _spare_name(self) -> Path:
        return self.spare_dir / f"{self._prefix}-{next(self._names)}"

    def take(self, job: str) -> Path:
        """The task's directory, with its four subdirectories (made now if no spare is left)."""
        dest = self.tasks_dir / job
        while self._spares:
            spare = self._spares.pop()
            try:
                os.rename(spare, dest)
                break
            except OSError:
                continue  # dest exists already (a rerun of the job): fall through
        else:
            for sub in SUBDIRS:
                (dest / sub).mkdir(parents=True, exist_ok=True)
        if len(self._spares) < self.keep // 2:
            self._low.set()
        return dest

    def recycle(self, job: str) -> None:
        """The task's results are deleted: its directory goes back to the spares."""
        path = self.tasks_dir / job
        used = self._spare_name()
        try:
            os.rename(path, used)
        except FileNotFoundError:
            return  # a callable task, or never made
        except OSError as e:
            log.warning("cannot move task directory %s aside: %s", path, e)
            return
        self._used.append(used)
        self._low.set()

    def _refill(self, used: list[Path], need: int) -> list[Path]:
        """Worker thread: empty the used directories, make new ones if still short."""
        ready = []
        for p in used:
            # Results are deleted in batches, well after the next tasks took
            # their directories: keep them all (up to a bound) for what follows.
            if len(self._spares) + len(ready) < MAX_SPARES and empty_skeleton(p):
                ready.append(p)
            else:
                shutil.rmtree(p, ignore_errors=True)
        for _ in range(need - len(ready)):
            p = self._spare_name()
            try:
                make_skeleton(p)
            except OSError as e:
                log.warning("cannot make spare task directories: %s", e)
                break
            ready.append(p)
        return ready

    async def run(self) -> None:
        """Keep `keep` spares ready, refilling in a worker thread."""
        while True:
            need = self.keep - len(self._spares)
            if need > 0 or self._used:
                used, self._used = self._used, []
                made = await trio.to_thread.run_sync(self._refill, used, max(need, 0))
                self._spares += made
                if not made and need > 0:
                    await trio.sleep(1.0)  # the disk refuses (full?): commands make their own
            self._low = trio.Event()
            if len(self._spares) >= self.keep and not self._used:
                await self._low.wait()


def kill_leftover_groups(tasks_dir: Path, pgids: set[int]) -> int:
    """SIGKILL every process of the task groups `pgids` (or recorded under `tasks_dir`).

    A node killed with SIGKILL cannot stop its tasks' process groups (they run
    in their own sessions); the restarted node does, checking each process's
    environment names this node's task directory so a recycled pid is spared.
    """
    pgids = set(pgids)
    for f in tasks_dir.glob("*/pgid"):
        try:
            pgids.add(int(f.read_text().strip()))
        except (OSError, ValueError):
            pass
        f.unlink(missing_ok=True)
    if not pgids:
        return 0
    marker = f"WEFT_OUTPUTS={tasks_dir}/".encode()
    killed = 0
    for pid, _state in list(group_members(pgids)):
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if marker not in f.read():
                    continue
            os.kill(pid, signal.SIGKILL)
            killed += 1
        except OSError:
            continue
    return killed
