"""The writer's side of storage's descriptor socket (fdchannel.py): a large
value held in a sealed memory file goes to a storage node on this host as
the file, not its bytes. One connection per storage node, found once from
its `info` (its socket's path and host); anything amiss and the writer
sends the bytes on the bus as always."""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

import trio

from weft.bus.errors import BusError
from weft.bus.rpc import Peer
from weft.runtime.unixpath import unix_path

from .fdchannel import AVAILABLE, KEY_BYTES, host_id

log = logging.getLogger("weft.storage")

# Values from this size on go by descriptor (smaller ones cost less as bytes).
FD_MIN = 1 << 20
_HOST = host_id() if AVAILABLE else ""


class Channel:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    async def send(self, fd: int) -> bytes:
        """Pass `fd`; the key its `put` names it by."""
        key = os.urandom(KEY_BYTES)
        while True:
            try:
                socket.send_fds(self.sock, [key], [fd])
                return key
            except BlockingIOError:
                await trio.lowlevel.wait_writable(self.sock)


# Storage endpoint -> its channel, or None: not on this host, or no socket (asked once).
_channels: dict[str, Channel | None] = {}


def passable(data: Any) -> int | None:
    """The descriptor of a value held in a sealed memory file (segments.Segment), if worth passing."""
    fd = getattr(data, "fd", -1)
    return fd if AVAILABLE and isinstance(fd, int) and fd >= 0 and len(data) >= FD_MIN else None


async def channel(peer: Peer) -> Channel | None:
    """The descriptor channel to `peer`'s storage node, if it runs on this host."""
    endpoint = peer.endpoint
    if endpoint in _channels:
        return _channels[endpoint]
    _channels[endpoint] = None  # (asked once, even if asking fails)
    try:
        info = await peer.call("info", {}, timeout=2.0)
    except BusError as e:
        log.debug("storage %s: no info (%s); values go on the bus", endpoint, e)
        return None
    path = info.get("values_socket") if isinstance(info, dict) else None
    if not isinstance(path, str) or info.get("host") != _HOST:
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    try:
        sock.setblocking(False)
        tsock = trio.socket.from_stdlib_socket(sock)
        with trio.fail_after(2.0):
            with unix_path(path) as short:
                await tsock.connect(short)
            # Its greeting names the node: a socket at that path could be another node's.
            greeting = await tsock.recv(256)
    except (OSError, trio.TooSlowError) as e:
        sock.close()
        log.info("storage %s: descriptor socket %s not usable (%s); values go on the bus", endpoint, path, e)
        return None
    if greeting != str(info.get("node")).encode():
        sock.close()
        log.info("storage %s: descriptor socket %s is another node's; values go on the bus", endpoint, path)
        return None
    _channels[endpoint] = ch = Channel(sock)
    return ch


def forget(endpoint: str) -> None:
    """A channel that failed: asked again (info, connect) at the next large value."""
    ch = _channels.pop(endpoint, None)
    if ch is not None:
        ch.sock.close()
