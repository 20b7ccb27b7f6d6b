"""The journal's and the object store's SQLite files: a new one is built in
one durable step (runtime/sqlitenew.py) with the same schema and settings as
the plain open made; an existing one opens as before, with its data."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from weft.actors.coordinator import journal as journal_mod
from weft.actors.coordinator.journal import Journal
from weft.actors.storage import meta as meta_mod
from weft.actors.storage.meta import MetaDB
from weft.runtime.sqlitenew import create_if_missing

# A pre-sized log: ~WAL_PAGES frames, far more than a few commits write.
PRESIZED = (meta_mod.WAL_PAGES - 56) * 4096


def _plain_journal(path: Path) -> None:
    """How the coordinator made a journal before: WAL first, the schema
    statement by statement, then the run columns one ALTER at a time."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.executescript(journal_mod._SCHEMA)
    for name, decl in journal_mod._RUN_COLUMNS:
        db.execute(f"ALTER TABLE jobs ADD COLUMN {name} {decl}")
    db.close()


def _plain_meta(path: Path) -> None:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute(meta_mod._SCHEMA)
    db.close()


def _shape(path: Path) -> tuple:
    """What a user of the file could tell apart: schema text and file settings."""
    db = sqlite3.connect(path)
    try:
        master = db.execute("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name").fetchall()
        pragmas = tuple(db.execute(f"PRAGMA {p}").fetchone()[0]
                        for p in ("journal_mode", "page_size", "auto_vacuum", "encoding", "user_version",
                                  "application_id", "integrity_check"))
    finally:
        db.close()
    return master, pragmas


def _open_journal(path: Path) -> None:
    Journal(path).close()


def _open_meta(path: Path) -> None:
    MetaDB(path).close()


@pytest.mark.parametrize(("plain", "open_new"), [(_plain_journal, _open_journal), (_plain_meta, _open_meta)],
                         ids=["journal", "meta"])
def test_a_new_database_has_the_plain_opens_schema_and_settings(tmp_path: Path, plain, open_new) -> None:
    old, new = tmp_path / "old" / "db.sqlite", tmp_path / "new" / "db.sqlite"
    old.parent.mkdir()
    new.parent.mkdir()
    plain(old)
    open_new(new)
    assert _shape(new) == _shape(old)
    assert _shape(new)[1][0] == "wal"
    assert sorted(p.name for p in new.parent.iterdir()) == ["db.sqlite"]  # no temporary file left


def test_an_existing_journal_reopens_with_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    _plain_journal(path)  # made the old way, as by an earlier version
    j = Journal(path)
    j.set_meta("epoch", 7)
    j.close()
    j = Journal(path)
    assert j.get_meta("epoch") == 7
    j.set_meta("epoch", 8)
    j.close()
    j = Journal(path)
    assert j.get_meta("epoch") == 8
    j.close()


def test_an_existing_object_table_reopens_with_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "meta.sqlite"
    _plain_meta(path)
    row = ("obj-1", "finished", 3, 1, None, 1.0, 2.0, 1, b"abc")
    m = MetaDB(path)
    m.commit([row], [])
    m.close()
    m = MetaDB(path)
    assert [tuple(r) for r in m.load()] == [row[:8] + (None,)]
    assert m.read_range("obj-1", 0, 3) == b"abc"
    m.close()


def test_leftovers_of_a_crash_mid_creation_do_not_matter(tmp_path: Path) -> None:
    path = tmp_path / "meta.sqlite"
    # A temporary file half written when the process died: rebuilt from scratch.
    (tmp_path / "meta.sqlite.new").write_bytes(b"not a database")
    (tmp_path / "meta.sqlite.new-journal").write_bytes(b"junk")
    assert create_if_missing(path, meta_mod._SCHEMA + ";")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["meta.sqlite"]
    ref = tmp_path / "ref"
    ref.mkdir()
    _plain_meta(ref / "meta.sqlite")
    assert _shape(path) == _shape(ref / "meta.sqlite")


def test_an_existing_file_or_log_is_left_to_sqlite(tmp_path: Path) -> None:
    path = tmp_path / "meta.sqlite"
    _plain_meta(path)
    before = path.read_bytes()
    assert not create_if_missing(path, "CREATE TABLE other (x);")
    assert path.read_bytes() == before
    # A write-ahead log without its database: SQLite's own open decides.
    lone = tmp_path / "lone.sqlite"
    (tmp_path / "lone.sqlite-wal").write_bytes(b"")
    assert not create_if_missing(lone, "CREATE TABLE other (x);")
    assert not lone.exists()


def test_the_write_ahead_log_is_presized_by_prime_wal_even_with_commits_racing_it(tmp_path: Path) -> None:
    path = tmp_path / "meta.sqlite"
    wal = tmp_path / "meta.sqlite-wal"
    m = MetaDB(path)
    assert not wal.exists() or wal.stat().st_size < PRESIZED  # not at open: after ready
    rows = [(f"obj-{i}", "finished", 1, 1, None, 1.0, 2.0, 1, b"x") for i in range(20)]
    threads = [threading.Thread(target=m.prime_wal)]
    threads += [threading.Thread(target=m.commit, args=([r], [])) for r in rows]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert wal.stat().st_size >= PRESIZED
    m.close()
    m.prime_wal()  # after close: nothing to do, and no crash
    m = MetaDB(path)
    assert sorted(r[0] for r in m.load()) == sorted(r[0] for r in rows)
    m.close()
    ref = tmp_path / "ref"
    ref.mkdir()
    _plain_meta(ref / "meta.sqlite")
    assert _shape(path)[0] == _shape(ref / "meta.sqlite")[0]  # the priming's table is gone
