"""Talking to a storage node: the calls compute, the coordinator and the CLI share.

This module is the storage role's own client; per the deadlock rule nothing
in actors/storage/ imports a client of any *other* role.
"""

from __future__ import annotations

import inspect
import logging
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextvars import ContextVar
from typing import Any

import trio

from weft.bus.errors import BusError, CallTimeout, RemoteError
from weft.bus.rpc import Peer, PendingCall
from weft.protocol.enums import ErrorCode, ObjectState
from weft.protocol.objects import Create, Finish, Populate, Put, Read, ReadReply

from . import fdclient

log = logging.getLogger("weft.storage")

CHUNK = 1 << 20
# Chunks in flight at once when a whole object moves (reads, large writes).
WINDOW = 4
# Up to this size an output goes in one `put` (create-or-reuse, write, finish).
PUT_MAX = CHUNK
# A storage node's latency bound is this many times its usual call latency ...
SLOW_FACTOR = 8.0
# ... and never under this (seconds): see Latency. Daemons set it from --slow-after.
SLOW_FLOOR = 1.5
# Weight of each new call in a node's latency estimate (an EWMA).
_EWMA = 0.1
# A node that just missed its bound is *suspect* for this long (seconds) or
# until it answers anything: meanwhile its bound is at most SUSPECT_BOUND.
SUSPECT_FOR = 5.0
SUSPECT_BOUND = 0.25


class Latency:
    """What each storage node usually takes to answer a call, and so how long
    is too long: bound = max(floor, SLOW_FACTOR x its EWMA of call latency).

    A read that gets no answer within the bound goes to the next copy, and a
    replica that falls that far behind the others is dropped from the write
    (see ReplicatedWriter): a paused node costs a bound, not its pause. Two
    float operations a call; one table per process (`LATENCY`).

    A node that missed its bound (a call timed out, or a write dropped it) is
    *suspect* until it answers a call, for SUSPECT_FOR seconds at most: its
    bound is then SUSPECT_BOUND, so the next writes and reads that meet the
    paused node do not each wait out a full bound again (in the soak, the
    jobs one compute slot ran in turn after a storage pause each paid one).
    A miss while suspect does not extend it: a node that is only slow, not
    stopped, gets its full bound again after SUSPECT_FOR (until then its
    replicas are dropped sooner, and repair copies them).
    """

    def __init__(self, floor: float = SLOW_FLOOR, factor: float = SLOW_FACTOR,
                 suspect_for: float = SUSPECT_FOR, suspect_bound: float = SUSPECT_BOUND) -> None:
        self.floor = floor
        self.factor = factor
        self.suspect_for = suspect_for
        self.suspect_bound = suspect_bound
        self._est: dict[str, float] = {}
        self._missed: dict[str, float] = {}  # endpoint -> when it became suspect (monotonic)

    def record(self, endpoint: str, seconds: float) -> None:
        if self._missed:
            self._missed.pop(endpoint, None)  # it answered: not stopped
        est = self._est.get(endpoint)
        if est is None:
            self._est[endpoint] = min(seconds, self.floor)
            return
        # At most the bound: one answer that waited out a pause (the last
        # copy gets the whole call timeout) must not raise it for long.
        bound = max(self.floor, self.factor * est)
        self._est[endpoint] = est + _EWMA * ((seconds if seconds < bound else bound) - est)

    def estimate(self, endpoint: str) -> float | None:
        return self._est.get(endpoint)

    def bound(self, endpoint: str) -> float:
        est = self._est.get(endpoint)
        bound = self.floor if est is None else max(self.floor, self.factor * est)
        if self._missed and self.suspect(endpoint):
            return min(bound, self.suspect_bound)
        return bound

    def missed(self, endpoint: str) -> None:
        """`endpoint` did not answer within its bound: suspect from now on."""
        now = time.monotonic()
        since = self._missed.get(endpoint)
        if since is None or now - since >= self.suspect_for:
            self._missed[endpoint] = now

    def any_suspect(self) -> bool:
        return bool(self._missed)

    def suspect(self, endpoint: str) -> bool:
        since = self._missed.get(endpoint)
        return since is not None and time.monotonic() - since < self.suspect_for


