"""The storage node's object store, on real files and a real SQLite database:
an object's lifecycle, delegation, the fast paths, delete, list, usage, a
failed flush and a full disk. (Restarts: test_store_restart.py; refused
calls and names: test_store_errors.py; shared fixtures: conftest.py.)"""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

import pytest

from weft.actors.model import ObjectState
from weft.actors.storage import content as content_mod
from weft.actors.storage.errors import (
    Fenced,
    NotReadable,
    ObjectMissing,
    OutOfSpace,
)
from weft.actors.storage.store import READ_CHUNK, ObjectStore

from .conftest import MiB, pattern, read_all


def row_count(data_dir: Path) -> int:
    db = sqlite3.connect(data_dir / "meta.sqlite")
    try:
        return db.execute("SELECT count(*) FROM objects").fetchone()[0]
    finally:
        db.close()


# ---------------------------------------------------------------- lifecycle


def test_lifecycle_small_object(store: ObjectStore, events: list) -> None:
    info = store.create("j1/out", token=3)
    assert (info.state, info.size, info.token) == (ObjectState.EMPTY, 0, 3)
    assert store.read("j1/out") == b""

    store.populate("j1/out", b"hello ", token=3)
    assert store.stat("j1/out").state == ObjectState.PARTIAL
    store.populate("j1/out", b"big ", token=3, offset=6)
    store.populate("j1/out", b"world", token=3)
    assert store.read("j1/out") == b"hello big world"  # partial objects are readable

    info = store.finish("j1/out", token=3, size=15)
    assert (info.state, info.size) == (ObjectState.FINISHED, 15)
    assert info.finished is not None and info.finished >= info.created
    assert store.flush() == ["j1/out"]
    assert store.flush() == []

    assert store.read("j1/out") == b"hello big world"
    assert store.read("j1/out", 6, 3) == b"big"
    assert store.read("j1/out", 10) == b"world"
    assert store.read("j1/out", 14, 100) == b"d"
    assert store.read("j1/out", 15) == b""
    assert store.read("j1/out", 99) == b""
    # One "partial" event for the first bytes, none per chunk.
    assert [k for k, _ in events] == ["created", "partial", "finished"]
    assert events[-1][1].size == 15
    assert info.to_wire() == {
        "name": "j1/out",
        "state": "finished",
        "size": 15,
        "token": 3,
        "target": None,
    }


def test_large_object_in_chunks(store: ObjectStore, data_dir: Path) -> None:
    content = pattern(3 * MiB)
    store.create("big/out")
    for i in range(3):
        store.populate("big/out", content[i * MiB : (i + 1) * MiB], offset=i * MiB)
        assert store.stat("big/out").size == (i + 1) * MiB
    path = data_dir / "objects" / "big" / "out"
    assert path.stat().st_size == 3 * MiB  # streamed to its file, not held in memory
    store.finish("big/out", size=3 * MiB)
    assert store.flush() == ["big/out"]

    assert len(store.read("big/out")) == READ_CHUNK == MiB  # unbounded reads come in chunks
    assert read_all(store, "big/out") == content
    for off, n in [(0, 10), (MiB - 5, 10), (2 * MiB + 12345, 4096), (3 * MiB - 1, 10)]:
        assert store.read("big/out", off, n) == content[off : off + n]
    assert store.usage()["bytes"] == 3 * MiB


