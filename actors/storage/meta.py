"""The object store's metadata: one SQLite row per object, in `meta.sqlite` (WAL).

Objects of at most the store's `inline_max` bytes keep their content in the
row, so a batch of tiny outputs costs one WAL fsync rather than one fsync per
file. This module knows the schema and the queries; what a row means (states,
recovery) is the store's business (see store.py).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from weft.runtime.sqlitenew import create_if_missing

from .errors import OutOfSpace

log = logging.getLogger("weft.storage")

# The write-ahead log's working size in pages (of 4 KiB): a checkpoint every
# ~1 MiB of changes keeps it small, and it is grown to this at open.
WAL_PAGES = 256

_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    name     TEXT PRIMARY KEY,
    state    TEXT NOT NULL,
    size     INTEGER NOT NULL,
    token    INTEGER NOT NULL,
    target   TEXT,
    created  REAL NOT NULL,
    finished REAL,
    inline   INTEGER NOT NULL,
    data     BLOB
)
"""
_UPSERT = "INSERT OR REPLACE INTO objects VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
_DELETE = "DELETE FROM objects WHERE name = ?"
# Only a partial inline object's bytes are loaded at open: finished inline
# content stays in its row and is read by range when asked for.
_LOAD = (
    "SELECT name, state, size, token, target, created, finished, inline,"
    " CASE WHEN state = 'partial' AND inline THEN data END FROM objects"
)
_READ_RANGE = "SELECT substr(data, ?, ?) FROM objects WHERE name = ?"


class MetaDB:
    """The two connections to `meta.sqlite`: reads on the loop's, commits on their own."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        create_if_missing(self.path, _SCHEMA + ";")  # a new one: one sync, not seven (sqlitenew.py)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(_SCHEMA)
        # Flushes write on their own connection, so a flush in a worker thread
        # never shares one with the loop's reads (WAL lets them run together).
        self._wdb = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._wdb.execute("PRAGMA synchronous=FULL")
        self._wdb.execute(f"PRAGMA wal_autocheckpoint={WAL_PAGES}")
        # The write connection's users: commits, the priming and the close
        # (from any thread; the priming runs in one after the node is ready).
        self._wlock = threading.Lock()
        self._closed = False

    def prime_wal(self) -> None:
        """Grow the write-ahead log to its working size now, not commit by commit.

        Called by the node once it serves (in a worker thread): the ~1 MiB
        of unsynced writes (2-11 ms) used to sit between the fork and the
        ready line. A commit that comes meanwhile waits for it.

        Measured here: while the WAL file grows, every commit's fdatasync also
        journals the file's new size (ext4 metadata), ~0.6 ms a commit; once
        SQLite wraps around and overwrites the file, ~0.25 ms. A fresh WAL
        (every start: a clean close deletes it) would pay the slow commits
        for the first few hundred finishes. One unsynced transaction of
        WAL_PAGES pages (rolled into a dropped table) and a checkpoint that
        restarts the log put it in the fast state at once (~10 ms).
        """
        with self._wlock:
            if not self._closed:
                self._prime_wal()

    def _prime_wal(self) -> None:
        wal = self.path.with_name(self.path.name + "-wal")
        try:
            if wal.stat().st_size >= WAL_PAGES * 4096:
                return
        except FileNotFoundError:
            pass
        db = self._wdb
        db.execute("PRAGMA synchronous=OFF")
        try:
            db.execute("BEGIN")
            db.execute("CREATE TABLE IF NOT EXISTS _wal_prime (b BLOB)")
            db.execute("INSERT INTO _wal_prime VALUES (zeroblob(?))", ((WAL_PAGES - 8) * 4096,))
            db.execute("DROP TABLE _wal_prime")
            db.execute("COMMIT")
            db.execute("PRAGMA wal_checkpoint(RESTART)")
        except sqlite3.Error as e:
            if db.in_transaction:
                db.execute("ROLLBACK")
            log.warning("could not pre-size the write-ahead log: %s", e)
        finally:
            db.execute("PRAGMA synchronous=FULL")

    def load(self) -> Iterable[tuple[Any, ...]]:
        """Every row as (name, state, size, token, target, created, finished,
        inline, data), data only for partial inline objects."""
        return self._db.execute(_LOAD)

    def read_range(self, name: str, offset: int, n: int) -> bytes:
        """Bytes [offset, offset+n) of the content kept in the object's row."""
        row = self._db.execute(_READ_RANGE, (offset + 1, n, name)).fetchone()
        return bytes(row[0]) if row and row[0] is not None else b""

    def commit(self, rows: list[tuple[Any, ...]], gone: list[tuple[str]]) -> None:
        """Write `rows` and delete the `gone` names in ONE durable transaction
        (any thread; one at a time)."""
        with self._wlock:
            self._commit(rows, gone)

    def _commit(self, rows: list[tuple[Any, ...]], gone: list[tuple[str]]) -> None:
        db = self._wdb
        try:
            db.execute("BEGIN")
            if gone:
                db.executemany(_DELETE, gone)
            if rows:
                db.executemany(_UPSERT, rows)
            db.execute("COMMIT")
        except sqlite3.Error as e:
            if db.in_transaction:
                db.execute("ROLLBACK")
            if getattr(e, "sqlite_errorname", "") == "SQLITE_FULL":
                raise OutOfSpace(f"no space left on device committing object metadata: {e}") from e
            raise

    def close(self) -> None:
        with self._wlock:  # not under a priming or a commit in another thread
            self._closed = True
            self._db.close()
            self._wdb.close()
