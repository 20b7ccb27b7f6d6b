"""Create a daemon's SQLite database with two syncs instead of six or seven.

Opening a missing database the plain way (`journal_mode=WAL`, then the
schema) costs 6-7 fdatasyncs before a daemon is ready: the switch to WAL
goes through a rollback journal (journal, directory, journal, database),
then the first WAL frames and the directory again. On this disk one sync
takes 0.4-8.5 ms, and they all sit between the daemon's fork and its ready
line. Nothing committed depends on them: the file holds only the schema.

So a missing database is built under a temporary name with syncs off, then
made durable once (the file, the rename, the directory) and renamed into
place. A crash part-way leaves either no database (the temporary file is
removed and rebuilt on the next start) or the whole one; never a half-made
file under the real name. An existing database is not touched here: it
opens exactly as before.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

_SIDE = ("-wal", "-shm", "-journal")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def create_if_missing(path: Path, script: str) -> bool:
    """Build `path` (WAL mode, `script`'s statements in one transaction) if
    it does not exist; returns whether it did. Leaves it alone if it or a
    write-ahead log of it exists (SQLite's own open handles those)."""
    path = Path(path)
    if path.exists() or any(path.with_name(path.name + s).exists() for s in _SIDE):
        return False
    tmp = path.with_name(path.name + ".new")
    for s in ("", *_SIDE):
        tmp.with_name(tmp.name + s).unlink(missing_ok=True)  # left by a crash here
    db = sqlite3.connect(tmp, isolation_level=None)
    try:
        # synchronous before the first write (the switch to WAL writes the
        # header); page size stays SQLite's default, as the plain open had it.
        db.execute("PRAGMA synchronous=OFF")
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(f"BEGIN;\n{script}\nCOMMIT;")
    finally:
        db.close()  # the last connection's close checkpoints and removes the -wal
    if any(tmp.with_name(tmp.name + s).exists() for s in _SIDE):
        # Not all in the main file (no checkpoint at close): the plain open instead.
        for s in ("", *_SIDE):
            tmp.with_name(tmp.name + s).unlink(missing_ok=True)
        return False
    _fsync(tmp)
    os.rename(tmp, path)
    _fsync(path.parent)
    return True
