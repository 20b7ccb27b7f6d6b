"""Large callable values in memory files of their own (actors/compute/segments.py),
with real worker processes: a large result comes back as a sealed read-only
memory file that no one can change, a consumer's call gets exactly its bytes
(as bytes) without the node writing them anywhere, and no descriptor is left
behind once a value is dropped."""

from __future__ import annotations

import gc
import mmap
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from weft.actors.compute import segments
from weft.actors.compute.pool import WorkerPool
from weft.actors.compute.segments import SEG_MIN, Segment

pytestmark = pytest.mark.skipif(not segments.AVAILABLE, reason="needs memfd, sealing and descriptor passing")

HELPERS = """
import hashlib

def sized(n, seed="a"):
    return (seed.encode() * int(n))[:int(n)]

def describe(data):
    return f"{type(data).__name__} {len(data)} {hashlib.sha256(data).hexdigest()}".encode()
"""


@pytest.fixture
async def pool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[WorkerPool]:
    (tmp_path / "weft_segment_helpers.py").write_text(HELPERS)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    async with WorkerPool(2) as p:
        yield p


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_a_large_result_is_a_sealed_read_only_memory_file(pool: WorkerPool) -> None:
    got = await pool.run("weft_segment_helpers:sized", {"n": str(3 * SEG_MIN), "seed": "xyz"})
    assert type(got) is Segment
    assert bytes(got) == (b"xyz" * SEG_MIN)[: 3 * SEG_MIN]
    # Nobody can change what the node stores and serves: not the worker, not us.
    with pytest.raises(PermissionError):
        os.pwrite(got.fd, b"changed", 0)
    with pytest.raises(PermissionError):
        os.ftruncate(got.fd, 10)
    with pytest.raises(PermissionError):
        mmap.mmap(got.fd, 0, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)


async def test_small_results_stay_bytes(pool: WorkerPool) -> None:
    got = await pool.run("weft_segment_helpers:sized", {"n": str(SEG_MIN - 1)})
    assert type(got) is bytes and len(got) == SEG_MIN - 1


async def test_a_segment_input_reaches_the_callable_as_its_bytes(pool: WorkerPool) -> None:
    value = await pool.run("weft_segment_helpers:sized", {"n": str(2 * SEG_MIN + 5), "seed": "q"})
    import hashlib

    want = f"bytes {2 * SEG_MIN + 5} {hashlib.sha256(bytes(value)).hexdigest()}".encode()
    for _ in range(3):  # either worker, more than once: the value is not used up
        assert await pool.run("weft_segment_helpers:describe", {"data": value}) == want
    # With other inputs around it, each lands under its own name.
    got = await pool.run("weft.actors.builtins:concat", {"a": b"<", "b": value, "c": value, "d": b">"})
    assert bytes(got) == b"<" + bytes(value) * 2 + b">"
    # The node wrote none of it into a worker's input memory file: each
    # worker read the value's own file.
    assert all(os.fstat(w.shm_in).st_size == 0 for w in pool._workers)


async def test_no_descriptor_is_left_once_values_are_dropped(pool: WorkerPool) -> None:
    await pool.run("weft_segment_helpers:sized", {"n": str(SEG_MIN)})  # warm both sides
    gc.collect()
    before = open_fds()
    for i in range(20):
        value = await pool.run("weft_segment_helpers:sized", {"n": str(SEG_MIN + i)})
        await pool.run("weft_segment_helpers:describe", {"data": value})
        del value
    gc.collect()
    assert open_fds() <= before


def test_a_file_that_cannot_be_sealed_is_read_once_instead(tmp_path: Path) -> None:
    fd = os.memfd_create("t", os.MFD_ALLOW_SEALING)
    os.pwrite(fd, b"abc" * 1000, 0)
    writable = mmap.mmap(fd, 3000)  # a writable shared mapping: sealing refuses
    try:
        before = open_fds()
        got = segments.adopt(os.dup(fd), 3000)
        assert type(got) is bytes and got == b"abc" * 1000
        assert open_fds() == before  # the dup was closed
    finally:
        writable.close()
        os.close(fd)
    fd = os.memfd_create("t", os.MFD_ALLOW_SEALING)
    os.pwrite(fd, b"abc", 0)
    with pytest.raises(OSError, match="holds 3 bytes"):
        segments.adopt(fd, 10)  # shorter than the reply said: refused, and closed
    with pytest.raises(OSError):
        os.fstat(fd)


def test_the_value_cache_keeps_memory_files_within_its_descriptor_share() -> None:
    from weft.actors.compute.valuecache import ValueCache

    cache = ValueCache(64 * SEG_MIN)
    cache.max_files = 2
    values = [segments.adopt(segments.make(bytes([i]) * SEG_MIN), SEG_MIN) for i in range(3)]
    assert all(type(v) is Segment for v in values)
    assert [cache.put(f"j{i}/result", v) for i, v in enumerate(values)] == [True, True, False]
    assert cache.refused == 1 and cache.files == 2
    cache.forget_job("j0")  # a file given back makes room for the next
    assert cache.files == 1 and cache.put("j2/result", values[2])
    assert bytes(cache.get("j2/result")[:3]) == b"\x02\x02\x02"


async def test_a_pool_without_memory_files_gets_a_segment_down_its_pipe(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from weft.actors.compute import pool as pool_mod

    (tmp_path / "weft_segment_helpers.py").write_text(HELPERS)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    value = segments.adopt(segments.make(b"z" * SEG_MIN), SEG_MIN)
    monkeypatch.setattr(pool_mod, "_HAVE_MEMFD", False)
    async with WorkerPool(1) as p:
        import hashlib

        want = f"bytes {SEG_MIN} {hashlib.sha256(b'z' * SEG_MIN).hexdigest()}".encode()
        assert await p.run("weft_segment_helpers:describe", {"data": value}) == want
