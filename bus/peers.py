"""Peer handles kept for a process: a pool of one per endpoint, or one
peer for the length of an `async with` (a client with a single server)."""

from __future__ import annotations

from typing import Any

import trio

from .curve import Security
from .rpc import Peer


class PeerPool:
    """One peer handle per endpoint, their receive loops in one nursery."""

    def __init__(self, node_id: str, nursery: trio.Nursery, *, timeout: float = 10.0,
                 security: Security | None = None) -> None:
        self.node_id = node_id
        self.timeout = timeout
        self.security = security
        self._nursery = nursery
        self._peers: dict[str, Peer] = {}

    def get(self, endpoint: str) -> Peer:
        peer = self._peers.get(endpoint)
        if peer is None or peer.closed:
            peer = Peer(endpoint, self.node_id, timeout=self.timeout, security=self.security)
            self._peers[endpoint] = peer
            self._nursery.start_soon(peer.run)
        return peer

    def drop(self, endpoint: str) -> None:
        peer = self._peers.pop(endpoint, None)
        if peer is not None:
            peer.close()

    def close(self) -> None:
        for peer in self._peers.values():
            peer.close()
        self._peers.clear()


class connect:
    """`async with connect(endpoint, node_id) as peer:` for a client with one peer."""

    def __init__(self, endpoint: str, node_id: str, *, timeout: float = 10.0,
                 security: Security | None = None) -> None:
        self._endpoint = endpoint
        self._node_id = node_id
        self._timeout = timeout
        self._security = security
        self._cm: Any = None
        self._peer: Peer | None = None

    async def __aenter__(self) -> Peer:
        self._cm = trio.open_nursery()
        nursery = await self._cm.__aenter__()
        try:
            self._peer = Peer(self._endpoint, self._node_id, timeout=self._timeout, security=self._security)
        except BaseException as e:
            await self._cm.__aexit__(type(e), e, e.__traceback__)
            raise
        nursery.start_soon(self._peer.run)
        return self._peer

    async def __aexit__(self, *exc: Any) -> bool | None:
        assert self._peer is not None
        self._peer.close()
        try:
            return await self._cm.__aexit__(*exc)
        except BaseExceptionGroup as group:
            # The body's own error, wrapped by the nursery: hand it back as
            # itself so callers can catch what they raised.
            if len(group.exceptions) == 1 and not isinstance(group.exceptions[0], BaseExceptionGroup):
                raise group.exceptions[0] from None
            raise

