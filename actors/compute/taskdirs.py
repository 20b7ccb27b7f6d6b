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
import stat
from pathlib import Path

import trio

from .procs import group_members

log = logging.getLogger("weft.compute")

SUBDIRS = ("inputs", "outputs", "results", "work")
# Files every command task has: emptied in place when the directory is reused.
KEPT_FILES = ("results/output.txt", "results/stdout")
MAX_SPARES = 1024


def make_skeleton(path: str | Path) -> None:
    p = os.fspath(path)
    os.mkdir(p)
    for sub in SUBDIRS:
        os.mkdir(f"{p}/{sub}")


def empty_skeleton(path: str | Path) -> bool:
    """Bring a used task directory back to an empty skeleton; False if it cannot be."""
    p = str(path)
    try:
        # A command's captured stdout was moved to outputs/stdout: move it
        # back, so the next task opens a file that exists instead of creating
        # one (ext4 inode allocation showed in profiles of `true` commands).
        captured, moved = p + "/results/stdout", p + "/outputs/stdout"
        try:
            regular = stat.S_ISREG(os.lstat(moved).st_mode)
        except FileNotFoundError:
            regular = False
        if regular and not os.path.exists(captured):
            os.rename(moved, captured)
        # Strings and d_type, no stat per entry: this runs once per command.
        present = set()
        with os.scandir(p) as it:
            for entry in it:
                if entry.name in SUBDIRS and entry.is_dir(follow_symlinks=False):
                    present.add(entry.name)
                else:
                    _remove(entry)
        for sub in SUBDIRS:
            sub_path = p + "/" + sub
            if sub not in present:
                os.mkdir(sub_path)
                continue
            with os.scandir(sub_path) as it:
                for entry in it:
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
        self._tasks, self._spare = str(tasks_dir), str(self.spare_dir)
        self.keep = keep
        self._spares: list[str] = []
        self._used: list[str] = []
        self._names = itertools.count()
        self._prefix = secrets.token_hex(3)
        self._low = trio.Event()

    def prepare(self) -> None:
        """Clear spares a previous run left behind (they may be half made)."""
        shutil.rmtree(self.spare_dir, ignore_errors=True)
        self.spare_dir.mkdir(parents=True, exist_ok=True)

    def _spare_name(self) -> str:
        # Strings, not Path joins: take and recycle run once per command.
        return f"{self._spare}/{self._prefix}-{next(self._names)}"

    def take(self, job: str) -> Path:
        """The task's directory, with its four subdirectories (made now if no spare is left)."""
        dest = f"{self._tasks}/{job}"
        while self._spares:
            spare = self._spares.pop()
            try:
                os.rename(spare, dest)
                break
            except OSError:
                continue  # dest exists already (a rerun of the job): fall through
        else:
            for sub in SUBDIRS:
                os.makedirs(f"{dest}/{sub}", exist_ok=True)
        if len(self._spares) < self.keep // 2:
            self._low.set()
        return Path(dest)

    def recycle(self, job: str) -> None:
        """The task's directory is not needed any more (its results are
        deleted, or it left nothing to read): it goes back to the spares."""
        path = f"{self._tasks}/{job}"
        used = self._spare_name()
        try:
            os.rename(path, used)
        except FileNotFoundError:
            return  # a callable task, never made, or recycled when it ended
        except OSError as e:
            log.warning("cannot move task directory %s aside: %s", path, e)
            return
        self._used.append(used)
        # Emptied in batches: a worker thread's wake-up per command cost more
        # than the emptying (tasks that end with nothing to read come back
        # one at a time, as they end).
        if len(self._used) >= max(1, self.keep // 2):
            self._low.set()

    def _refill(self, used: list[str], need: int) -> list[str]:
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
        """Keep `keep` spares ready, refilling in a worker thread when they run
        low or enough used ones wait to be emptied."""
        self._low.set()
        while True:
            await self._low.wait()
            self._low = trio.Event()
            # Used ones come back as spares: _refill makes new ones only beyond them.
            used, self._used = self._used, []
            need = max(self.keep - len(self._spares), 0)
            if not used and not need:
                continue
            made = await trio.to_thread.run_sync(self._refill, used, need)
            self._spares += made
            if not made and need > 0:
                await trio.sleep(1.0)  # the disk refuses (full?): commands make their own
            if len(self._spares) < self.keep // 2 or len(self._used) >= max(1, self.keep // 2):
                self._low.set()


def _pgid_files(tasks_dir: Path) -> list[Path]:
    """What `tasks_dir.glob("*/pgid")` finds, without compiling its pattern:
    ~0.5 ms of a compute node's every start (most starts find nothing)."""
    try:
        with os.scandir(tasks_dir) as it:
            entries = list(it)  # pathlib's "*" takes hidden names too
    except OSError:
        return []
    found = []
    for e in entries:
        try:
            if e.is_dir() and os.path.exists(os.path.join(e.path, "pgid")):
                found.append(Path(e.path, "pgid"))
        except OSError:
            continue
    return found


def kill_leftover_groups(tasks_dir: Path, pgids: set[int]) -> int:
    """SIGKILL every process of the task groups `pgids` (or recorded under `tasks_dir`).

    A node killed with SIGKILL cannot stop its tasks' process groups (they run
    in their own sessions); the restarted node does, checking each process's
    environment names this node's task directory so a recycled pid is spared.
    """
    pgids = set(pgids)
    for f in _pgid_files(tasks_dir):
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
