"""Copying finished objects from another storage node (repair).

The coordinator asks a node that lacks a copy to fetch it (`replicate`); the
bytes go storage to storage, never through the coordinator. The op answers at
once and each copy runs as a background task in the node's nursery, so no
handler ever waits on another storage node (the deadlock rule: two nodes
copying from each other cannot hold each other's answers). The other node is
reached only through storage's own client (client.py).

A copy's end is news on this node's event queue, which the coordinator
already polls: the object's `finished` event when it landed (durable), or its
`deleted` event when the copy failed (the partial bytes are removed, so a
failed copy leaves nothing behind that could pass for a copy).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import trio

from weft.bus.errors import BusError
from weft.bus.peers import PeerPool
from weft.protocol.enums import ErrorCode, ObjectState
from weft.protocol.objects import ObjectInfo, ObjectRef, Replicate, ReplicateReply

from .client import read_object
from .errors import StoreError
from .store import ObjectStore

log = logging.getLogger("weft.storage")

# Copies this node runs at once; more wait their turn (the coordinator bounds
# what it asks for too: this only protects the node from a flood).
COPY_SLOTS = 4
# Copies accepted (running or waiting) before further ones are refused `busy`.
COPY_QUEUE = 256


class Replicator:
    def __init__(self, store: ObjectStore, peers: Callable[[], PeerPool | None],
                 durable: Callable[[], Awaitable[None]], nursery: Callable[[], trio.Nursery | None]) -> None:
        self.store = store
        self._peers = peers
        self._durable = durable
        self._nursery = nursery
        self._slots = trio.Semaphore(COPY_SLOTS)
        self.copying: set[str] = set()

    def request(self, req: Replicate) -> ReplicateReply:
        """Start the copies that make sense here; answer at once."""
        accepted: list[str] = []
        refused: dict[str, dict] = {}
        nursery = self._nursery()
        for name, source in req.items:
            if name in self.copying:
                accepted.append(name)  # a repeated request: the copy is under way
                continue
            if nursery is None or len(self.copying) >= COPY_QUEUE:
                refused[name] = {"code": ErrorCode.BUSY, "message": "too many copies under way"}
                continue
            try:
                info = self.store.stat(name)
            except StoreError:
                info = None
            if info is not None and info.state in (ObjectState.FINISHED, ObjectState.DELEGATED):
                refused[name] = {"code": ErrorCode.EXISTS, "message": f"object {name!r} is here ({info.state})"}
                continue
            try:
                if info is None:
                    # Created at once so that a failure always has something to
                    # delete: the coordinator hears of it as `deleted`.
                    self.store.create(name, token=0)
            except StoreError as e:
                refused[name] = {"code": e.code, "message": str(e)}
                continue
            self.copying.add(name)
            nursery.start_soon(self._copy, name, source)
            accepted.append(name)
        return ReplicateReply(accepted, refused)

    async def _copy(self, name: str, source: str) -> None:
        try:
            async with self._slots:
                await self._fetch(name, source)
        except (BusError, StoreError, OSError, trio.TooSlowError) as e:
            log.warning("copying %s from %s failed: %s", name, source, e)
            self._discard(name)
        except Exception as e:  # a background task must not take the node down
            log.warning("copying %s from %s failed: %r", name, source, e)
            self._discard(name)
        except BaseException:
            self._discard(name)
            raise
        finally:
            self.copying.discard(name)

    async def _fetch(self, name: str, source: str) -> None:
        peers = self._peers()
        if peers is None:
            raise BusError("the node is shutting down", code=ErrorCode.SHUTTING_DOWN)
        peer = peers.get(source)
        info = ObjectInfo.from_wire(await peer.call("stat", ObjectRef(name).to_wire()))
        if info.state != ObjectState.FINISHED:
            raise BusError(f"the source holds {name!r} {info.state}, not finished", code=ErrorCode.NOT_FINISHED)
        store = self.store
        # The original's token: the copy is the same object, fenced alike.
        store.create(name, token=info.token, replace=True)
        token = info.token

        def write(data: bytes) -> None:
            store.populate(name, data, token=token)

        size = await read_object(peer, name, write)
        if size != info.size:
            raise BusError(f"copy of {name!r}: read {size} bytes of {info.size}", code=ErrorCode.SHORT_READ)
        store.finish(name, token=token, size=size)
        # Announced (finished event) only once durable, like every finish.
        await self._durable()

    def _discard(self, name: str) -> None:
        try:
            if self.store.stat(name).state != ObjectState.FINISHED:
                self.store.delete(name)
        except StoreError:
            pass
