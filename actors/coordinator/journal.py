"""The coordinator's journal: every job it accepted and how each ended.

SQLite in WAL mode under the data dir. No per-job transaction: callers stage
rows and the coordinator commits them in groups (a submit is acknowledged only
after the commit that holds it). A restarted coordinator replays the table to
rebuild its graph, then reconciles it with what compute and storage report.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack

from weft.protocol.enums import JobState
from weft.runtime.sqlitenew import create_if_missing

from .checkpointer import Checkpointer
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
CREATE TABLE IF NOT EXISTS attempts (
    job TEXT NOT NULL,
    n INTEGER NOT NULL,
    node TEXT,
    started REAL,
    ended REAL,
    outcome TEXT,
    exit_code INTEGER,
    signal INTEGER,
    code TEXT,
    detail TEXT,
    PRIMARY KEY (job, n)
) WITHOUT ROWID;
"""
# Ended attempts that did not succeed (attempts.py): one row each, written
# in the group commit; the attempt that succeeded is the job's own row.
# Where and how each job last ran, added later (journals from before get the
# columns on open): attempts that did not count, the attempt's fencing token
# (a task adopted after a restart with another token is an attempt the
# journal has not seen), its compute node, start time and exit code.
_RUN_COLUMNS = (("excused", "INTEGER NOT NULL DEFAULT 0"), ("token", "INTEGER NOT NULL DEFAULT 0"),
                ("ran_on", "TEXT"), ("started", "REAL"), ("exit_code", "INTEGER"),
                # its failure code and detail, and its own failures retried (--retries)
                ("code", "TEXT"), ("detail", "TEXT"), ("own", "INTEGER NOT NULL DEFAULT 0"),
                # a failed command's last lines of stderr
                ("tail", "TEXT"),
                # outputs it made empty, kept here and on no storage node
                # (comma-separated: output names have no comma)
                ("empty", "TEXT"),
                # who submitted it (owners.py); never changes, so only inserted
                ("owner", "TEXT"))
_COLUMNS = ("id, seq, spec, state, outcome, cause, submitted, finished, delegate, parent, attempts, "
            "excused, token, ran_on, started, exit_code, code, detail, own, tail, empty, owner")
_packb = msgpack.packb  # (a global: read per row)
# A state as plain text: sqlite3 binds only exact str without looking for an
# adapter (two failed attribute look-ups a StrEnum, ~0.3 us a row inserted).
_text = str.__str__
_MARKS = ",".join("?" * len(_COLUMNS.split(",")))
_CACHE_KIB = 8192
# `weft stats` counters, rewritten with every group commit.
COUNTERS = "counters"


# The columns of a job not yet tried (the rest are their defaults: NULL or 0).
_FRESH_COLUMNS = "id, seq, spec, state, submitted, owner"
_UNTRIED = frozenset((JobState.WAITING, JobState.RUNNABLE))


def _fresh(j: Job) -> bool:
    """Whether every column of `j`'s row but _FRESH_COLUMNS is its default
    (its rarely-set fields read through to the class's defaults)."""
    return (j.state in _UNTRIED and j.attempts == 0 and j.token == 0 and j.outcome is None
            and j.finished is None and j.started is None and j.ran_on is None and j.exit_code is None
            and j.cause is None and j.handed is None and j.parent is None and j.excused == 0
            and j.code is None and j.detail is None and j.own == 0 and j.tail is None and j.empty is None)


def _handed(job: Job) -> str | None:
    """A delegation as one column: '<output>><target object>'."""
    return f"{job.handed[0]}>{job.handed[1]}" if job.handed else None


def _empty(job: Job) -> str | None:
    return ",".join(job.empty) if job.empty else None


def parse_empty(value: str | None) -> tuple[str, ...] | None:
    """The outputs a job made empty (held by the journal, not by storage)."""
    if not isinstance(value, str):
        return None
    return tuple(o for o in value.split(",") if o) or None


