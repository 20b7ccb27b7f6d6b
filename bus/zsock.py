"""A trio adapter for pyzmq sockets.

ZeroMQ exposes one file descriptor per socket (`zmq.FD`) that is *edge
triggered* and only ever signals "readable", meaning "`zmq.EVENTS` may have
changed". Any zmq call on the socket (send, recv, even reading EVENTS) can
consume that edge, so a task that parked on the fd can sleep forever while the
message it waits for sits in the queue. The rules this module follows:

* every operation is NOBLOCK; `zmq.Again` means "wait";
* before waiting, EVENTS must have been read since the last operation (it is
  read after each); wait only if the wanted flag is absent;
* one task at a time waits on the fd (trio allows only one); others park;
* every read of EVENTS that shows a change, and every send/recv, wakes all
  waiters (cancelling the fd wait), so whoever consumed an edge passes it on.
  Waking only on *change* keeps two parked waiters from waking each other
  forever.

All sockets live in the trio thread; one `zmq.Context` per process.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Sequence

import trio
import zmq

log = logging.getLogger("weft.bus")

# Plain ints: the enum versions make every `events & _POLLIN` an enum
# operation, several microseconds a message on the hot path.
_POLLIN = int(zmq.POLLIN)
_POLLOUT = int(zmq.POLLOUT)
_NOBLOCK = int(zmq.NOBLOCK)
_EVENTS = int(zmq.EVENTS)
_RCVMORE = int(zmq.RCVMORE)
_ZERO_COPY_MIN = 1 << 16
# A send refused while the socket says it is writable (one ROUTER peer at its
# high-water mark) is tried again after this pause, doubling up to the max.
_BACKOFF_MIN = 0.0005
_BACKOFF_MAX = 0.05

Frames = Sequence[bytes | memoryview | zmq.Frame]


def context() -> zmq.Context:
    """The process-wide context (pyzmq's shared instance)."""
    return zmq.Context.instance()


class PeerUnreachable(Exception):
    """A ROUTER could not route to an identity (it disconnected)."""


class ZSocket:
    """Awaitable multipart send/receive on one zmq socket."""

    __slots__ = ("sock", "_head", "_user_ids", "_fd", "_lot", "_fd_scope", "_fd_busy", "_last_events", "_closed")

    def __init__(self, sock: zmq.Socket, *, linger_ms: int = 200, head: int | None = None,
                 user_ids: bool = False) -> None:
        """`head`: how many frames of a message are received as bytes; any
        after them (attached data, see bus.codec) come as zmq.Frame objects,
        without a copy. None: every frame as bytes. `user_ids` (a CURVE
        server, with `head`): each message gets one more element at its end,
        the User-Id its connection was given by the ZAP handler (str)."""
        sock.setsockopt(zmq.LINGER, linger_ms)
        self.sock = sock
        self._head = head
        self._user_ids = user_ids
        self._fd = sock.getsockopt(zmq.FD)
        self._lot = trio.lowlevel.ParkingLot()
        self._fd_scope: trio.CancelScope | None = None
        self._fd_busy = False
        self._last_events = -1
        self._closed = False

    # -- edge handling -------------------------------------------------
    def _kick(self) -> None:
        if self._lot:
            self._lot.unpark_all()
        if self._fd_scope is not None:
            self._fd_scope.cancel()

    def _events(self) -> int:
        ev = self.sock.get(_EVENTS)
        if ev != self._last_events:
            self._last_events = ev
            self._kick()
        return ev

    def _after_op(self) -> None:
        # The operation may have consumed an edge someone else waits for;
        # re-reading EVENTS passes it on (and wakes waiters only on change).
        if not self._closed:
            self._events()

    async def _wait(self, flag: int) -> None:
        # Every caller comes here right after an operation or a read of
        # EVENTS, and every operation is followed by one: the value already
        # read is current (a read now would cost libzmq a getpid and a poll
        # and could only show what a new fd edge would wake us for anyway).
        events = self._last_events
        while True:
            if self._closed:
                raise trio.ClosedResourceError("socket closed")
            if events < 0:
                events = self._events()
            if events & flag:
                return
            if self._fd_busy:
                await self._lot.park()
                events = -1
                continue
            self._fd_busy = True
            try:
                with trio.CancelScope() as scope:
                    self._fd_scope = scope
                    await trio.lowlevel.wait_readable(self._fd)
            finally:
                self._fd_scope = None
                self._fd_busy = False
                # Hand the fd to another waiter if we leave; they re-check.
                if self._lot:
                    self._lot.unpark_all()
            events = -1  # woken: read it again

    # -- send ------------------------------------------------------------
    def send_nowait(self, frames: Frames) -> bool:
        """Send at once if the socket can take it; False if it would block."""
        if self._closed:
            raise trio.ClosedResourceError("socket closed")
        try:
            # Copying is far cheaper than zero-copy for all but big frames:
            # pyzmq releases zero-copy buffers through its garbage-collector
            # thread, which cost ~100 us a message here.
            big = any(len(f) >= _ZERO_COPY_MIN for f in frames)
            self.sock.send_multipart(frames, _NOBLOCK, copy=not big)
        except zmq.Again:
            return False
        except zmq.ZMQError as e:
            if e.errno == errno.EHOSTUNREACH:
                raise PeerUnreachable(str(e)) from None
            raise
        finally:
            self._after_op()
        return True

    async def send(self, frames: Frames) -> None:
        """Send, waiting (cancellably) while the peer is at its high-water mark."""
        await trio.lowlevel.checkpoint_if_cancelled()
        backoff = _BACKOFF_MIN
        while not self.send_nowait(frames):
            if self._last_events & _POLLOUT:
                # Writable, yet refused: a ROUTER says POLLOUT while any peer
                # has room, and this message's peer has none. No fd edge comes
                # for that peer's pipe draining: look again after a pause (a
                # wait on POLLOUT would return at once and spin the loop).
                await trio.sleep(backoff)
                backoff = min(backoff * 2, _BACKOFF_MAX)
            else:
                await self._wait(_POLLOUT)

    # -- receive -----------------------------------------------------------
    def _recv_parts(self) -> list[bytes]:
        sock = self.sock
        head = self._head
        if head is None:
            return sock.recv_multipart(_NOBLOCK)
        parts = [sock.recv(_NOBLOCK)]
        user = None
        if self._user_ids and sock.get(_RCVMORE):
            # Metadata rides on the frames a peer sent (not on the identity
            # frame a ROUTER adds): read it from the first of those.
            frame = sock.recv(_NOBLOCK, copy=False)
            user = frame.get("User-Id")
            parts.append(frame.bytes)
        # The rest of a multipart message is already here: NOBLOCK cannot fail.
        while sock.get(_RCVMORE):
            parts.append(sock.recv(_NOBLOCK, copy=len(parts) < head))
        if self._user_ids:
            parts.append(user)
        return parts

    def recv_nowait(self) -> list[bytes] | None:
        if self._closed:
            raise trio.ClosedResourceError("socket closed")
        try:
            return self._recv_parts()
        except zmq.Again:
            return None
        finally:
            self._after_op()

    async def recv(self) -> list[bytes]:
        await trio.lowlevel.checkpoint_if_cancelled()
        while True:
            # EVENTS is read after every operation: when it says nothing is
            # queued, wait without paying for a zmq.Again exception first.
            if self._last_events & _POLLIN or self._last_events < 0:
                msg = self.recv_nowait()
                if msg is not None:
                    return msg
            await self._wait(_POLLIN)

    async def recv_batch(self, limit: int = 256) -> list[list[bytes]]:
        """Wait for at least one message, then take up to `limit` already queued.

        Draining in one go amortises the per-wake cost over a burst, which is
        what makes many small calls cheap.
        """
        first = await self.recv()
        batch = [first]
        # EVENTS says whether more is queued: cheaper than ending on zmq.Again.
        # Every receive is followed by one read of it (recv_nowait's, then
        # this loop's), which both passes edges on and answers "more?": a
        # second read (getpid+poll in libzmq each) would see nothing new.
        while len(batch) < limit and not self._closed and self._last_events & _POLLIN:
            try:
                batch.append(self._recv_parts())
            except zmq.Again:
                break
            finally:
                self._after_op()
        return batch

    # -- lifetime ----------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        # Waiters get ClosedResourceError instead of sleeping on a dead fd.
        trio.lowlevel.notify_closing(self._fd)
        self._kick()
        self.sock.close()

    def __enter__(self) -> ZSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def bound_endpoint(sock: zmq.Socket) -> str:
    """The endpoint a socket actually bound (resolves port 0 and wildcards)."""
    ep = sock.getsockopt_string(zmq.LAST_ENDPOINT)
    return ep.replace("tcp://0.0.0.0:", "tcp://127.0.0.1:")
