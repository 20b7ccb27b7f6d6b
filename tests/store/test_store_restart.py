"""The storage node's object store across restarts, on real files and a real
SQLite database: reopened after a close and after a kill, and what a partial
object keeps. (Shared fixtures: conftest.py.)"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from weft.actors.model import ObjectState
from weft.actors.storage.errors import ObjectMissing
from weft.actors.storage.store import ObjectStore

from .conftest import MiB, pattern, read_all

REPO = Path(__file__).resolve().parents[2]


# ----------------------------------------------------------------- restart


def populate_for_restart(s: ObjectStore) -> dict[str, bytes]:
    small, large = pattern(1000, 1), pattern(3 * MiB, 2)
    s.put("a/small", small)
    s.create("a/large")
    for i in range(3):
        s.populate("a/large", large[i * MiB : (i + 1) * MiB])
    s.finish("a/large")
    s.create("a/empty", token=7)
    s.create("a/partial", token=2)
    s.populate("a/partial", large[: 2 * MiB], token=2)  # large partial: lives in a file
    s.put("b/target", b"the end")
    s.create("b/link")
    s.delegate("b/link", "b/target")
    return {"a/small": small, "a/large": large, "partial": large[: 2 * MiB]}


def check_after_restart(s: ObjectStore, content: dict[str, bytes]) -> None:
    assert s.stat("a/small").state == ObjectState.FINISHED
    assert read_all(s, "a/small") == content["a/small"]
    assert s.stat("a/large").size == 3 * MiB
    assert read_all(s, "a/large") == content["a/large"]
    empty = s.stat("a/empty")
    assert (empty.state, empty.size, empty.token) == (ObjectState.EMPTY, 0, 7)
    partial = s.stat("a/partial")
    assert (partial.state, partial.size, partial.token) == (ObjectState.PARTIAL, 2 * MiB, 2)
    assert read_all(s, "a/partial") == content["partial"]
    assert s.resolve("b/link")[0] == "b/target"
    assert s.read("b/link") == b"the end"
    # The producer can carry on where the bytes on disk end.
    s.populate("a/partial", b"more", token=2, offset=2 * MiB)
    s.finish("a/partial", token=2, size=2 * MiB + 4)
    assert s.read("a/partial", 2 * MiB - 2) == content["partial"][-2:] + b"more"


def test_reopen_after_close(data_dir: Path) -> None:
    s = ObjectStore(data_dir)
    content = populate_for_restart(s)
    s.close()
    s = ObjectStore(data_dir)
    try:
        check_after_restart(s, content)
        assert s.usage()["objects"] == 6
    finally:
        s.close()


def test_reopen_after_kill(data_dir: Path) -> None:
    """A process killed after a flush: flushed state survives, later staging does not."""
    script = textwrap.dedent(
        f"""
        import os, sys
        from pathlib import Path
        sys.path.insert(0, {str(REPO)!r})
        from tests.store.test_store_restart import populate_for_restart
        from weft.actors.storage.store import ObjectStore
        s = ObjectStore(Path({str(data_dir)!r}))
        populate_for_restart(s)
        s.flush()
        # Staged but never flushed:
        s.put("c/unflushed", b"lost")
        s.create("c/spilled")
        s.populate("c/spilled", b"x" * 100_000)  # writes a file no durable row accounts for
        s.delete("a/empty")
        os._exit(9)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True)
    assert proc.returncode == 9, proc.stderr.decode()
    s = ObjectStore(data_dir)
    try:
        check_after_restart(s, _expected())
        for name in ("c/unflushed", "c/spilled"):
            with pytest.raises(ObjectMissing):
                s.stat(name)
        assert not (data_dir / "objects" / "c").exists()  # the orphaned file is swept
    finally:
        s.close()


def _expected() -> dict[str, bytes]:
    large = pattern(3 * MiB, 2)
    return {"a/small": pattern(1000, 1), "a/large": large, "partial": large[: 2 * MiB]}


def test_inline_partial_bytes_survive_only_if_flushed(data_dir: Path) -> None:
    s = ObjectStore(data_dir)
    s.create("p/flushed")
    s.populate("p/flushed", b"abc")
    s.create("p/unflushed")
    s.flush()
    s.populate("p/flushed", b"def")  # after the flush: lost
    s.populate("p/unflushed", b"xyz")  # never flushed: comes back empty
    s2 = ObjectStore(data_dir)  # no close(): as after a kill
    try:
        info = s2.stat("p/flushed")
        assert (info.state, info.size) == (ObjectState.PARTIAL, 3)
        assert s2.read("p/flushed") == b"abc"
        assert s2.stat("p/unflushed").state == ObjectState.EMPTY
    finally:
        s2.close()
        s._meta.close()  # the "killed" one: just release its handles
