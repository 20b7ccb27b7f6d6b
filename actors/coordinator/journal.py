"""The coordinator's journal: every job it accepted and how each ended.

SQLite in WAL mode under the data dir. No per-job transaction: callers stage
rows and the coordinator commits them in groups (a submit is acknowledged only
after the commit that holds it). A restarted coordinator replays the table to
rebuild its graph, then reconciles it with what compute and storage report.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack

from .graph import Job

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    spec BLOB NOT NULL,
    state TEXT NOT NULL,
    outcome TEXT,
    cause TEXT,
    submitted REAL NOT NULL,
    finished REAL,
    delegate TEXT,
    parent TEXT,
    attempts INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB);
"""


def _handed(job: Job) -> str | None:
    """A delegation as one column: '<output>><target object>'."""
    return f"{job.handed[0]}>{job.handed[1]}" if job.handed else None


def parse_handed(value: str | None) -> tuple[str, str] | None:
    if not value or ">" not in value:
        return None
    output, _, target = value.partition(">")
    return output, target


class Journal:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._new: dict[str, Job] = {}
        self._changed: dict[str, Job] = {}

    # -- staging -----------------------------------------------------------------
    def stage_new(self, job: Job) -> None:
        self._new[job.id] = job

    def stage(self, job: Job) -> None:
        if job.id not in self._new:
            self._changed[job.id] = job

    @property
    def dirty(self) -> bool:
        return bool(self._new or self._changed)

    def commit(self) -> int:
        """Write everything staged in one transaction; returns the row count."""
        if not self.dirty:
            return 0
        new, self._new = self._new, {}
        changed, self._changed = self._changed, {}
        db = self._db
        try:
            db.execute("BEGIN")
            if new:
                db.executemany(
                    "INSERT OR REPLACE INTO jobs VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    [
                        (j.id, j.seq, msgpack.packb(j.spec.to_wire()), j.state, j.outcome, j.cause,
                         j.submitted, j.finished, _handed(j), j.parent, j.attempts)
                        for j in new.values()
                    ],
                )
            if changed:
                db.executemany(
                    "UPDATE jobs SET state=?, outcome=?, cause=?, finished=?, delegate=?, attempts=? WHERE id=?",
                    [(j.state, j.outcome, j.cause, j.finished, _handed(j), j.attempts, j.id) for j in changed.values()],
                )
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            # Put the rows back so the next commit retries them.
            new.update(self._new)
            self._new = new
            changed.update(self._changed)
            self._changed = changed
            raise
        return len(new) + len(changed)

    # -- replay ------------------------------------------------------------------
    def replay(self) -> Iterator[tuple[Any, ...]]:
        """(id, seq, spec wire, state, outcome, cause, submitted, finished, delegate, parent, attempts), by seq."""
        for row in self._db.execute("SELECT * FROM jobs ORDER BY seq"):
            yield (row[0], row[1], msgpack.unpackb(row[2]), *row[3:])

    def get_meta(self, key: str, default: Any = None) -> Any:
        row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return msgpack.unpackb(row[0]) if row else default

    def set_meta(self, key: str, value: Any) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, msgpack.packb(value)))

    def close(self) -> None:
        try:
            self.commit()
        finally:
            self._db.close()