def test_read_view_maps_finished_content_only(store: ObjectStore, data_dir: Path) -> None:
    content = pattern(3 * MiB + 100)
    store.create("v/out")
    store.populate("v/out", content[: 2 * MiB])
    # Partial: a file that may still be cut back is read, never mapped.
    assert type(store.read_view("v/out", 0, MiB)) is bytes
    store.populate("v/out", content[2 * MiB :])
    store.finish("v/out")
    store.flush()
    for off, n in [(0, MiB), (MiB, MiB), (12345, 300_000), (3 * MiB, MiB), (3 * MiB + 99, 10)]:
        got = store.read_view("v/out", off, n)
        assert got == content[off : off + n]
    assert type(store.read_view("v/out", 12345, 300_000)) is memoryview
    assert type(store.read_view("v/out", 0, 100)) is bytes  # small reads: a plain read is cheaper
    # A view stays valid after the object is deleted (the mapping outlives the file).
    view = store.read_view("v/out", MiB, MiB)
    store.delete("v/out")
    store.flush()
    assert view == content[MiB : 2 * MiB]
    # A file shorter than its row says (changed behind the store's back) is read, not mapped.
    store.put("w/out", content[:MiB])
    store.flush()
    os.truncate(data_dir / "objects" / "w" / "out", MiB // 2)
    assert store.read_view("w/out", 0, MiB) == content[: MiB // 2]


def test_content_dropped_from_the_page_cache_reads_back_intact(data_dir: Path) -> None:
    s = ObjectStore(data_dir, page_cache=MiB)  # keeps about one object's pages cached
    try:
        contents = {f"pc{i}/out": pattern(MiB + 4096, seed=i) for i in range(5)}
        for name, content in contents.items():
            s.put(name, content)
            assert s.flush() == [name]
        for name, content in contents.items():
            assert read_all(s, name) == content
            assert s.read_view(name, 0, MiB + 4096) == content
    finally:
        s.close()
    s = ObjectStore(data_dir, page_cache=0)
    try:
        assert all(read_all(s, name) == content for name, content in contents.items())
    finally:
        s.close()


def test_small_object_spills_to_file(data_dir: Path) -> None:
    s = ObjectStore(data_dir, inline_max=16)
    try:
        s.create("j/o")
        s.populate("j/o", b"0123456789")
        assert not (data_dir / "objects" / "j" / "o").exists()
        s.populate("j/o", b"abcdefghij")
        assert (data_dir / "objects" / "j" / "o").read_bytes() == b"0123456789abcdefghij"
        s.populate("j/o", b"XYZ")
        s.finish("j/o")
        s.put("j/tiny", b"0123456789abcdef")  # exactly inline_max stays inline
        s.flush()
        assert s.read("j/o", 8, 4) == b"89ab"
        assert s.read("j/tiny") == b"0123456789abcdef"
        assert not (data_dir / "objects" / "j" / "tiny").exists()
    finally:
        s.close()


# -------------------------------------------------------------- delegation


def test_delegation_chain(store: ObjectStore, events: list) -> None:
    store.create("d/1")
    store.create("d/2")
    store.create("d/3")
    store.populate("d/3", b"discarded")  # partial content is dropped on delegation
    store.put("d/final", b"final bytes")
    store.delegate("d/1", "d/2")
    store.delegate("d/2", "d/3")
    info = store.delegate("d/3", "d/final")
    assert (info.state, info.target, info.size) == (ObjectState.DELEGATED, "d/final", 0)
    name, info = store.resolve("d/1")
    assert (name, info.state, info.size) == ("d/final", ObjectState.FINISHED, 11)
    assert store.read("d/1") == b"final bytes"
    assert store.read("d/1", 6) == b"bytes"
    assert "delegated" in [k for k, _ in events]
    assert store.delegate("d/1", "d/2").target == "d/2"  # a retry is harmless


def test_delegation_leaving_this_store(store: ObjectStore) -> None:
    store.create("d/here")
    store.create("d/mid")
    store.delegate("d/here", "d/mid")
    store.delegate("d/mid", "elsewhere/out")
    name, info = store.resolve("d/here")
    assert name == "elsewhere/out"
    assert (info.name, info.state) == ("d/mid", ObjectState.DELEGATED)
    with pytest.raises(NotReadable, match="'elsewhere/out'") as e:
        store.read("d/here")
    assert e.value.target == "elsewhere/out"


# ------------------------------------------------------------- fast paths


def test_put_fast_path(store: ObjectStore, data_dir: Path, events: list) -> None:
    info = store.put("p/o", b"tiny", token=4)
    assert (info.state, info.size, info.token) == (ObjectState.FINISHED, 4, 4)
    assert [k for k, _ in events] == ["created", "finished"]
    store.create("p/pre", token=1)
    store.put("p/pre", b"filled", token=1)  # into an existing empty object
    assert store.read("p/pre") == b"filled"
    store.create("p/owned", token=2)
    with pytest.raises(Fenced):
        store.put("p/owned", b"x", token=1)  # someone else's object
    big = pattern(200_000, 3)
    store.put("p/big", big)
    assert (data_dir / "objects" / "p" / "big").read_bytes() == big
    assert sorted(store.flush()) == ["p/big", "p/o", "p/pre"]
    assert store.read("p/o") == b"tiny"
    assert read_all(store, "p/big") == big


def test_idempotent_finish(store: ObjectStore) -> None:
    store.create("i/o", token=1)
    store.populate("i/o", b"abc", token=1)
    first = store.finish("i/o", token=1, size=3)
    assert store.flush() == ["i/o"]
    again = store.finish("i/o", token=1, size=3)  # a retry whose ack was lost
    assert (again.state, again.size, again.finished) == (ObjectState.FINISHED, 3, first.finished)
    assert store.finish("i/o", token=1).size == 3
    assert store.flush() == ["i/o"]  # acknowledged again
    assert store.put("i/o", b"xyz", token=1).state == ObjectState.FINISHED  # same size: retry
    assert store.read("i/o") == b"abc"


def test_group_commit_of_many_tiny_puts(data_dir: Path) -> None:
    s = ObjectStore(data_dir)
    for i in range(1000):
        s.put(f"t{i}/out", f"value {i}".encode())
    assert row_count(data_dir) == 0  # nothing committed per call
    assert len(s.flush()) == 1000
    assert row_count(data_dir) == 1000
    assert not any((data_dir / "objects").iterdir())  # all inline: no files to fsync
    s2 = ObjectStore(data_dir)  # without close(): flushed is enough
    try:
        assert len(s2.list(states={ObjectState.FINISHED})) == 1000
        assert s2.read("t0/out") == b"value 0"
        assert s2.read("t999/out", 6) == b"999"
        assert s2.usage()["objects"] == 1000
    finally:
        s2.close()
        s.close()


# --------------------------------------------------------- other behaviour


def test_failed_flush_is_retried_whole(data_dir: Path) -> None:
    """A flush whose write failed (the node then calls flush_abort) unstages
    nothing: the next flush carries the same rows, file fsyncs, directory
    fsyncs and finished names, and makes them durable."""
    s = ObjectStore(data_dir)
    s.put("big/out", pattern(200_000, 3))  # a content file in a new directory
    s.put("small/out", b"tiny")  # inline: a row only
    failed = s.flush_begin()
    assert failed.sync_dirs == {data_dir / "objects", data_dir / "objects" / "big"}
    s.flush_abort(failed)  # as after flush_write raised
    for fd, _, _ in failed.files:  # flush_write closes these; it never ran here
        if fd is not None:
            os.close(fd)

    retry = s.flush_begin()
    assert retry.sync_dirs == failed.sync_dirs
    assert [path for _, path, _ in retry.files] == [data_dir / "objects" / "big" / "out"]
    assert sorted(row[0] for row in retry.rows) == ["big/out", "small/out"]
    s.flush_write(retry)
    assert sorted(s.flush_end(retry)) == ["big/out", "small/out"]

    s2 = ObjectStore(data_dir)  # no close() of the first: as after a kill
    try:
        assert read_all(s2, "big/out") == pattern(200_000, 3)
        assert s2.read("small/out") == b"tiny"
    finally:
        s2.close()
        s._meta.close()


def test_delete(data_dir: Path, events: list) -> None:
    s = ObjectStore(data_dir, on_change=lambda k, i: events.append((k, i)))
    s.put("x/big", pattern(100_000))
    s.put("x/small", b"s")
    s.flush()
    s.delete("x/big")
    s.delete("x/small")
    assert not (data_dir / "objects" / "x" / "big").exists()  # removed at once
    with pytest.raises(ObjectMissing):
        s.read("x/big")
    assert [k for k, _ in events][-2:] == ["deleted", "deleted"]
    assert s.usage()["bytes"] == 0
    s.close()
    s = ObjectStore(data_dir)
    try:
        assert s.list() == []
    finally:
        s.close()


def test_list_and_usage(store: ObjectStore) -> None:
    store.put("a/x", b"12345")
    store.create("a/y")
    store.create("b/z")
    store.populate("b/z", b"12")
    assert [i.name for i in store.list()] == ["a/x", "a/y", "b/z"]
    assert [i.name for i in store.list("a/")] == ["a/x", "a/y"]
    got = store.list(states={ObjectState.EMPTY, ObjectState.PARTIAL})
    assert [i.name for i in got] == ["a/y", "b/z"]
    u = store.usage()
    assert (u["objects"], u["bytes"]) == (3, 7)
    assert u["free"] > 0


def test_out_of_space_keeps_object_consistent(
    store: ObjectStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = pattern(100_000, 5)
    store.create("s/o")
    store.populate("s/o", first)

    def disk_fills_up(fd: int, data) -> int:  # writes a little, then the disk is full
        if len(data) > 10:
            return os.write(fd, bytes(data[:10]))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(content_mod, "_os_write", disk_fills_up)
    with pytest.raises(OutOfSpace, match="'s/o'") as e:
        store.populate("s/o", b"y" * 50_000)
    assert e.value.code == "no-space"
    assert "\n" not in str(e.value)
    with pytest.raises(OutOfSpace):
        store.put("s/new", b"z" * 100_000)
    info = store.stat("s/o")
    assert (info.state, info.size) == (ObjectState.PARTIAL, 100_000)
    assert read_all(store, "s/o") == first
    assert store.stat("s/new").state == ObjectState.EMPTY

    monkeypatch.undo()  # space freed: the producer continues where it was
    store.populate("s/o", b"tail", offset=100_000)
    store.finish("s/o", size=100_004)
    store.flush()
    assert read_all(store, "s/o") == first + b"tail"
