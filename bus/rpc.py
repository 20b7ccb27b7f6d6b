"""Calls between actors: a ROUTER-side server and DEALER-side peer handles.

The server dispatches each incoming envelope to a handler from its table.
Plain (non-async) handlers run inline in the receive loop: they must not block,
and they are the fast path, costing no task switch. Async handlers run as tasks
in the server's nursery, counted against the admission limit; past the limit a
call is answered `busy` at once. Posted calls and handlers registered with
`bypass=True` (polls, pings) skip admission, so news can always flow upward.

A peer handle sends calls with correlation ids and a deadline, posts one-way
messages, and retries `busy` answers with backoff until its deadline.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable
from typing import Any

import trio
import zmq

from .codec import (
    CALL,
    DEFAULT_MAX_MESSAGE,
    ERROR,
    POST,
    REPLY,
    decode,
    encode,
    encode_frames,
    salvage_id,
)
from .curve import HANDSHAKE_EVENTS, Security, forbidden, refused
from .errors import BusError, Busy, CallTimeout, ConnectionLost, ProtocolError, remote_error
from .ratelog import RateLimitedLog
from .serverstats import OpEntry, ServerStats
from .zsock import PeerUnreachable, ZSocket, bound_endpoint, context

log = logging.getLogger("weft.bus")

Handler = Callable[[Any, "CallContext"], Any]

# Generous queue limits: a burst of thousands of small calls is the normal
# case, and HWM back-pressure is handled by waiting, never by blocking.
_HWM = 50_000
# How long calls in flight wait, when their connection drops, for a reply
# that was sent before it dropped (Peer._watch_connection).
_LATE_REPLY_GRACE = 0.05


class CallContext:
    """Who is calling, passed to every handler."""

    __slots__ = ("sender", "op", "ident", "kind", "user")

    def __init__(self, sender: str, op: str, ident: bytes, kind: str, user: str | None = None) -> None:
        self.sender = sender
        self.op = op
        self.ident = ident
        self.kind = kind
        # `ROLE:NAME` of the caller's key on a CURVE cluster (None without security).
        self.user = user


class Server:
    """Serves a table of ops on one ROUTER socket."""

    def __init__(
        self,
        node_id: str,
        *,
        max_concurrent: int = 256,
        max_message: int = DEFAULT_MAX_MESSAGE,
        role: str = "actor",
        security: Security | None = None,
    ) -> None:
        self.node_id = node_id
        self.role = role
        self.security = security
        # On a secure server: may the caller `user` (ROLE:NAME) run `op`? (weft.protocol.access)
        self.access: Callable[[str, str], bool] = lambda op, user: user.startswith("admin:")
        self.max_concurrent = max_concurrent
        self.max_message = max_message
        self.in_flight = 0
        self._ops: dict[str, OpEntry] = {}
        self.stats = ServerStats(self._ops)  # totals summed from the ops' own counts when read
        self.endpoint: str | None = None
        self._zs: ZSocket | None = None
        self._nursery: trio.Nursery | None = None
        self._badlog = RateLimitedLog(log)

    def add(self, op: str, fn: Handler, *, bypass: bool = False) -> None:
        """Register a handler: `fn(body, ctx)`, plain (inline) or async (a task)."""
        self._ops[op] = OpEntry(fn, bypass)

    @property
    def ops(self) -> list[str]:
        return sorted(self._ops)

    async def serve(self, endpoint: str, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        sock = context().socket(zmq.ROUTER)
        sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        sock.setsockopt(zmq.ROUTER_HANDOVER, 1)
        sock.setsockopt(zmq.SNDHWM, _HWM)
        sock.setsockopt(zmq.RCVHWM, _HWM)
        # libzmq drops an oversize message (and its connection) before we
        # pay for it; decode() still checks, for the exact limit and message.
        sock.setsockopt(zmq.MAXMSGSIZE, self.max_message + 4096)
        secure = self.security is not None
        if secure:
            self.security.apply_server(sock)
        with ZSocket(sock, head=2, user_ids=secure) as zs:
            try:
                sock.bind(endpoint)
            except zmq.ZMQError as e:
                raise BusError(f"cannot listen on {endpoint}: {zmq.strerror(e.errno)}", code="bind-failed") from None
            self.endpoint = bound_endpoint(sock)
            self._zs = zs
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                task_status.started(self.endpoint)
                try:
                    while True:
                        for msg in await zs.recv_batch():
                            self._dispatch(msg)
                finally:
                    self._zs = None
                    nursery.cancel_scope.cancel()

    # -- dispatch ------------------------------------------------------------
    def _dispatch(self, msg: list[bytes]) -> None:
        stats = self.stats
        user = msg.pop() if self.security is not None else None
        if len(msg) < 2:
            stats.malformed += 1
            self._badlog.warning("dropped a message with no frame after the identity")
            return
        ident, frame = msg[0], msg[1]
        try:
            env = decode(frame, self.max_message, msg[2:])
        except ProtocolError as e:
            stats.malformed += 1
            self._badlog.warning("malformed message: %s", e.message)
            call_id = salvage_id(frame)
            if call_id:
                self._send_error(ident, call_id, "", e)
            return
        kind = env.kind
        if kind != CALL and kind != POST:
            stats.malformed += 1
            self._badlog.warning("unexpected %s envelope from %s", kind, env.sender)
            return
        op = self._ops.get(env.op)
        is_call = kind == CALL
        if op is None:
            stats.unknown_ops += 1
            self._badlog.warning("unknown op %r from %s", env.op, env.sender)
            if is_call:
                self._send_error(
                    ident, env.id, env.op,
                    BusError(f"no op {env.op!r} on this {self.role}", code="unknown-op"),
                )
            return
        if user is not None and not self.access(env.op, user):
            self._forbid(ident, env, user, is_call)
            return
        if is_call:
            op.calls += 1
        else:
            op.posts += 1
        ctx = CallContext(env.sender, env.op, ident, kind, user)
        if not op.is_async:
            try:
                result = op.fn(env.body, ctx)
            except Exception as e:
                self._handler_failed(ident, env, e, is_call)
            else:
                if is_call:
                    self._send_reply(ident, env.id, env.op, result)
            return
        if is_call and not op.bypass:
            if self.in_flight >= self.max_concurrent:
                op.busy += 1
                self._send_error(
                    ident, env.id, env.op,
                    BusError(f"{self.role} {self.node_id} is busy ({self.in_flight} calls in progress)", code="busy"),
                )
                return
            self.in_flight += 1
            self._nursery.start_soon(self._run_admitted, op, env, ident, ctx)
        else:
            self._nursery.start_soon(self._run, op, env, ident, ctx)

    async def _run_admitted(self, op: OpEntry, env: Any, ident: bytes, ctx: CallContext) -> None:
        try:
            await self._run(op, env, ident, ctx)
        finally:
            self.in_flight -= 1

    async def _run(self, op: OpEntry, env: Any, ident: bytes, ctx: CallContext) -> None:
        is_call = env.kind == CALL
        try:
            result = await op.fn(env.body, ctx)
        except Exception as e:
            self._handler_failed(ident, env, e, is_call)
        else:
            if is_call:
                self._send_reply(ident, env.id, env.op, result)

    def _forbid(self, ident: bytes, env: Any, user: str, is_call: bool) -> None:
        self.stats.forbidden += 1
        self._badlog.warning("refused %r from %s (%s): not allowed for its key", env.op, env.sender, user)
        if is_call:
            self._send_error(ident, env.id, env.op, forbidden(self.role, env.op, user, self.access))

    def _handler_failed(self, ident: bytes, env: Any, e: Exception, is_call: bool) -> None:
        self._ops[env.op].errors += 1  # both callers ran a registered op
        code = getattr(e, "code", None)
        if not isinstance(code, str):
            log.error("handler for %r raised", env.op, exc_info=e)
            e = BusError(f"{type(e).__name__}: {e}", code="internal")
        if is_call:
            self._send_error(ident, env.id, env.op, e)

    # -- replies -------------------------------------------------------------
    def _send_reply(self, ident: bytes, call_id: int, op: str, body: Any) -> None:
        try:
            frames = encode_frames(REPLY, call_id, op, self.node_id, body)
        except ProtocolError as e:
            log.error("reply to %r could not be encoded: %s", op, e.message)
            self._send_error(ident, call_id, op, BusError(e.message, code="internal"))
            return
        frames.insert(0, ident)
        self._send(frames)

    def _send_error(self, ident: bytes, call_id: int, op: str, e: Exception) -> None:
        message = getattr(e, "message", None) or str(e)
        self._send([ident, encode(ERROR, call_id, op, self.node_id, {"code": e.code, "message": message})])

    def _send(self, frames: list[Any]) -> None:
        zs = self._zs
        if zs is None:
            return
        try:
            if zs.send_nowait(frames):
                return
        except PeerUnreachable:
            log.debug("reply dropped: caller disconnected")
            return
        # The caller is not draining its replies: wait for it in the
        # background rather than stall every other caller.
        self._nursery.start_soon(self._send_later, zs, frames)

    async def _send_later(self, zs: ZSocket, frames: list[Any]) -> None:
        if zs.closed:
            return
        with trio.move_on_after(10):
            try:
                await zs.send(frames)
                return
            except (PeerUnreachable, trio.ClosedResourceError):
                pass
        log.debug("reply dropped: caller not reading")


class _Slot:
    __slots__ = ("event", "value", "error", "op")

    def __init__(self, op: str) -> None:
        self.event = trio.Event()
        self.value: Any = None
        self.error: BaseException | None = None
        self.op = op


class PeerClosed(BusError):
    code = "peer-closed"


class Peer:
    """A handle on one remote actor: calls with deadlines, and posts.

    Its receive loop (`run`) must run in a nursery; `PeerPool` and `connect`
    arrange that.
    """

    def __init__(
        self,
        endpoint: str,
        node_id: str,
        *,
        timeout: float = 10.0,
        max_message: int = DEFAULT_MAX_MESSAGE,
        connect_timeout: float = 3.0,
        security: Security | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.node_id = node_id
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.max_message = max_message
        self.last_heard = 0.0
        self.dropped_at = 0.0  # when the connection last dropped (trio clock)
        self._ids = itertools.count(1)
        self._pending: dict[int, _Slot] = {}
        sock = context().socket(zmq.DEALER)
        # Queue only to live connections: a call to a dead peer must time out,
        # not sit in a buffer and run when the peer comes back.
        sock.setsockopt(zmq.IMMEDIATE, 1)
        sock.setsockopt(zmq.SNDHWM, _HWM)
        sock.setsockopt(zmq.RCVHWM, _HWM)
        # 10 ms, doubling to the max: a node started alongside its coordinator
        # (a local cluster) often connects before it listens, and waited
        # 100-200 ms (the interval plus libzmq's jitter) to try again.
        sock.setsockopt(zmq.RECONNECT_IVL, 10)
        sock.setsockopt(zmq.RECONNECT_IVL_MAX, 2000)
        sock.setsockopt(zmq.MAXMSGSIZE, max_message + 4096)
        if security is not None:
            security.apply_client(sock)
        self._zs = ZSocket(sock, linger_ms=0, head=1)
        # ZeroMQ reconnects by itself and tells a DEALER nothing when its peer
        # goes away; the socket monitor does, so calls in flight to a peer
        # that died fail now instead of at their deadline.
        # Handshake events too, with or without a key: a client in the clear
        # that meets a secure cluster is told so at once, not after a timeout.
        self._secure = security is not None
        self._monitor = ZSocket(sock.get_monitor_socket(
            zmq.EVENT_DISCONNECTED | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | HANDSHAKE_EVENTS), linger_ms=0)
        # When a handshake last broke off unexplained (the peer closed it: a
        # secure server meeting a client in the clear may, before saying why).
        self.handshake_broke = -math.inf
        # Set while the peer refuses our key: calls fail at once with it.
        self.auth_error: BusError | None = None
        self._sending: set[trio.CancelScope] = set()
        try:
            sock.connect(endpoint)
        except zmq.ZMQError as e:
            self.close()
            raise BusError(f"bad endpoint {endpoint!r}: {e}", code="bad-endpoint") from None

    def __repr__(self) -> str:
        return f"Peer({self.endpoint})"

    @property
    def closed(self) -> bool:
        return self._zs.closed

    async def run(self) -> None:
        """Receive replies and hand them to their callers, until cancelled."""
        zs = self._zs
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._watch_connection)
                try:
                    while True:
                        try:
                            batch = await zs.recv_batch()
                        except trio.ClosedResourceError:
                            return
                        self._deliver(batch)
                finally:
                    nursery.cancel_scope.cancel()
        finally:
            self.close()

    def _deliver(self, batch: list[list[Any]]) -> None:
        self.last_heard = trio.current_time()
        pending = self._pending
        for msg in batch:
            try:
                env = decode(msg[0], self.max_message, msg[1:])
            except ProtocolError as e:
                log.warning("bad message from %s: %s", self.endpoint, e.message)
                continue
            slot = pending.get(env.id)
            if slot is None:
                continue  # a late reply to a call that timed out
            if env.kind == REPLY:
                slot.value = env.body
            elif env.kind == ERROR:
                body = env.body if isinstance(env.body, dict) else {}
                slot.error = remote_error(
                    str(body.get("code", "error")),
                    str(body.get("message", "error without a message")),
                    peer=self.endpoint, op=slot.op,
                )
            else:
                continue
            slot.event.set()

    async def _watch_connection(self) -> None:
        """Fail the calls in flight when the connection to the peer drops."""
        try:
            while True:
                event = await self._monitor.recv()
                kind = int.from_bytes(event[0][:2], "little") if event and len(event[0]) >= 2 else 0
                if kind & HANDSHAKE_EVENTS:
                    self._handshake(kind)
                    continue
                if kind == zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL:
                    self.handshake_broke = trio.current_time()
                self.dropped_at = trio.current_time()
                if self._pending:
                    # A reply sent just before the peer went away can still be
                    # on its way from libzmq's I/O thread to this socket (which
                    # takes its commands lazily): the receive loop gets a moment
                    # to hand it to its caller before the rest are failed.
                    await trio.sleep(_LATE_REPLY_GRACE)
                # Replies that came before the drop are answers, not losses.
                while (msg := self._zs.recv_nowait()) is not None:
                    self._deliver([msg])
                self._fail_pending(lambda op: ConnectionLost(self.endpoint, op, self.timeout))
        except trio.ClosedResourceError:
            return

    def _handshake(self, kind: int) -> None:
        if kind == zmq.EVENT_HANDSHAKE_SUCCEEDED:
            self.auth_error = None
            return
        self.auth_error = refused(self.endpoint, self._secure)
        for scope in self._sending:
            scope.cancel()
        self._fail_pending(lambda op: self.auth_error)

    def _fail_pending(self, error: Callable[[str], BaseException]) -> None:
        """Wake every call still waiting, with `error(op)`."""
        for slot in self._pending.values():
            if not slot.event.is_set():
                slot.error = error(slot.op)
                slot.event.set()

    async def call(
        self, op: str, body: Any = None, *, timeout: float | None = None, retry_busy: bool = True
    ) -> Any:
        """Call `op` and return its reply body; raise its typed error or CallTimeout."""
        seconds = self.timeout if timeout is None else timeout
        deadline = trio.current_time() + seconds
        backoff = 0.002
        busy: Busy | None = None
        while True:
            try:
                return await self._call_once(op, body, deadline, seconds)
            except Busy as e:
                remaining = deadline - trio.current_time()
                if not retry_busy or remaining <= backoff:
                    raise
                busy = e
                await trio.sleep(backoff)
                backoff = min(backoff * 2, 0.5)
            except CallTimeout as t:
                if busy is None or type(t) is not CallTimeout:  # (a lost connection says so)
                    raise
                # The deadline passed on a retry of a call the peer refused as
                # busy: busy is what the caller should hear (a loaded machine
                # can let the last refusal miss the deadline by a hair).
                raise busy from None

    async def _call_once(self, op: str, body: Any, deadline: float, seconds: float) -> Any:
        call = await self._send_call(op, body, deadline, seconds)
        return await call.reply()

    async def _send_call(self, op: str, body: Any, deadline: float, seconds: float) -> PendingCall:
        if self._zs.closed:
            raise PeerClosed(f"connection to {self.endpoint} is closed")
        if self.auth_error is not None:
            raise self.auth_error
        call_id = next(self._ids)
        frames = encode_frames(CALL, call_id, op, self.node_id, body)
        slot = _Slot(op)
        self._pending[call_id] = slot
        try:
            if not self._zs.send_nowait(frames):
                # No connection to send on (IMMEDIATE) within connect_timeout
                # means the peer is down: say so now, not at the deadline.
                with trio.move_on_at(min(deadline, trio.current_time() + self.connect_timeout)) as sending:
                    self._sending.add(sending)
                    try:
                        await self._zs.send(frames)
                    finally:
                        self._sending.discard(sending)
                if sending.cancelled_caught and self.auth_error is not None:
                    raise self.auth_error
                if sending.cancelled_caught and self.handshake_broke >= deadline - seconds:
                    # Connections were made and their handshakes failed: not a dead peer.
                    raise refused(self.endpoint, self._secure)
                if sending.cancelled_caught:
                    raise CallTimeout(self.endpoint, op, self.connect_timeout, unreachable=True)
        except trio.ClosedResourceError:
            del self._pending[call_id]
            raise PeerClosed(f"connection to {self.endpoint} closed during {op!r}") from None
        except BaseException:
            del self._pending[call_id]
            raise
        return PendingCall(self, call_id, slot, deadline, seconds)

    async def send_call(self, op: str, body: Any = None, *, timeout: float | None = None) -> PendingCall:
        """Send a call now and return a handle whose `reply()` awaits the answer.

        Calls sent this way leave in the order they were sent, so several can
        be in flight to an actor that handles them in order (populate chunks).
        No `busy` retry: meant for ops outside admission control.
        """
        seconds = self.timeout if timeout is None else timeout
        return await self._send_call(op, body, trio.current_time() + seconds, seconds)

    def post(self, op: str, body: Any = None) -> bool:
        """Send a one-way message; False if it could not be queued (no connection)."""
        if self._zs.closed:
            return False
        try:
            return self._zs.send_nowait(encode_frames(POST, 0, op, self.node_id, body))
        except trio.ClosedResourceError:
            return False

    async def post_when_connected(self, op: str, body: Any, within: float) -> bool:
        """`post`, waiting up to `within` seconds for a connection to send it
        on (it leaves the moment one is made); False if none came."""
        with trio.move_on_after(within):
            try:
                await self._zs.send(encode_frames(POST, 0, op, self.node_id, body))
                return True
            except trio.ClosedResourceError:
                return False
        return False

    def close(self) -> None:
        if self._zs.closed:
            return
        try:
            self._zs.sock.disable_monitor()
        except zmq.ZMQError:
            pass
        self._monitor.close()
        self._zs.close()
        self._fail_pending(lambda op: PeerClosed(f"connection to {self.endpoint} closed"))


class PendingCall:
    """A call on its way: `reply()` once, or `discard()` to stop waiting."""

    __slots__ = ("peer", "call_id", "slot", "deadline", "seconds")

    def __init__(self, peer: Peer, call_id: int, slot: _Slot, deadline: float, seconds: float) -> None:
        self.peer = peer
        self.call_id = call_id
        self.slot = slot
        self.deadline = deadline
        self.seconds = seconds

    def discard(self) -> None:
        self.peer._pending.pop(self.call_id, None)

    async def reply(self) -> Any:
        peer, slot, op = self.peer, self.slot, self.slot.op
        try:
            with trio.move_on_at(self.deadline):
                await slot.event.wait()
        finally:
            self.discard()
        if slot.error is not None:
            raise slot.error
        if not slot.event.is_set():
            if peer._zs.closed:
                raise PeerClosed(f"connection to {peer.endpoint} closed during {op!r}")
            raise CallTimeout(peer.endpoint, op, self.seconds)
        return slot.value