LATENCY = Latency()


async def _timed(peer: Peer, op: str, body: Any, timeout: float | None = None) -> Any:
    """`peer.call`, its latency recorded (answers only: a timeout is no measure)."""
    t0 = trio.current_time()
    try:
        r = await peer.call(op, body, timeout=timeout)
    except CallTimeout:
        LATENCY.missed(peer.endpoint)
        raise
    LATENCY.record(peer.endpoint, trio.current_time() - t0)
    return r


class NotFinished(BusError):
    """The object exists but its producer has not finished it."""

    code = ErrorCode.NOT_FINISHED


class Redirected(BusError):
    """The object is delegated to one this storage node does not hold."""

    code = ErrorCode.REDIRECTED

    def __init__(self, name: str, target: str) -> None:
        super().__init__(f"object {name!r} is delegated to {target!r}, held elsewhere")
        self.target = target


async def read_chunks(
    peer: Peer, name: str, *, require_finished: bool = True, chunk: int = CHUNK, timeout: float | None = None
) -> AsyncIterator[bytes]:
    """Yield an object's bytes in chunks (bytes, or memoryviews of the
    received frames when large), one read at a time, following delegation on
    this node. For a partial object (`require_finished=False`) or a consumer
    that wants to pace the reads; `read_object` is faster."""
    offset = 0
    while True:
        r = await _read(peer, name, offset, chunk, timeout)
        data = _checked(r, name, require_finished)
        if data:
            yield data
            offset += len(data)
        if r.eof or not data:
            return


# The coordinator's read token for the object being read (a `user` key's Client.get sets it:
# actors/storage/readtoken.py); None for everyone else, who sends none.
READ_TOKEN: ContextVar[str | None] = ContextVar("weft_read_token", default=None)


def read_body(name: str, offset: int, length: int) -> dict[str, Any]:
    """A `read` message, with the read token when this task has one."""
    body = Read(name, offset, length).to_wire()
    token = READ_TOKEN.get()
    if token is not None:
        body["rt"] = token
    return body


async def _read(peer: Peer, name: str, offset: int, length: int, timeout: float | None) -> ReadReply:
    return ReadReply.from_wire(await _timed(peer, "read", read_body(name, offset, length), timeout))


def _checked(r: ReadReply, name: str, require_finished: bool) -> bytes:
    state = r.state
    if state == ObjectState.DELEGATED:
        raise Redirected(name, r.target or "?")
    if require_finished and state != ObjectState.FINISHED:
        raise NotFinished(f"object {name!r} is not finished (state {state})")
    return r.data


async def read_object(
    peer: Peer, name: str, on_chunk: Callable[[bytes], Awaitable[None] | None], *,
    chunk: int = CHUNK, window: int = WINDOW, timeout: float | None = None,
) -> int:
    """Read a finished object, handing its chunks (bytes or memoryviews) to
    `on_chunk` in order; returns its size. After the first chunk (which tells
    the size) up to `window` reads are in flight at once, so a large object
    streams at the rate of the link, not of one round trip per chunk."""
    r = await _read(peer, name, 0, chunk, timeout)
    first = _checked(r, name, True)
    size = r.size
    final = r.name or name  # delegation resolved: read the final object directly
    if first:
        await _deliver(on_chunk, first)
    if r.eof or not first or size is None:
        return len(first)
    offsets = list(range(len(first), size, chunk))
    done: dict[int, bytes] = {}
    ready = trio.Condition()
    limit = trio.Semaphore(window)

    async def fetch(offset: int) -> None:
        async with limit:
            rr = await _read(peer, final, offset, chunk, timeout)
            data = _checked(rr, final, True)
            if len(data) != min(chunk, size - offset):
                raise BusError(f"object {final!r}: short read at {offset} ({len(data)} bytes)", code=ErrorCode.SHORT_READ)
            done[offset] = data
            async with ready:
                ready.notify_all()

    try:
        async with trio.open_nursery() as nursery:
            for offset in offsets:
                nursery.start_soon(fetch, offset)
            for offset in offsets:
                async with ready:
                    while offset not in done:
                        await ready.wait()
                await _deliver(on_chunk, done.pop(offset))
    except ExceptionGroup as group:  # errors only: a cancellation passes as it came
        # The first failed read as itself (a timeout, say), so the caller
        # can catch it and go to the next copy.
        first = group.exceptions[0]
        while isinstance(first, ExceptionGroup):
            first = first.exceptions[0]
        raise first from None
    return size


