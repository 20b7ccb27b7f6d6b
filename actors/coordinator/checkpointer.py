"""The journal's write-ahead log copied back into its database by a thread of
its own, not by the commit that happens to cross SQLite's mark.

Left to SQLite (wal_autocheckpoint, 1,000 pages), the commit that crosses the
mark copies every page of the log into the database and syncs both files
before it returns, and whoever waits for that commit waits for all of it: a
big submit's answer ~5-10 ms later about every other 5,000-job batch
(docs/performance.md, "Submit, fifth round"). Here the journal's connection
never checkpoints; this thread does, on a connection of its own, soon after
commits and at most once every `interval`. A PASSIVE checkpoint is one SQLite
call: the GIL is let go for all of it, and it never blocks the writer.

What is durable when is as before: with synchronous=NORMAL a commit is in the
log (safe from a killed process) and the log is synced at checkpoints.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

log = logging.getLogger("weft.coordinator")

# Often enough that the log stays a few MB under a big submit, rarely enough
# that a stream of small commits (one every 30 ms while jobs end) costs a few
# syncs a second, not one each.
INTERVAL = 0.25


class Checkpointer:
    """Checkpoints `path`'s log after `poke`s, from a daemon thread."""

    def __init__(self, path: Path, interval: float = INTERVAL) -> None:
        self._path = path
        self._interval = interval
        self._db: sqlite3.Connection | None = None
        self._thread: threading.Thread | None = None
        self._due = threading.Event()
        self._stopping = threading.Event()
        # Held while checkpointing: a compaction or the close waits for it.
        self.lock = threading.Lock()
        self.done = 0  # checkpoints run (tests read it)

    def poke(self) -> None:
        """A commit added to the log: checkpoint it soon. The first one opens
        the connection and starts the thread (~1 ms the commit thread pays,
        not the coordinator's start); if that fails, the commit fails: a
        journal whose log is never checkpointed would grow without end."""
        if self._thread is None:
            self._start()
        self._due.set()

    def _start(self) -> None:
        if self._stopping.is_set():  # (a commit racing the close: nothing to start)
            return
        db = sqlite3.connect(str(self._path), isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA synchronous=NORMAL")  # (the checkpointing connection's setting syncs)
        self._db = db
        self._thread = threading.Thread(target=self._run, args=(db,), name="journal-checkpoint", daemon=True)
        self._thread.start()

    def _run(self, db: sqlite3.Connection) -> None:
        while True:
            self._due.wait()
            self._due.clear()
            with self.lock:
                if self._stopping.is_set():
                    return
                try:
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    self.done += 1
                except sqlite3.Error as e:  # the next poke tries again
                    log.warning("checkpointing the job journal failed: %s", e)
            if self._stopping.wait(self._interval):
                return

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the thread (after the checkpoint under way) and close its connection."""
        self._stopping.set()
        self._due.set()
        if self._thread is not None:
            self._thread.join(timeout)
        with self.lock:
            if self._db is not None:
                self._db.close()
