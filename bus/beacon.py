"""UDP beacon for peer discovery: daemons announce (role, node, endpoint), listeners track them."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgpack
import trio

from .endpoint import is_connectable

log = logging.getLogger("weft.bus")

PROTOCOL_VERSION = 1
DEFAULT_ADDRESS = "127.255.255.255"
DEFAULT_PORT = 5670
MAX_DATAGRAM = 1024
# Larger than MAX_DATAGRAM so an oversized datagram arrives whole and is recognised as such,
# instead of being silently truncated into something that might happen to decode.
_RECV_BUFFER = 65536


@dataclass(frozen=True, slots=True)
class PeerInfo:
    role: str
    node: str
    endpoint: str  # e.g. "tcp://127.0.0.1:5571"


def encode_announcement(cluster: str, peer: PeerInfo) -> bytes:
    return msgpack.packb(
        {"weft": PROTOCOL_VERSION, "c": cluster, "r": peer.role, "n": peer.node, "e": peer.endpoint}
    )


def decode_announcement(data: bytes, cluster: str) -> PeerInfo | None:
    """Return the announced peer, or None if the datagram is not a valid one for `cluster`."""
    if len(data) > MAX_DATAGRAM:
        return None
    try:
        msg: Any = msgpack.unpackb(data, raw=False)
    except Exception:  # msgpack raises many unrelated types on garbage input
        return None
    if not isinstance(msg, dict):
        return None
    # `type(...) is int` because True == 1 would otherwise pass as a version.
    version = msg.get("weft")
    if type(version) is not int or version != PROTOCOL_VERSION:
        return None
    fields = [msg.get(k) for k in ("c", "r", "n", "e")]
    if not all(isinstance(f, str) and f for f in fields):
        return None
    c, role, node, endpoint = fields
    if c != cluster or not is_connectable(endpoint):
        return None
    return PeerInfo(role=role, node=node, endpoint=endpoint)


class Beacon:
    """Announces this daemon by UDP broadcast every `interval` seconds."""

    def __init__(
        self,
        *,
        role: str,
        node: str,
        endpoint: str,
        cluster: str = "default",
        address: str = DEFAULT_ADDRESS,
        port: int = DEFAULT_PORT,
        interval: float = 1.0,
    ) -> None:
        if not (interval > 0 and math.isfinite(interval)):
            raise ValueError(f"interval must be a positive number, got {interval!r}")
        self.info = PeerInfo(role=role, node=node, endpoint=endpoint)
        self.cluster = cluster
        self.address = address
        self.port = port
        self.interval = interval
        self.sent = 0
        self._payload = encode_announcement(cluster, self.info)
        # Fail at construction rather than announce forever into listeners that drop it.
        if len(self._payload) > MAX_DATAGRAM:
            raise ValueError(f"announcement is {len(self._payload)} bytes, limit is {MAX_DATAGRAM}")

    async def run(self) -> None:
        """Announce until cancelled. Send errors are retried every beat, never raised."""
        sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
        with sock:
            sock.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_BROADCAST, 1)
            failing = False
            while True:
                try:
                    await sock.sendto(self._payload, (self.address, self.port))
                except OSError as exc:
                    # A missing route or down interface tends to persist; warn once per outage
                    # so a long outage does not flood the log.
                    if not failing:
                        log.warning(
                            "beacon %s cannot send to %s:%d: %s (will keep retrying)",
                            self.info.node,
                            self.address,
                            self.port,
                            exc,
                        )
                        failing = True
                    else:
                        log.debug("beacon %s send failed again: %s", self.info.node, exc)
                else:
                    self.sent += 1
                    if failing:
                        log.info(
                            "beacon %s sending to %s:%d again",
                            self.info.node,
                            self.address,
                            self.port,
                        )
                        failing = False
                await trio.sleep(self.interval)


class BeaconListener:
    """Learns peers from beacons and forgets those silent for longer than `expiry` seconds."""

    def __init__(
        self,
        *,
        cluster: str = "default",
        port: int = DEFAULT_PORT,
        bind: str = "0.0.0.0",
        expiry: float = 5.0,
        ignore_node: str | None = None,
        on_found: Callable[[PeerInfo], None] | None = None,
        on_lost: Callable[[PeerInfo], None] | None = None,
    ) -> None:
        if not (expiry > 0 and math.isfinite(expiry)):
            raise ValueError(f"expiry must be a positive number, got {expiry!r}")
        self.cluster = cluster
        self.port = port
        self.bind = bind
        self.expiry = expiry
        self.ignore_node = ignore_node
        self.on_found = on_found
        self.on_lost = on_lost
        self.peers: dict[str, PeerInfo] = {}
        self.received = 0  # every datagram, valid or not
        self.ignored = 0  # datagrams that were not a valid announcement for this cluster
        self._last_seen: dict[str, float] = {}

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Bind, report started, then receive and expire peers until cancelled."""
        sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
        with sock:
            # Both options so every daemon on one host can listen on the same port and each
            # receives every broadcast.
            sock.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_REUSEADDR, 1)
            reuseport = getattr(trio.socket, "SO_REUSEPORT", None)
            if reuseport is not None:
                sock.setsockopt(trio.socket.SOL_SOCKET, reuseport, 1)
            await sock.bind((self.bind, self.port))
            task_status.started()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._sweep_loop)
                await self._receive_loop(sock)

    async def _receive_loop(self, sock: trio.socket.SocketType) -> None:
        while True:
            data, addr = await sock.recvfrom(_RECV_BUFFER)
            self.received += 1
            peer = decode_announcement(data, self.cluster)
            if peer is None:
                self.ignored += 1
                log.debug("ignored %d-byte datagram from %s", len(data), addr)
                continue
            if peer.node == self.ignore_node:
                continue
            self._last_seen[peer.node] = trio.current_time()
            previous = self.peers.get(peer.node)
            if previous != peer:
                # A changed endpoint or role means the daemon restarted differently; consumers
                # must reconnect, so it is reported like a new peer.
                self.peers[peer.node] = peer
                log.info("found %s %s at %s", peer.role, peer.node, peer.endpoint)
                self._call(self.on_found, peer)

    async def _sweep_loop(self) -> None:
        while True:
            await trio.sleep(self.expiry / 4)
            self.expire(trio.current_time())

    def expire(self, now: float) -> None:
        """Forget peers not heard from for more than `expiry` seconds before `now`."""
        for node, seen in list(self._last_seen.items()):
            if now - seen > self.expiry:
                del self._last_seen[node]
                peer = self.peers.pop(node)
                log.info("lost %s %s (silent for %.1fs)", peer.role, node, now - seen)
                self._call(self.on_lost, peer)

    def forget(self, node: str) -> None:
        """Forget `node` (no on_lost): its next beacon is reported as found again."""
        self._last_seen.pop(node, None)
        self.peers.pop(node, None)

    @staticmethod
    def _call(callback: Callable[[PeerInfo], None] | None, peer: PeerInfo) -> None:
        if callback is None:
            return
        # A buggy callback must not stop discovery for everyone else in the process.
        try:
            callback(peer)
        except Exception:
            log.exception("beacon callback %r failed for %s", callback, peer.node)