def parse_handed(value: str | None) -> tuple[str, str] | None:
    if not value or ">" not in value:
        return None
    output, _, target = value.partition(">")
    return output, target


_WIDE = ("UPDATE jobs SET state=?, outcome=?, cause=?, finished=?, delegate=?, attempts=?, "
         "excused=?, token=?, ran_on=?, started=?, exit_code=?, code=?, detail=?, own=?, tail=?, empty=? "
         "WHERE id=?")
# A row whose failure columns (cause, delegate, excused, code, detail, own,
# tail) are at their defaults in the job and on disk: only the columns a
# dispatch and a success change are written (2.5 against 4.2 us a row). The
# WHERE clause checks the disk side, which the job cannot tell (a failed job
# resubmitted and run again within one commit window had its failure
# written, then cleared in memory): rows it misses get the wide update.
_NARROW = ("UPDATE jobs SET state=?, outcome=?, finished=?, attempts=?, token=?, ran_on=?, started=?, "
           "exit_code=?, empty=? WHERE id=? AND cause IS NULL AND delegate IS NULL AND excused=0 "
           "AND code IS NULL AND detail IS NULL AND own=0 AND tail IS NULL")


def _wide_row(j: Job) -> tuple:
    return (j.state, j.outcome, j.cause, j.finished, _handed(j), j.attempts, j.excused, j.token, j.ran_on,
            j.started, j.exit_code, j.code, j.detail, j.own, j.tail, _empty(j), j.id)


def _update(db: sqlite3.Connection, jobs: list[Job]) -> None:
    """The UPDATE of jobs already journalled: narrow where it can be."""
    plain: list[Job] = []
    wide: list[Job] = []
    for j in jobs:
        # (Rare fields read their class defaults unless set: records.py.)
        if (j.cause is None and j.code is None and j.detail is None and j.tail is None and j.handed is None
                and not j.excused and not j.own):
            plain.append(j)
        else:
            wide.append(j)
    if plain:
        n = db.executemany(_NARROW, [(j.state, j.outcome, j.finished, j.attempts, j.token, j.ran_on, j.started,
                                      j.exit_code, _empty(j), j.id) for j in plain]).rowcount
        if n != len(plain):
            wide += plain  # some row still holds a failure: every one rewritten whole (rare, idempotent)
    if wide:
        db.executemany(_WIDE, [_wide_row(j) for j in wide])


class Batch:
    """Rows taken from the staging area for one transaction."""

    __slots__ = ("new", "changed", "counters", "attempts", "forget", "meta")

    def __init__(self, new: dict[str, Job], changed: dict[str, Job], counters: dict[str, int] | None,
                 attempts: list[tuple] | None = None, forget: set[str] | None = None,
                 meta: dict[str, Any] | None = None) -> None:
        self.new = new
        self.changed = changed
        self.counters = counters
        self.attempts = attempts or []
        self.forget = forget or set()
        self.meta = meta or {}  # meta rows (key -> value) staged with stage_meta


