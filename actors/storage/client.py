"""Talking to a storage node: the calls compute, the coordinator and the CLI share.

This module is the storage role's own client; per the deadlock rule nothing
in actors/storage/ imports a client of any *other* role.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

from bus.errors import BusError, RemoteError
from bus.rpc import Peer

log = logging.getLogger("weft.storage")

CHUNK = 1 << 20
# Up to this size an output goes in one `put` (create-or-reuse, write, finish).
PUT_MAX = CHUNK


class NotFinished(BusError):
    """The object exists but its producer has not finished it."""

    code = "not-finished"


class Redirected(BusError):
    """The object is delegated to one this storage node does not hold."""

    code = "redirected"

    def __init__(self, name: str, target: str) -> None:
        super().__init__(f"object {name!r} is delegated to {target!r}, held elsewhere")
        self.target = target


async def read_chunks(
    peer: Peer, name: str, *, require_finished: bool = True, chunk: int = CHUNK, timeout: float | None = None
) -> AsyncIterator[bytes]:
    """Yield an object's bytes in chunks, following delegation on this node."""
    offset = 0
    while True:
        r = await peer.call("read", {"name": name, "offset": offset, "length": chunk}, timeout=timeout)
        state = r.get("state")
        if state == "delegated":
            raise Redirected(name, r.get("target", "?"))
        if require_finished and state != "finished":
            raise NotFinished(f"object {name!r} is not finished (state {state})")
        data = r["data"]
        if data:
            yield data
            offset += len(data)
        if r.get("eof") or not data:
            return


async def read_all(peer: Peer, name: str, **kw: Any) -> bytes:
    parts = [c async for c in read_chunks(peer, name, **kw)]
    return parts[0] if len(parts) == 1 else b"".join(parts)


class ObjectWriter:
    """Streams one output to storage: populate chunks as they come, then finish."""

    def __init__(self, peer: Peer, name: str, token: int) -> None:
        self.peer = peer
        self.name = name
        self.token = token
        self.size = 0
        self._buf = bytearray()
        self._started = False

    async def write(self, data: bytes) -> None:
        self._buf += data
        while len(self._buf) >= CHUNK:
            await self._send(bytes(self._buf[:CHUNK]))
            del self._buf[:CHUNK]

    async def _send(self, data: bytes) -> None:
        body = {"name": self.name, "data": data, "token": self.token, "offset": self.size}
        try:
            await self.peer.call("populate", body)
        except RemoteError as e:
            # The coordinator creates outputs while the task starts; if our
            # first chunk overtook that create, create it ourselves.
            if e.code != "missing" or self.size:
                raise
            try:
                await self.peer.call("create", {"name": self.name, "token": self.token})
            except RemoteError as e2:
                if e2.code != "exists":
                    raise
            await self.peer.call("populate", body)
        self.size += len(data)
        self._started = True

    async def close(self) -> dict:
        """Finish the object; returns its info once storage made it durable."""
        if not self._started:
            # Small output: one message does it all.
            return await self.peer.call("put", {"name": self.name, "data": bytes(self._buf), "token": self.token})
        if self._buf:
            await self._send(bytes(self._buf))
            self._buf.clear()
        return await self.peer.call("finish", {"name": self.name, "token": self.token, "size": self.size})


class ReplicatedWriter:
    """Writes one output to several storage nodes at once (replicas).

    Each chunk goes to every replica concurrently. A replica that fails is
    dropped and the write goes on with the others: the output is finished when
    at least one replica acknowledged its finish, so losing a storage node
    mid-write does not cost a rerun. Only when every replica failed does the
    write fail (with the first replica's error).
    """

    def __init__(self, writers: list[ObjectWriter]) -> None:
        self.writers = writers
        self.dropped: list[tuple[str, Exception]] = []

    async def _all(self, method: str, *args: Any) -> list[Any]:
        import trio

        results: dict[int, Any] = {}
        errors: dict[int, Exception] = {}

        async def one(i: int, w: ObjectWriter) -> None:
            try:
                results[i] = await getattr(w, method)(*args)
            except Exception as e:
                errors[i] = e

        async with trio.open_nursery() as nursery:
            for i, w in enumerate(self.writers):
                nursery.start_soon(one, i, w)
        if not results:
            raise errors[min(errors)]
        for i in sorted(errors, reverse=True):
            w = self.writers.pop(i)
            self.dropped.append((w.peer.endpoint, errors[i]))
            log.warning("replica of %s on %s dropped: %s", w.name, w.peer.endpoint, errors[i])
        return [results[i] for i in sorted(results)]

    async def write(self, data: bytes) -> None:
        await self._all("write", data)

    async def close(self) -> dict:
        return (await self._all("close"))[0]


async def write_bytes(peer: Peer, name: str, data: bytes, token: int) -> dict:
    w = ObjectWriter(peer, name, token)
    if len(data) <= PUT_MAX:
        w._buf += data
    else:
        await w.write(data)
    return await w.close()
