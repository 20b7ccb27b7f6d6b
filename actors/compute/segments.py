"""Large callable values in shared memory: one sealed memory file per value.

A worker returns a large bytes result in a memory file (memfd) of its own,
made for that value, and hands the node the file itself (its descriptor,
over a unix socket beside the worker's pipes) instead of its bytes. The
node seals the file (no one can write, grow or shrink it again, the worker
included) and maps it read-only: that mapping is the value the node sends
to storage (views of it, zero-copy), keeps in its value cache and serves
to other nodes. A consumer's worker on this node is handed the same file
for its input and reads it once into the bytes the callable gets.

Per same-node handoff of a 10 MiB value that is two copies fewer than the
fixed per-worker memory files (worker.py), through which the node read each
result into fresh memory of its own and wrote each input back out: the
worker writes the value once, the consumer's worker reads it once.

Who can read a value: only a process holding its descriptor. The node
passes one to a worker only as the input of the call it starts there, so
another job's call in another worker never receives it. (A callable runs
as the node's user, as before: isolation between owners' callables is the
`fresh_callables` mode's, docs/security.md.)

Standard library only: the worker imports this before any user code.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import socket

# Results from this size on travel as a memory file of their own (smaller
# ones through the worker's reused memory files: a fresh file's pages cost
# their zeroing, and each kept value holds two descriptors).
SEG_MIN = 1 << 20
# Or'ed into a reply kind: the payload is a memory file sent on the socket.
SEG = 0x20
# A request blob's `at`: its bytes are a memory file sent on the socket.
PASSED = -2
# Descriptors per message (the kernel takes at most 253 in one).
_PER_MESSAGE = 64
_SEALS = fcntl.F_SEAL_WRITE | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SHRINK if hasattr(fcntl, "F_SEAL_WRITE") else 0
AVAILABLE = hasattr(os, "memfd_create") and hasattr(socket, "send_fds") and bool(_SEALS)


class Segment(mmap.mmap):
    """A read-only mapping of a sealed memory file, and the file (`fd`), to
    hand to a worker. Used wherever bytes are read (buffer protocol, len,
    slices give bytes); never written."""

    fd: int

    def __del__(self) -> None:
        fd, self.fd = getattr(self, "fd", -1), -1
        if fd >= 0:
            os.close(fd)


def adopt(fd: int, size: int) -> Segment | bytes:
    """The node's side: a memory file of `size` bytes a worker sent, sealed
    and mapped; the file is ours from here (closed with the Segment). A
    file that cannot be sealed (someone holds a writable mapping of it) or
    is not `size` bytes long is read into bytes once and closed instead."""
    try:
        if os.fstat(fd).st_size == size and size and _seal(fd):
            # Not MAP_POPULATE: a value going to storage on this host goes as
            # this file (storage/fdclient.py) and to a consumer here as this
            # file too, so the node may never touch its pages; populating
            # them cost ~0.8-0.95 ms per 10 MiB on the node's loop. A read
            # (lending it to another node, the bus to storage) faults them in.
            seg = Segment(fd, size, mmap.MAP_SHARED, mmap.PROT_READ)
            seg.fd = fd
            return seg
        data = os.pread(fd, size, 0) if size else b""
        if len(data) != size:
            raise OSError(f"a worker's memory file holds {len(data)} bytes, its reply said {size}")
    except BaseException:
        os.close(fd)
        raise
    os.close(fd)
    return data


def _seal(fd: int) -> bool:
    try:
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, _SEALS)
    except OSError:  # EBUSY: a writable mapping of it exists; EPERM: sealing was refused
        return False
    return fcntl.fcntl(fd, fcntl.F_GET_SEALS) & _SEALS == _SEALS


def make(data: bytes) -> int:
    """The worker's side: a new memory file holding `data` (its descriptor,
    for the node; sealing is the node's, which must not trust us)."""
    fd = os.memfd_create("weft-value", os.MFD_ALLOW_SEALING | os.MFD_CLOEXEC)
    try:
        view = memoryview(data)
        done = 0
        while done < len(view):
            done += os.pwrite(fd, view[done:], done)
    except BaseException:
        os.close(fd)
        raise
    return fd


def send(sock: socket.socket, fds: list[int]) -> None:
    """Send descriptors, a few per message (blocking socket: the worker's)."""
    for i in range(0, len(fds), _PER_MESSAGE):
        socket.send_fds(sock, [b"f"], fds[i:i + _PER_MESSAGE])


def receive(sock: socket.socket, count: int) -> list[int]:
    """`count` descriptors sent with `send` (blocking socket)."""
    fds: list[int] = []
    while len(fds) < count:
        _, got, _, _ = socket.recv_fds(sock, 1, min(_PER_MESSAGE, count - len(fds)))
        if not got:
            raise EOFError("the descriptor socket closed")
        fds += got
    return fds


# -- the node's side (trio: imported there only, never in a worker) ----------------------
def descriptor_room() -> int:
    """The node's descriptor limit, its soft limit raised to the hard one
    (at most 65,536) first: values kept in memory files hold descriptors."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
        if soft != resource.RLIM_INFINITY and soft < want:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
            soft = want
        return 65536 if soft == resource.RLIM_INFINITY else soft
    except (ImportError, OSError, ValueError):
        return 1024


def socket_pair() -> tuple[socket.socket, socket.socket]:
    """(ours, the worker's): datagrams keep each message's descriptors apart."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    ours.setblocking(False)
    theirs.set_inheritable(False)  # pass_fds hands it to its one worker
    return ours, theirs


async def send_async(sock: socket.socket, fds: list[int]) -> None:
    """`send` on the node's non-blocking socket."""
    import trio

    for i in range(0, len(fds), _PER_MESSAGE):
        while True:
            try:
                socket.send_fds(sock, [b"f"], fds[i:i + _PER_MESSAGE])
                break
            except BlockingIOError:
                await trio.lowlevel.wait_writable(sock)


async def adopt_from(sock: socket.socket, size: int) -> Segment | bytes:
    """The memory file a worker sent before its reply (so it is there
    already, or on its way), adopted (see `adopt`)."""
    import trio

    while True:
        try:
            _, fds, _, _ = socket.recv_fds(sock, 1, 1)
            break
        except BlockingIOError:
            await trio.lowlevel.wait_readable(sock)
    if not fds:
        raise EOFError("the worker's descriptor socket closed")
    return adopt(fds[0], size)
