"""Storage and compute daemons end to end, 200 MiB through each with bounded
memory: an object streamed into storage and read back, a command's output
streamed through compute. Each starts the daemons it measures (`daemons`).
(Jobs run on healthy daemons: test_storage_compute.py; daemons killed and
restarted: test_storage_compute_faults.py.)
"""

from __future__ import annotations

import hashlib
import sys

import trio

from weft.actors.model import JobSpec

from .conftest import (
    Daemons,
    job_id,
    peer,
    rss,
    start_task,
    wait_done,
)

PY = sys.executable
MiB = 1 << 20


# -- 6. 200 MiB through storage and through compute, with bounded memory -----------------

BIG_N = 200  # MiB
RSS_LIMIT = 64 * MiB
_BLOCK = bytes(range(256)) * 4096  # 1 MiB


def big_chunk(i: int) -> bytes:
    return i.to_bytes(8, "big") + _BLOCK[8:]


def big_sha() -> str:
    h = hashlib.sha256()
    for i in range(BIG_N):
        h.update(big_chunk(i))
    return h.hexdigest()


class PeakRss:
    """Samples processes' RSS every few ms while running in a nursery."""

    def __init__(self, *pids: int) -> None:
        self.pids = pids
        self.base = {p: rss(p) for p in pids}
        self.peak = dict(self.base)

    def sample(self) -> None:
        for p in self.pids:
            self.peak[p] = max(self.peak[p], rss(p))

    async def run(self) -> None:
        while True:
            self.sample()
            await trio.sleep(0.005)

    def growth(self, pid: int) -> int:
        self.sample()
        return self.peak[pid] - self.base[pid]


async def read_sha(storage, name: str) -> tuple[str, int]:
    """Read an object chunk by chunk; its sha256 and size."""
    h, off = hashlib.sha256(), 0
    while True:
        r = await storage.call("read", {"name": name, "offset": off, "length": MiB})
        assert r["state"] == "finished"
        h.update(r["data"])
        off += len(r["data"])
        if r["eof"]:
            return h.hexdigest(), off


async def test_200mib_object_streams_through_storage_in_bounded_memory(daemons: Daemons) -> None:
    st = daemons.storage("storage-big")
    name = "big/blob"
    with trio.fail_after(60):
        async with peer(st.endpoint, timeout=30) as s:
            await s.call("create", {"name": name})
            rss_ = PeakRss(st.pid)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(rss_.run)
                h = hashlib.sha256()
                for i in range(BIG_N):
                    chunk = big_chunk(i)
                    h.update(chunk)
                    await s.call("populate", {"name": name, "data": chunk, "offset": i * MiB})
                info = await s.call("finish", {"name": name, "size": BIG_N * MiB})
                assert (info["state"], info["size"]) == ("finished", BIG_N * MiB)
                assert await read_sha(s, name) == (h.hexdigest(), BIG_N * MiB)
                nursery.cancel_scope.cancel()
            growth = rss_.growth(st.pid)
            await s.call("delete", {"name": name})
    assert growth < RSS_LIMIT, f"storage RSS grew by {growth / MiB:.0f} MiB for a 200 MiB object"


BIG_WRITER = rf"""
import os
block = bytes(range(256)) * 4096
with open(os.path.join(os.environ["WEFT_OUTPUTS"], "big"), "wb") as f:
    for i in range({BIG_N}):
        f.write(i.to_bytes(8, "big") + block[8:])
"""


async def test_200mib_output_goes_through_compute_in_bounded_memory(daemons: Daemons) -> None:
    st = daemons.spawn("storage", "storage-big-out")
    cp = daemons.spawn("compute", "compute-big", "--slots", "1")
    daemons.ready(st)
    daemons.ready(cp)
    job = job_id("big")
    name = f"{job}/big"
    spec = JobSpec(command=[PY, "-c", BIG_WRITER], outputs=["big"])
    with trio.fail_after(60):
        async with peer(st.endpoint, timeout=30) as s, peer(cp.endpoint) as c:
            await s.call("create", {"name": name})
            rss_ = PeakRss(cp.pid, st.pid)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(rss_.run)
                await start_task(c, job, spec.to_wire(), outputs={"big": st.endpoint})
                r = await wait_done(c, job, timeout=45)
                nursery.cancel_scope.cancel()
            assert r["outcome"] == "success", r
            info = await s.call("stat", {"name": name})
            assert (info["state"], info["size"]) == ("finished", BIG_N * MiB)
            assert await read_sha(s, name) == (big_sha(), BIG_N * MiB)
            compute_growth, storage_growth = rss_.growth(cp.pid), rss_.growth(st.pid)
            await c.call("delete", {"job": job})
            await s.call("delete", {"name": name})
    assert compute_growth < RSS_LIMIT, f"compute RSS grew by {compute_growth / MiB:.0f} MiB"
    assert storage_growth < RSS_LIMIT, f"storage RSS grew by {storage_growth / MiB:.0f} MiB"
