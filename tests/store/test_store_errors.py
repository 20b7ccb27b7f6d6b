"""The storage node's object store refuses what it must, naming it: an
existing or finished object, a missing one, a stale token, bad offsets and
sizes, delegation cycles, bad names. (Shared fixtures: conftest.py.)"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from weft.actors.model import ObjectState, SpecError
from weft.actors.storage.errors import (
    DelegationCycle,
    Fenced,
    ObjectExists,
    ObjectImmutable,
    ObjectMissing,
    StoreError,
)
from weft.actors.storage.store import ObjectStore

from .conftest import MiB, pattern

# ------------------------------------------------------------------ errors


def test_create_existing(store: ObjectStore) -> None:
    store.create("j/o")
    with pytest.raises(ObjectExists, match="'j/o'") as e:
        store.create("j/o")
    assert e.value.code == "exists"


def test_write_finished(store: ObjectStore) -> None:
    store.put("j/o", b"done")
    with pytest.raises(ObjectImmutable, match="object 'j/o' is finished; it cannot be written"):
        store.populate("j/o", b"more")
    with pytest.raises(ObjectImmutable):
        store.finish("j/o", size=99)
    with pytest.raises(ObjectImmutable):
        store.put("j/o", b"different")
    with pytest.raises(ObjectImmutable):
        store.delegate("j/o", "k/o")
    with pytest.raises(ObjectImmutable, match="cannot be replaced"):
        store.create("j/o", replace=True, token=5)
    assert store.read("j/o") == b"done"


def test_missing(store: ObjectStore) -> None:
    for call in (
        lambda: store.read("no/such"),
        lambda: store.stat("no/such"),
        lambda: store.populate("no/such", b"x"),
        lambda: store.finish("no/such"),
        lambda: store.delete("no/such"),
        lambda: store.resolve("no/such"),
    ):
        with pytest.raises(ObjectMissing, match="'no/such' does not exist") as e:
            call()
        assert e.value.code == "missing"


def test_stale_token_is_fenced(store: ObjectStore) -> None:
    store.create("j/o", token=2)
    store.populate("j/o", b"abc", token=2)
    with pytest.raises(Fenced, match="token 1 is stale") as e:
        store.populate("j/o", b"zzz", token=1)
    assert e.value.code == "fenced"
    with pytest.raises(Fenced):
        store.finish("j/o", token=3)
    with pytest.raises(Fenced):
        store.create("j/o", token=1, replace=True)
    assert store.read("j/o") == b"abc"


def test_replace_scavenges_partial(store: ObjectStore, data_dir: Path, events: list) -> None:
    store.create("j/o", token=1)
    store.populate("j/o", pattern(2 * MiB), token=1)  # a dead producer's half-written file
    info = store.create("j/o", token=2, replace=True)
    assert (info.state, info.size, info.token) == (ObjectState.EMPTY, 0, 2)
    assert not (data_dir / "objects" / "j" / "o").exists()
    with pytest.raises(Fenced):
        store.populate("j/o", b"late write from the dead one", token=1)
    store.put("j/o", b"new", token=2)
    assert store.read("j/o") == b"new"
    assert [k for k, _ in events] == ["created", "partial", "created", "finished"]
    assert store.usage()["bytes"] == 3


def test_bad_offset_and_size(store: ObjectStore) -> None:
    store.create("j/o")
    store.populate("j/o", b"abc", offset=0)
    with pytest.raises(StoreError, match="offset 3, not 0") as e:
        store.populate("j/o", b"abc", offset=0)  # a retried chunk is not appended twice
    assert e.value.code == "bad-offset"
    with pytest.raises(StoreError) as e:
        store.finish("j/o", size=10)
    assert e.value.code == "bad-size"
    assert store.stat("j/o").state == ObjectState.PARTIAL
    assert store.read("j/o") == b"abc"


def test_delegation_cycles(store: ObjectStore) -> None:
    for n in ("c/a", "c/b", "c/c"):
        store.create(n)
    with pytest.raises(DelegationCycle) as e:
        store.delegate("c/a", "c/a")
    assert e.value.code == "delegation-cycle"
    store.delegate("c/a", "c/b")
    store.delegate("c/b", "c/c")
    with pytest.raises(DelegationCycle, match="'c/c'"):
        store.delegate("c/c", "c/a")
    assert store.stat("c/c").state == ObjectState.EMPTY


BAD_NAMES = ["../x", "a/../../b", "/etc/passwd", "x", "", "a/b/c", "../../etc/passwd", "a/.."]


@pytest.mark.parametrize("bad", BAD_NAMES)
def test_bad_names_rejected(data_dir: Path, bad: str) -> None:
    parent = data_dir.parent.parent  # tmp_path's parent

    def snapshot() -> set[str]:
        out = set()
        for root, dirs, files in os.walk(parent):
            for f in dirs + files:
                p = Path(root, f)
                if p != data_dir and data_dir not in p.parents:
                    out.add(str(p))
        return out

    before = snapshot()
    s = ObjectStore(data_dir)
    try:
        s.create("ok/o")
        calls = [
            lambda: s.create(bad),
            lambda: s.put(bad, b"x" * 100_000),
            lambda: s.put(bad, b"x"),
            lambda: s.populate(bad, b"x"),
            lambda: s.finish(bad),
            lambda: s.read(bad),
            lambda: s.stat(bad),
            lambda: s.delete(bad),
            lambda: s.delegate("ok/o", bad),
        ]
        for call in calls:
            with pytest.raises(SpecError):
                call()
        s.flush()
        assert [i.name for i in s.list()] == ["ok/o"]
    finally:
        s.close()
    assert snapshot() == before
