"""What the object-store tests of this folder share (test_store.py,
test_store_restart.py, test_store_errors.py): a store on a fresh data dir
with the events it emits (fixtures), test bytes that show an off-by-one, and
a whole-object read."""

from __future__ import annotations

from pathlib import Path

import pytest

from weft.actors.storage.store import ObjectInfo, ObjectStore

MiB = 1 << 20


def pattern(n: int, seed: int = 0) -> bytes:
    """Non-repeating-looking bytes so an off-by-one in a range read shows."""
    block = bytes((i * 31 + seed * 7 + (i >> 8)) & 0xFF for i in range(4096))
    return (block * (n // len(block) + 1))[:n]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def events() -> list[tuple[str, ObjectInfo]]:
    return []


@pytest.fixture
def store(data_dir: Path, events: list[tuple[str, ObjectInfo]]):
    s = ObjectStore(data_dir, on_change=lambda kind, info: events.append((kind, info)))
    yield s
    s.close()


def read_all(s: ObjectStore, name: str) -> bytes:
    out = bytearray()
    while chunk := s.read(name, len(out)):
        out += chunk
    return bytes(out)
