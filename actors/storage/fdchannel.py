"""Large values from a compute node on the same host, by descriptor.

A compute node holding a value in a sealed memory file (compute/segments.py)
whose storage node runs on its host passes the file itself over this unix
socket (SCM_RIGHTS) instead of sending its bytes over the bus: storage then
writes the object file straight from it (sendfile, content.SealedFile). Per 10 MiB
value that saves the socket copies on both sides (the compute node's send,
storage's receive into ZeroMQ's buffers) and the 10 messages of its chunks.

Only the bytes come this way. The `put` still travels on the bus with the
object's name, fencing token and size, and a key naming the descriptor sent
here; storage's checks (token, size, a user upload's hash) are those of any
`put`. Who may pass a descriptor: the socket is 0600 in the data directory
and a connection from another user is closed at once (SO_PEERCRED), so
another local user cannot put bytes in, and without a `put` the bus admits
a descriptor writes nothing. A file that is not sealed against writes is
refused (its bytes could change under the write): the writer then sends
them on the bus, as it does on any failure here.

Storage only receives on this socket; it calls no one (the deadlock rule).
"""

from __future__ import annotations

import array
import fcntl
import logging
import os
import socket
import struct
from pathlib import Path

import trio

from weft.protocol.enums import ErrorCode
from weft.runtime.unixpath import unix_path

from .content import SealedFile
from .errors import StoreError

log = logging.getLogger("weft.storage")

SOCKET_NAME = "values.sock"
KEY_BYTES = 16
# Descriptors received and not yet claimed by their `put` (its writer died
# or its call timed out between the two sends) pin their memory: past this
# many the oldest is closed, and any older than EXPIRE seconds.
MAX_PENDING = 64
EXPIRE = 60.0
# How long a `put` waits for its descriptor, which is sent before the `put`
# but on another socket, so it may be read a moment after.
WAIT = 2.0
_SEAL_WRITE = getattr(fcntl, "F_SEAL_WRITE", 0)
_INT = array.array("i").itemsize
AVAILABLE = hasattr(socket, "recv_fds") and hasattr(socket, "SO_PEERCRED") and bool(_SEAL_WRITE)


def host_id() -> str:
    """Which kernel this process runs on: a descriptor can be passed only
    between processes of one host (the writer also checks the node's id the
    socket greets it with, so a path shared across hosts cannot mislead it)."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        boot = ""
    return f"{socket.gethostname()}/{boot}"


class Inbox:
    """The listening socket and the descriptors it received, by key."""

    def __init__(self, data_dir: Path, node_id: str) -> None:
        self.path = data_dir / SOCKET_NAME
        self.node_id = node_id
        self._fds: dict[bytes, tuple[int, float]] = {}
        self._waiting: dict[bytes, trio.Event] = {}
        self.received = 0

    async def run(self, task_status: trio.TaskStatus[bool] = trio.TASK_STATUS_IGNORED) -> None:
        if not AVAILABLE:
            task_status.started(False)
            return
        try:
            self.path.unlink(missing_ok=True)
            sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            old = os.umask(0o177)  # 0600 from its creation: no window for another user to connect
            try:
                with unix_path(self.path) as path:
                    await sock.bind(path)
            finally:
                os.umask(old)
            sock.listen(64)
        except OSError as e:
            log.warning("no descriptor socket at %s (large values come on the bus): %s", self.path, e)
            task_status.started(False)
            return
        task_status.started(True)
        try:
            with sock:
                async with trio.open_nursery() as nursery:
                    while True:
                        conn, _ = await sock.accept()
                        nursery.start_soon(self._serve, conn)
        finally:
            self.path.unlink(missing_ok=True)

    async def _serve(self, conn: trio.socket.SocketType) -> None:
        with conn:
            try:
                creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
                _pid, uid, _gid = struct.unpack("3i", creds)
                if uid != os.getuid():
                    log.warning("descriptor socket: refused a connection from uid %d", uid)
                    return
                await conn.send(self.node_id.encode())
                while True:
                    # Room for two descriptors, to see (and refuse) a message with more than one.
                    key, anc, flags, _ = await conn.recvmsg(KEY_BYTES, socket.CMSG_SPACE(2 * _INT),
                                                            socket.MSG_CMSG_CLOEXEC)
                    fds = array.array("i")
                    for level, kind, data in anc:
                        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                            fds.frombytes(data[:len(data) - len(data) % _INT])
                    if not key and not fds:
                        return  # the writer closed its end
                    if len(key) != KEY_BYTES or len(fds) != 1 or flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
                        for fd in fds:
                            os.close(fd)
                        log.warning("descriptor socket: a malformed message (%d bytes, %d descriptors); closing",
                                    len(key), len(fds))
                        return
                    self._deliver(key, fds[0])
            except OSError as e:
                log.info("descriptor socket: a connection failed: %s", e)

    def _deliver(self, key: bytes, fd: int) -> None:
        now = trio.current_time()
        old = self._fds.pop(key, None)
        if old is not None:
            os.close(old[0])
        fds = self._fds
        while fds and (len(fds) >= MAX_PENDING or next(iter(fds.values()))[1] < now - EXPIRE):
            os.close(fds.pop(next(iter(fds)))[0])  # (oldest first: in arrival order)
        fds[key] = (fd, now)
        self.received += 1
        event = self._waiting.pop(key, None)
        if event is not None:
            event.set()

    async def take(self, key: bytes, size: int, name: str) -> SealedFile:
        """The descriptor sent under `key`, which must hold `size` bytes and
        be sealed against writes; the caller closes it."""
        if key not in self._fds:
            event = self._waiting.setdefault(key, trio.Event())
            with trio.move_on_after(WAIT):
                await event.wait()
            self._waiting.pop(key, None)
        fd, _ = self._fds.pop(key, (None, 0.0))
        if fd is None:
            raise StoreError(f"put {name}: no descriptor arrived under its key; send the bytes",
                             name=name, code=ErrorCode.NO_DESCRIPTOR)
        try:
            if not fcntl.fcntl(fd, fcntl.F_GET_SEALS) & _SEAL_WRITE:
                raise StoreError(f"put {name}: its memory file is not sealed against writes; send the bytes",
                                 name=name, code=ErrorCode.NO_DESCRIPTOR)
            got = os.fstat(fd).st_size
            if got != size or not size:
                raise StoreError(f"put {name}: its memory file holds {got} bytes, the put says {size}",
                                 name=name, code=ErrorCode.NO_DESCRIPTOR)
            # (Written by sendfile, content.SealedFile; a mapping with MAP_POPULATE
            # cost more in the daemon: storage's CPU per 100 handoffs 0.76-0.89 s -> 1.31-2.33 s.)
            return SealedFile(fd, size)
        except OSError as e:
            os.close(fd)
            raise StoreError(f"put {name}: its descriptor cannot be read ({e}); send the bytes",
                             name=name, code=ErrorCode.NO_DESCRIPTOR) from None
        except BaseException:
            os.close(fd)
            raise

    def close(self) -> None:
        """Close the descriptors no `put` claimed (the socket closes with `run`)."""
        for fd, _ in self._fds.values():
            os.close(fd)
        self._fds.clear()
