"""A large output leaves the compute node with several chunks in flight.

The bytes arriving right proves nothing about concurrency: one chunk at a
time gives the same bytes. Here a real compute node writes a multi-chunk
output to a storage stand-in on 127.0.0.1 (a weft `Server` that keeps what
it is sent) which counts the `populate` calls it holds unanswered: each
waits, briefly, for a second one to arrive. With a write window of 1 no
second call ever comes while the first is held.
"""

from __future__ import annotations

import random
from typing import Any

import trio

from weft.actors.model import JobSpec
from weft.actors.storage.client import CHUNK, write_bytes
from weft.bus.rpc import CallContext, Server
from weft.localcluster.cluster import Proc

from .conftest import Shared, job_id, peer, start_task, wait_done
from helpers import free_endpoint

HOLD = 2.0  # how long a populate waits for company before answering alone



class CountingStorage:
    """Takes create/populate/finish/put like a storage node, keeping the bytes.

    `most` is the largest number of populates it held unanswered at once."""

    def __init__(self) -> None:
        self.server = Server("storage-standin", role="storage")
        self.parts: dict[str, dict[int, bytes]] = {}
        self.outstanding = 0
        self.most = 0
        self.populates = 0
        self._company = trio.Event()
        for op, fn in (("create", self._create), ("populate", self._populate),
                       ("finish", self._finish), ("put", self._put)):
            self.server.add(op, fn)

    def _create(self, body: Any, ctx: CallContext) -> dict:
        self.parts.setdefault(body["name"], {})
        return {"name": body["name"], "state": "open", "size": 0, "token": body.get("token", 0)}

    async def _populate(self, body: Any, ctx: CallContext) -> dict:
        self.populates += 1
        self.parts.setdefault(body["name"], {})[body["offset"]] = bytes(body["data"])
        self.outstanding += 1
        self.most = max(self.most, self.outstanding)
        if self.outstanding >= 2:
            self._company.set()
        try:
            with trio.move_on_after(HOLD):
                await self._company.wait()
        finally:
            self.outstanding -= 1
            if self.outstanding == 0:
                self._company = trio.Event()
        return {"size": len(self.assembled(body["name"]))}

    def _finish(self, body: Any, ctx: CallContext) -> dict:
        size = len(self.assembled(body["name"]))
        return {"name": body["name"], "state": "finished", "size": size, "token": body.get("token", 0),
                "target": None, "node": "storage-standin"}

    def _put(self, body: Any, ctx: CallContext) -> dict:
        self.parts[body["name"]] = {0: bytes(body["data"])}
        return self._finish(body, ctx)

    def assembled(self, name: str) -> bytes:
        parts = self.parts.get(name, {})
        out = bytearray()
        for offset in sorted(parts):
            assert offset == len(out), f"{name}: a gap or overlap at {offset} (have {len(out)})"
            out += parts[offset]
        return bytes(out)


async def test_a_large_output_is_written_with_several_chunks_in_flight(shared: Shared, fresh_compute: Proc) -> None:
    data = random.Random(11).randbytes(6 * CHUNK + 777)
    source = f"{job_id('window-src')}/out"
    job = job_id("window")
    spec = JobSpec(call="weft.actors.builtins:concat", refs={"a": source}, outputs=["result"]).to_wire()
    standin = CountingStorage()
    with trio.fail_after(90):
        async with trio.open_nursery() as nursery:
            await nursery.start(standin.server.serve, free_endpoint())
            async with peer(shared.a) as a, peer(fresh_compute.endpoint) as c:
                await write_bytes(a, source, data, 1)
                await start_task(c, job, spec, inputs={"a": [[shared.a], source]},
                                 outputs={"result": standin.server.endpoint}, token=1)
                done = await wait_done(c, job, timeout=60)
            nursery.cancel_scope.cancel()
    assert done["outcome"] == "success", done
    assert standin.assembled(f"{job}/result") == data
    assert standin.populates >= 6, standin.populates  # it did move in chunks
    # The first chunk goes alone (it may create the object); the rest overlap.
    assert standin.most >= 2, f"at most {standin.most} populate in flight at once"