async def _deliver(on_chunk: Callable[[bytes], Awaitable[None] | None], data: bytes) -> None:
    result = on_chunk(data)
    if inspect.isawaitable(result):  # a plain callable may return anything (file.write: a count)
        await result


async def read_all(peer: Peer, name: str, **kw: Any) -> bytes:
    parts: list[bytes | memoryview] = []
    await read_object(peer, name, parts.append, **kw)
    if len(parts) == 1 and type(parts[0]) is bytes:
        return parts[0]
    return b"".join(parts)


class ObjectWriter:
    """Streams one output to storage: populate chunks as they come, then finish."""

    def __init__(self, peer: Peer, name: str, token: int, *, quiet: bool = False) -> None:
        self.peer = peer
        self.name = name
        self.token = token
        # quiet: the caller reports the finished object to the coordinator
        # itself, so storage's own `finished` event need not wake it.
        self.quiet = quiet
        self.size = 0
        # The whole content, when it was small enough to travel in one put.
        self.small: bytes | None = None
        self._buf = bytearray()
        self._started = False
        # A large value in a sealed memory file, for `close` to pass to a
        # storage node on this host by descriptor (fdclient.py).
        self._held: Any = None
        self._bus_only = False

    async def write(self, data: bytes) -> None:
        if self._held is not None:  # more after a held value: it all goes on the bus, in order
            held, self._held, self._bus_only = self._held, None, True
            await self.write(held)
        elif not (self._started or self._buf or self._bus_only) and fdclient.passable(data) is not None:
            self._held = data
            return
        if not self._buf and len(data) >= 2 * CHUNK:
            # A large value in one piece (a callable's result): its chunks go
            # out as views of it, not through the buffer (two copies fewer).
            view = memoryview(data)
            pos = 0
            if not self._started:
                await self._send(view[:CHUNK])  # alone (it may create the object), a view like the rest
                pos = CHUNK
            whole = pos + (len(data) - pos) // CHUNK * CHUNK
            if whole > pos:
                await self._send_window(view[pos:whole])
            data = data[whole:]
        self._buf += data
        if not self._started and len(self._buf) >= CHUNK:
            # The first chunk alone: it may have to create the object.
            await self._send(bytes(self._buf[:CHUNK]))
            del self._buf[:CHUNK]
        if len(self._buf) >= 2 * CHUNK:
            await self._send_window()
        while len(self._buf) >= CHUNK:
            await self._send(bytes(self._buf[:CHUNK]))
            del self._buf[:CHUNK]

    async def _send_window(self, source: memoryview | None = None) -> None:
        """Send every whole chunk of `source` (default: of the buffer), up to
        WINDOW populates in flight.

        They leave in order on one connection and storage handles a node's
        populates in arrival order, so the offsets land in sequence.
        """
        if source is None:
            n = len(self._buf) // CHUNK
            view = memoryview(self._buf)
            chunks: list[bytes | memoryview] = [bytes(view[i * CHUNK:(i + 1) * CHUNK]) for i in range(n)]
            view.release()
            del self._buf[:n * CHUNK]
        else:
            n = len(source) // CHUNK
            chunks = [source[i * CHUNK:(i + 1) * CHUNK] for i in range(n)]
        in_flight: deque[PendingCall] = deque()
        try:
            for i, data in enumerate(chunks):
                if len(in_flight) >= WINDOW:
                    await self._reply(in_flight.popleft())
                in_flight.append(await self.peer.send_call(
                    "populate", Populate(self.name, data, self.token, self.size + i * CHUNK).to_wire()))
            while in_flight:
                await self._reply(in_flight.popleft())
        finally:
            for call in in_flight:
                call.discard()
        self.size += n * CHUNK

    async def _reply(self, call: PendingCall) -> None:
        try:
            await call.reply()
        except CallTimeout:
            LATENCY.missed(self.peer.endpoint)
            raise
        # From when it was sent (its deadline less its timeout): a windowed
        # call's latency includes the queue ahead of it, as the node serves it.
        LATENCY.record(self.peer.endpoint, trio.current_time() - (call.deadline - call.seconds))

    async def _send(self, data: bytes | memoryview) -> None:
        body = Populate(self.name, data, self.token, self.size).to_wire()
        try:
            await _timed(self.peer, "populate", body)
        except RemoteError as e:
            # The coordinator creates outputs while the task starts; if our
            # first chunk overtook that create, create it ourselves.
            if e.code != ErrorCode.MISSING or self.size:
                raise
            try:
                await self.peer.call("create", Create(self.name, self.token).to_wire())
            except RemoteError as e2:
                if e2.code != ErrorCode.EXISTS:
                    raise
            await self.peer.call("populate", body)
        self.size += len(data)
        self._started = True

    async def close(self) -> dict:
        """Finish the object; returns its info once storage made it durable."""
        if self._held is not None:
            held, self._held, self._bus_only = self._held, None, True
            info = await self._put_by_descriptor(held)
            if info is not None:
                return info
            await self.write(held)  # on the bus after all
        if not self._started:
            # Small output: one message does it all.
            data = bytes(self._buf)
            info = await _timed(self.peer, "put", Put(self.name, data, self.token, self.quiet).to_wire())
            self.small = data
            return info
        if self._buf:
            await self._send(bytes(self._buf))
            self._buf.clear()
        return await _timed(self.peer, "finish", Finish(self.name, self.token, self.size, self.quiet).to_wire())


    async def _put_by_descriptor(self, value: Any) -> dict | None:
        """`put` with the bytes passed as their memory file, if the storage
        node is on this host; None if they must go on the bus instead."""
        ch = await fdclient.channel(self.peer)
        if ch is None:
            return None
        try:
            key = await ch.send(value.fd)
        except OSError as e:
            log.info("storage %s: descriptor not passed (%s); the value goes on the bus", self.peer.endpoint, e)
            fdclient.forget(self.peer.endpoint)
            return None
        body = Put(self.name, b"", self.token, self.quiet, via=key, size=len(value)).to_wire()
        try:
            info = await _timed(self.peer, "put", body)
        except RemoteError as e:
            if e.code != ErrorCode.NO_DESCRIPTOR:  # (a fenced or refused put fails as any put would)
                raise
            log.info("storage %s: %s; the value goes on the bus", self.peer.endpoint, e.message)
            return None
        self.size = len(value)
        self._started = True
        return info


