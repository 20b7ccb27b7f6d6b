"""Task directories, made ahead of need.

A command task needs `inputs/ outputs/ results/ work/` under its own
directory. Making four directories costs more than running `true` on some
filesystems (~0.4 ms a mkdir on overlay), so a few empty skeletons are kept
ready under `tasks/.spare/`, made in a worker thread, and a task takes one
with a single rename.
"""

from __future__ import annotations

import itertools
import logging
import os
import secrets
from pathlib import Path

import trio

log = logging.getLogger("weft.compute")

SUBDIRS = ("inputs", "outputs", "results", "work")


def make_skeleton(path: Path) -> None:
    os.mkdir(path)
    for sub in SUBDIRS:
        os.mkdir(path / sub)


class TaskDirs:
    def __init__(self, tasks_dir: Path, *, keep: int = 16) -> None:
        self.tasks_dir = tasks_dir
        self.spare_dir = tasks_dir / ".spare"
        self.keep = keep
        self._spares: list[Path] = []
        self._names = itertools.count()
        self._prefix = secrets.token_hex(3)
        self._low = trio.Event()

    def prepare(self) -> None:
        """Clear spares a previous run left behind (they may be half made)."""
        import shutil

        shutil.rmtree(self.spare_dir, ignore_errors=True)
        self.spare_dir.mkdir(parents=True, exist_ok=True)

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

    def _make_spares(self, n: int) -> list[Path]:
        made = []
        for _ in range(n):
            p = self.spare_dir / f"{self._prefix}-{next(self._names)}"
            try:
                make_skeleton(p)
            except OSError as e:
                log.warning("cannot make spare task directories: %s", e)
                break
            made.append(p)
        return made

    async def run(self) -> None:
        """Keep `keep` spares ready, refilling in a worker thread."""
        while True:
            need = self.keep - len(self._spares)
            if need > 0:
                self._spares += await trio.to_thread.run_sync(self._make_spares, need)
            self._low = trio.Event()
            await self._low.wait()
