"""`--block PATH`: a command starts only once each PATH exists on its node.

For shared filesystems that show a file on one host later than on another.
The wait happens in the task, before the command is spawned, so it counts
against the job's time limit and a cancel ends it; meanwhile the job's
progress says what it waits for (`weft status` shows it).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import trio

# Polls start fast (the file is often there already, or nearly) and slow down.
FIRST_POLL = 0.05
MAX_POLL = 1.0


async def wait_for_paths(paths: Sequence[str], progress: Path, cwd: Path) -> None:
    """Return once every path exists (relative ones from the command's cwd)."""
    poll = FIRST_POLL
    said = None
    for p in paths:
        path = cwd / os.path.expanduser(p)
        while not await trio.to_thread.run_sync(path.exists):
            if said != p:
                # A progress line `PERCENT MESSAGE`, as a command would write one.
                progress.write_text(f"0 waiting for {p}\n")
                said = p
            await trio.sleep(poll)
            poll = min(MAX_POLL, poll * 2)
    if said is not None:
        progress.unlink(missing_ok=True)  # the command's own progress starts clean