class Journal:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # A new journal: the same statements as below, in one unsynced
        # transaction made durable once (the ALTERs too, so its schema text
        # is the same as a journal that grew its columns).
        create_if_missing(path, _SCHEMA + "".join(f"ALTER TABLE jobs ADD COLUMN {n} {d};\n" for n, d in _RUN_COLUMNS))
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA wal_autocheckpoint=0")  # (checkpointer.py does it, off the commit's path)
        # 8 MiB of pages, not SQLite's 2: the id index of ~100,000 jobs stays
        # cached, and a submit's inserts (random ids) stop reading its pages back
        # (commit thread 5.1-5.5 -> 4.6-4.7 us a job). At most 6 MiB more RSS:
        # 0.006 KiB a job at 1,000,000 queued (docs/performance.md).
        self._db.execute(f"PRAGMA cache_size=-{_CACHE_KIB}")
        self._db.executescript(_SCHEMA)
        have = {row[1] for row in self._db.execute("PRAGMA table_info(jobs)")}
        for name, decl in _RUN_COLUMNS:
            if name not in have:
                self._db.execute(f"ALTER TABLE jobs ADD COLUMN {name} {decl}")
        self._new: dict[str, Job] = {}
        self._changed: dict[str, Job] = {}
        self._attempts: list[tuple] = []
        self._forget: set[str] = set()  # rows to delete (jobs forgotten: gc.py)
        # A write, a compaction and the close never run at once (writes and
        # compactions run in worker threads): SQLite's connection must not be
        # closed under a thread using it (the process would crash).
        self._lock = threading.Lock()
        self._closed = False
        self._meta: dict[str, Any] = {}
        # The owner's counters (a dict it keeps updating): written with each commit.
        self.counters: dict[str, int] | None = None
        self._checkpoints = Checkpointer(path)

    # -- staging -----------------------------------------------------------------
    def stage_new(self, job: Job) -> None:
        self._new[job.id] = job
        self._forget.discard(job.id)  # (a job forgotten, then submitted again)

    def stage_forget(self, ids: list[str]) -> None:
        """Delete these jobs' rows with the next commit."""
        for jid in ids:
            self._new.pop(jid, None)
            self._changed.pop(jid, None)
            self._forget.add(jid)

    def stage(self, job: Job) -> None:
        if job.id not in self._new:
            self._changed[job.id] = job

    def stage_attempts(self, rows: list[tuple]) -> None:
        self._attempts += rows

    def stage_meta(self, key: str, value: Any) -> None:
        """A meta row (e.g. what is paused) written with the next batch: the
        commit thread owns the connection while it writes."""
        self._meta[key] = value

    @property
    def dirty(self) -> bool:
        return bool(self._new or self._changed or self._attempts or self._forget or self._meta)

    def commit(self) -> int:
        """Write everything staged in one transaction; returns the row count."""
        batch = self.take()
        if batch is None:
            return 0
        try:
            return self.write(batch)
        except BaseException:
            self.put_back(batch)
            raise

    def take(self) -> Batch | None:
        """What is staged, to `write` (from another thread if the caller
        likes: the coordinator does, so a big commit does not stall it).
        Jobs change after this go into the next batch (they are staged
        again), so the rows `write` reads are never older than staged."""
        if not self.dirty:
            return None
        new, self._new = self._new, {}
        changed, self._changed = self._changed, {}
        rows, self._attempts = self._attempts, []
        forget, self._forget = self._forget, set()
        meta, self._meta = self._meta, {}
        return Batch(new, changed, dict(self.counters) if self.counters is not None else None, rows, forget, meta)

    def put_back(self, batch: Batch) -> None:
        """A batch that failed to write: its rows go with the next one."""
        batch.new.update(self._new)
        self._new = batch.new
        self._meta = {**batch.meta, **self._meta}
        for jid, job in batch.changed.items():
            if jid not in self._new:
                self._changed.setdefault(jid, job)
        self._attempts[:0] = batch.attempts
        self._forget |= {jid for jid in batch.forget if jid not in self._new}

    def write(self, batch: Batch) -> int:
        """One transaction for `batch`; returns the row count."""
        with self._lock:
            if self._closed:
                raise sqlite3.ProgrammingError("the journal is closed")
            return self._write(batch)

    def _write(self, batch: Batch) -> int:
        new, changed = batch.new, batch.changed
        db = self._db
        try:
            db.execute("BEGIN")
            if batch.forget:
                # First: a job forgotten and submitted again is inserted after.
                gone = [(jid,) for jid in batch.forget]
                db.executemany("DELETE FROM jobs WHERE id=?", gone)
                db.executemany("DELETE FROM attempts WHERE job=?", gone)
            if new:
                jobs = list(new.values())
                # A job not yet tried: its other columns are their defaults
                # (half the bytes bound and written: ~3 us a job less). In
                # submit order, not id order: the rows' pages then follow
                # the order jobs are dispatched and end in, so a group
                # commit of a few hundred updates dirties tens of pages, not
                # one per row (the hashed ids scattered them: 11 -> 5 us an
                # updated row at ~540 a commit; an insert ~0.5 us more at
                # 100,000 rows, its id index visited out of order).
                fresh = [j for j in jobs if _fresh(j)]
                db.executemany(
                    f"INSERT OR REPLACE INTO jobs ({_FRESH_COLUMNS}) VALUES (?,?,?,?,?,?)",
                    [(j.id, j.seq, _packb(j.spec.to_wire()), _text(j.state), j.submitted, j.owner) for j in fresh],
                )
                if len(fresh) < len(jobs):
                    db.executemany(
                        f"INSERT OR REPLACE INTO jobs ({_COLUMNS}) VALUES ({_MARKS})",
                        [
                            (j.id, j.seq, _packb(j.spec.to_wire()), j.state, j.outcome, j.cause,
                             j.submitted, j.finished, _handed(j), j.parent, j.attempts,
                             j.excused, j.token, j.ran_on, j.started, j.exit_code, j.code, j.detail, j.own, j.tail,
                             _empty(j), j.owner)
                            for j in jobs if not _fresh(j)
                        ],
                    )
            if changed:
                _update(db, list(changed.values()))
            if batch.attempts:
                for row in batch.attempts:  # few: only attempts that did not succeed
                    if len(row) == 3:
                        db.execute("DELETE FROM attempts WHERE job=? AND n=?", row[:2])
                    else:
                        db.execute("INSERT OR REPLACE INTO attempts VALUES (?,?,?,?,?,?,?,?,?,?)", row)
            if batch.counters is not None:
                db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (COUNTERS, msgpack.packb(batch.counters)))
            for key, value in batch.meta.items():
                db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, msgpack.packb(value)))
            db.execute("COMMIT")
            self._checkpoints.poke()
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return len(new) + len(changed) + len(batch.attempts) + len(batch.forget)

    # -- compaction ----------------------------------------------------------------
    def size(self) -> int:
        """Bytes on disk: the database file and its write-ahead log."""
        total = 0
        for suffix in ("", "-wal"):
            try:
                total += os.path.getsize(f"{self.path}{suffix}")
            except OSError:
                pass
        return total

    def compact(self) -> float:
        """Give deleted rows' pages back to the file system: VACUUM, then
        empty the write-ahead log. Blocking (call it from a worker thread);
        commits wait meanwhile. Returns the seconds it took."""
        with self._lock, self._checkpoints.lock:
            if self._closed:
                return 0.0
            t0 = time.perf_counter()
            self._db.execute("VACUUM")
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            return time.perf_counter() - t0

    # -- replay ------------------------------------------------------------------
    def replay(self) -> Iterator[tuple[Any, ...]]:
        """(id, seq, spec wire, state, outcome, cause, submitted, finished, delegate, parent, attempts,
        excused, token, ran_on, started, exit_code, code, detail, own, tail, empty, owner), by seq."""
        for row in self._db.execute(f"SELECT {_COLUMNS} FROM jobs ORDER BY seq"):
            yield (row[0], row[1], msgpack.unpackb(row[2]), *row[3:])

    def replay_attempts(self) -> Iterator[tuple[Any, ...]]:
        """Rows of the attempts table: (job, n, node, started, ended, outcome, exit_code, signal,
        code, detail), by job and n."""
        yield from self._db.execute("SELECT * FROM attempts ORDER BY job, n")

    def get_meta(self, key: str, default: Any = None) -> Any:
        row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return msgpack.unpackb(row[0]) if row else default

    def set_meta(self, key: str, value: Any) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, msgpack.packb(value)))

    def close(self) -> None:
        try:
            self.commit()
        finally:
            self._checkpoints.stop()
            with self._lock:
                self._closed = True
                self._db.close()