class Slow(CallTimeout):
    """A replica still busy with a write step its latency bound after another
    replica finished it: dropped from the write, as if it had failed."""

    def __init__(self, endpoint: str, op: str, bound: float) -> None:
        super().__init__(endpoint, op, bound)
        self.message = f"{op} on {endpoint}: no answer within its latency bound of {bound:.1f}s (another copy had it)"
        self.args = (self.message,)


_OPS = {"write": "populate", "close": "finish"}  # what a write step is called on the wire


class ReplicatedWriter:
    """Writes one output to several storage nodes at once (replicas).

    Each step (a chunk, the finish) goes to every replica concurrently. A
    replica that fails, or that is still busy with a step its latency bound
    (`Latency.bound`) after another replica finished it, is dropped from the
    write and listed in `dropped` (the caller reports it, so repair can make
    that copy again): a paused node delays the write by one bound, not by
    its pause, and never fails it while another replica answers. The write
    fails only when every replica failed, with the first one's error.

    The finish returns once `min_copies` replicas acknowledged it (0: every
    replica still in the write). With fewer, and a `background` nursery,
    the others finish there (on their normal call timeout; storage's own
    `finished` event announces them); without one, it waits for all.
    """

    def __init__(self, writers: list[ObjectWriter], *, min_copies: int = 0,
                 background: trio.Nursery | None = None, latency: Latency | None = None) -> None:
        self.writers = writers
        self.min_copies = min_copies
        self.background = background
        self.latency = latency or LATENCY
        self.dropped: list[tuple[str, Exception]] = []

    async def _all(self, method: str, *args: Any, need: int = 0) -> list[Any]:
        writers = self.writers
        n = len(writers)
        results: dict[int, Any] = {}
        errors: dict[int, Exception] = {}
        scopes = [trio.CancelScope() for _ in writers]
        send, recv = trio.open_memory_channel[int](n)
        first_ok: float | None = None

        async def one(i: int, w: ObjectWriter) -> None:
            nonlocal first_ok
            with scopes[i]:
                try:
                    results[i] = await getattr(w, method)(*args)
                    if first_ok is None:
                        first_ok = trio.current_time()
                except Exception as e:
                    errors[i] = e
                    if i in late:
                        log.warning("replica of %s on %s failed after the write returned: %s", w.name, w.peer.endpoint, e)
            send.send_nowait(i)

        late: set[int] = set()  # left to finish in the background
        need = min(need or n, n)
        pending = set(range(n))
        async with trio.open_nursery() as local:
            nursery = self.background if need < n and self.background is not None else local
            for i, w in enumerate(writers):
                nursery.start_soon(one, i, w)
            while pending:
                if len(results) >= need and nursery is not local:
                    late |= pending  # enough copies: the rest finish on their own
                    break
                wait = math.inf
                if first_ok is not None:
                    # Another replica has this step: the rest get their bound.
                    now = trio.current_time()
                    for i in sorted(pending):
                        if i in results or i in errors:  # ended; its message is on its way
                            continue
                        endpoint = writers[i].peer.endpoint
                        bound = self.latency.bound(endpoint)
                        if now >= first_ok + bound:
                            scopes[i].cancel()
                            pending.discard(i)
                            errors[i] = Slow(endpoint, _OPS.get(method, method), bound)
                            self.latency.missed(endpoint)
                        else:
                            wait = min(wait, first_ok + bound - now)
                    if not pending:
                        break
                    # Look again soon: another write may find a lagging
                    # replica's node stopped meanwhile (it turns suspect).
                    wait = min(wait, self.latency.suspect_bound)
                with trio.move_on_after(max(0.0, wait)):
                    pending.discard(await recv.receive())
        if not results:
            raise errors[min(errors)]
        for i in sorted(errors):
            w = writers[i]
            self.dropped.append((w.peer.endpoint, errors[i]))
            log.warning("replica of %s on %s dropped: %s", w.name, w.peer.endpoint, errors[i])
        self.writers = [w for i, w in enumerate(writers) if i in results]
        return [results[i] for i in sorted(results)]

    async def write(self, data: bytes) -> None:
        await self._all("write", data)

    async def close(self) -> dict:
        return (await self._all("close", need=self.min_copies))[0]


async def write_bytes(peer: Peer, name: str, data: bytes, token: int) -> dict:
    w = ObjectWriter(peer, name, token)
    if len(data) <= PUT_MAX:
        w._buf += data
    else:
        await w.write(data)
    return await w.close()
