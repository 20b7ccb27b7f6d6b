"""The trio adapter for pyzmq: edge-triggered fd handling on real sockets."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest
import trio
import trio.lowlevel
import trio.testing
import zmq

from weft.bus.zsock import PeerUnreachable, ZSocket, bound_endpoint, context

from helpers import await_for


@pytest.fixture
async def pair() -> AsyncIterator[tuple[ZSocket, ZSocket]]:
    """A connected (ROUTER, DEALER) pair on an ephemeral loopback port."""
    router = ZSocket(context().socket(zmq.ROUTER), linger_ms=0)
    dealer = ZSocket(context().socket(zmq.DEALER), linger_ms=0)
    router.sock.bind("tcp://127.0.0.1:0")
    dealer.sock.connect(bound_endpoint(router.sock))
    try:
        yield router, dealer
    finally:
        dealer.close()
        router.close()


async def fill(send_nowait: Callable[[], bool]) -> int:
    """Send until the peer is full for good (refused three times, 50 ms apart,
    so the I/O thread had time to move data); returns how many were sent."""
    sent = refused = 0
    with trio.fail_after(10):
        while refused < 3:
            if send_nowait():
                sent += 1
                refused = 0
            else:
                refused += 1
                await trio.sleep(0.05)
    return sent


@dataclass
class Waited:
    gave_up: bool  # the send was still waiting at the deadline
    elapsed: float
    ticks: int  # how often another task ran meanwhile (every 10 ms if the loop is free)


async def send_while_ticking(send: Awaitable[None], seconds: float) -> Waited:
    """Await `send` for at most `seconds` while a task counts the loop's turns."""
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await trio.sleep(0.01)
            ticks += 1

    async with trio.open_nursery() as nursery:
        nursery.start_soon(ticker)
        start = trio.current_time()
        with trio.move_on_after(seconds) as scope:
            await send
        elapsed = trio.current_time() - start
        nursery.cancel_scope.cancel()
    return Waited(scope.cancelled_caught, elapsed, ticks)


async def hello(router: ZSocket, dealer: ZSocket) -> bytes:
    """Make the router learn the dealer; returns the dealer's identity."""
    with trio.fail_after(5):
        await dealer.send([b"hello"])
        ident, msg = await router.recv()
    assert msg == b"hello"
    return ident


def test_bound_endpoint_resolves_port_zero_and_wildcard() -> None:
    with context().socket(zmq.ROUTER) as s:
        s.bind("tcp://0.0.0.0:0")
        ep = bound_endpoint(s)
    assert ep.startswith("tcp://127.0.0.1:")
    assert int(ep.rsplit(":", 1)[1]) > 0


async def test_send_and_receive_multipart(pair: tuple[ZSocket, ZSocket]) -> None:
    router, dealer = pair
    ident = await hello(router, dealer)
    with trio.fail_after(5):
        await router.send([ident, b"a", b"", memoryview(b"c")])
        assert await dealer.recv() == [b"a", b"", b"c"]
        for i in range(10):
            await dealer.send([str(i).encode()])
        await trio.sleep(0.05)
        batch = await router.recv_batch(limit=4)
        assert [m[1] for m in batch] == [b"0", b"1", b"2", b"3"]
        rest = []
        while len(rest) < 6:
            rest += await router.recv_batch()
        assert [m[1] for m in rest] == [str(i).encode() for i in range(4, 10)]


async def test_cancelled_recv_loses_nothing(pair: tuple[ZSocket, ZSocket]) -> None:
    router, dealer = pair
    ident = await hello(router, dealer)
    with trio.move_on_after(0.1) as scope:
        await dealer.recv()
    assert scope.cancelled_caught
    await router.send([ident, b"after the cancel"])
    with trio.fail_after(2):
        assert await dealer.recv() == [b"after the cancel"]


async def test_recv_cancelled_at_random_moments_loses_and_reorders_nothing(
    pair: tuple[ZSocket, ZSocket],
) -> None:
    router, dealer = pair
    ident = await hello(router, dealer)
    rng = random.Random(1)
    n = 500
    got: list[int] = []

    async def sender() -> None:
        for i in range(n):
            await router.send([ident, str(i).encode()])
            if rng.random() < 0.3:
                await trio.sleep(rng.random() * 0.002)

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(sender)
            cancels = 0
            while len(got) < n:
                with trio.move_on_after(rng.random() * 0.001) as scope:
                    got.append(int((await dealer.recv())[0]))
                cancels += scope.cancelled_caught
    assert got == list(range(n))
    assert cancels > 10  # the test did cancel receives along the way


async def test_separate_sender_and_receiver_tasks_do_not_deadlock(
    pair: tuple[ZSocket, ZSocket],
) -> None:
    """2,000 strict ping-pongs, each side with its own send and recv task on one socket."""
    router, dealer = pair
    await hello(router, dealer)
    n = 2000
    replies: list[int] = []

    async def echo_side() -> None:
        send, recv = trio.open_memory_channel[list[bytes]](0)

        async def receiver() -> None:
            async with send:
                for _ in range(n):
                    await send.send(await router.recv())

        async def sender() -> None:
            async with recv:
                async for who, payload in recv:
                    await router.send([who, payload])

        async with trio.open_nursery() as nursery:
            nursery.start_soon(receiver)
            nursery.start_soon(sender)

    async def client_side() -> None:
        turn_send, turn_recv = trio.open_memory_channel[int](0)

        async def sender() -> None:
            for i in range(n):
                await dealer.send([str(i).encode()])
                await turn_recv.receive()  # wait for the reply before the next ping

        async def receiver() -> None:
            for _ in range(n):
                replies.append(int((await dealer.recv())[0]))
                await turn_send.send(0)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(sender)
            nursery.start_soon(receiver)

    with trio.fail_after(15):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(echo_side)
            nursery.start_soon(client_side)
    assert replies == list(range(n))


async def test_two_tasks_receiving_on_one_socket_share_the_messages(
    pair: tuple[ZSocket, ZSocket],
) -> None:
    router, dealer = pair
    ident = await hello(router, dealer)
    got: list[bytes] = []
    n = 300

    async def reader() -> None:
        while True:
            got.append((await dealer.recv())[0])

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(reader)
            nursery.start_soon(reader)
            await trio.testing.wait_all_tasks_blocked()
            for i in range(n):
                await router.send([ident, str(i).encode()])
                if i % 7 == 0:
                    await trio.lowlevel.checkpoint()
            await await_for(lambda: len(got) >= n, 10, f"{n} messages received")
            nursery.cancel_scope.cancel()
    assert sorted(int(x) for x in got) == list(range(n))


async def test_send_at_high_water_mark_waits_without_blocking_the_loop() -> None:
    router = ZSocket(context().socket(zmq.ROUTER), linger_ms=0)
    dealer_sock = context().socket(zmq.DEALER)
    dealer_sock.setsockopt(zmq.SNDHWM, 1)
    dealer_sock.setsockopt(zmq.SNDBUF, 4096)
    router.sock.setsockopt(zmq.RCVHWM, 1)
    router.sock.setsockopt(zmq.RCVBUF, 4096)
    dealer = ZSocket(dealer_sock, linger_ms=0)
    with router, dealer:
        router.sock.bind("tcp://127.0.0.1:0")
        dealer.sock.connect(bound_endpoint(router.sock))
        await hello(router, dealer)
        chunk = b"x" * 65536
        # Fill the pipe and the kernel buffers while the router does not read.
        sent = await fill(lambda: dealer.send_nowait([chunk]))
        waited = await send_while_ticking(dealer.send([b"blocked"]), 0.3)
        assert waited.gave_up, "send completed although the peer was at its HWM"
        assert 0.25 <= waited.elapsed < 1.0
        assert waited.ticks >= 10, f"the event loop was stalled during send (ticked {waited.ticks} times)"

        # Once the router drains, a waiting send goes through.
        done = trio.Event()

        async def late_send() -> None:
            await dealer.send([b"last"])
            done.set()

        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(late_send)
                received = 0
                while True:
                    _, payload = await router.recv()
                    received += 1
                    if payload == b"last":
                        break
                await done.wait()
        assert received == sent + 1  # nothing lost, the cancelled send sent nothing


async def test_close_wakes_a_task_waiting_in_recv_with_closed_resource_error() -> None:
    dealer = ZSocket(context().socket(zmq.DEALER), linger_ms=0)
    dealer.sock.connect("tcp://127.0.0.1:1")
    outcomes: list[str] = []

    async def waiter() -> None:
        try:
            await dealer.recv()
        except trio.ClosedResourceError:
            outcomes.append("closed")

    with trio.fail_after(2):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(waiter)  # this one waits on the fd
            nursery.start_soon(waiter)  # this one is parked behind it
            await trio.testing.wait_all_tasks_blocked()
            dealer.close()
    assert outcomes == ["closed", "closed"]
    assert dealer.closed
    dealer.close()  # idempotent


async def test_recv_and_send_after_close_raise_closed_resource_error() -> None:
    # A task that reaches recv/send only after close() (e.g. a receive loop
    # started in the same tick as the close) must get ClosedResourceError,
    # like a task that was already waiting, not a raw zmq error.
    dealer = ZSocket(context().socket(zmq.DEALER), linger_ms=0)
    dealer.close()
    with pytest.raises(trio.ClosedResourceError):
        await dealer.recv()
    with pytest.raises(trio.ClosedResourceError):
        await dealer.send([b"x"])


async def test_router_to_unknown_identity_raises_peer_unreachable(
    pair: tuple[ZSocket, ZSocket],
) -> None:
    router, _ = pair
    router.sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
    with pytest.raises(PeerUnreachable):
        router.send_nowait([b"nobody", b"x"])
    with pytest.raises(PeerUnreachable):
        await router.send([b"nobody", b"x"])


class _CountingSocket:
    """A zmq socket that counts reads of EVENTS (each costs libzmq a getpid and a poll)."""

    def __init__(self, sock: zmq.Socket) -> None:
        self._sock = sock
        self.events_reads = 0

    def get(self, option: int) -> int:
        if option == zmq.EVENTS:
            self.events_reads += 1
        return self._sock.get(option)

    def __getattr__(self, name: str) -> object:
        return getattr(self._sock, name)


async def test_a_waiting_receive_reads_events_twice_per_message(pair: tuple[ZSocket, ZSocket]) -> None:
    # Once when the fd wakes it, once after the receive (which also says
    # whether more is queued): every read more is two syscalls per message
    # on every daemon's hot path.
    router, dealer = pair
    await hello(router, dealer)
    counting = _CountingSocket(router.sock)
    router.sock = counting  # type: ignore[assignment]
    got: list[list[list[bytes]]] = []
    with trio.fail_after(5):
        for i in range(3):
            counting.events_reads = 0
            async with trio.open_nursery() as nursery:
                nursery.start_soon(lambda: _collect(router, got))
                await trio.testing.wait_all_tasks_blocked()
                await dealer.send([str(i).encode()])
            assert [m[1] for m in got[-1]] == [str(i).encode()]
            assert counting.events_reads <= 2, f"{counting.events_reads} reads of EVENTS for one message"


async def _collect(router: ZSocket, got: list[list[list[bytes]]]) -> None:
    got.append(await router.recv_batch())


async def test_a_send_to_a_full_peer_waits_without_blocking_the_loop_while_another_peer_takes_messages() -> None:
    # A ROUTER says it can send while any peer's pipe has room: a message for
    # the one peer at its high-water mark must wait (cancellably, yielding)
    # rather than spin on a socket that reports itself writable.
    router = ZSocket(context().socket(zmq.ROUTER), linger_ms=0)
    router.sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
    router.sock.setsockopt(zmq.SNDHWM, 2)
    router.sock.bind("tcp://127.0.0.1:0")
    dealers = []
    for _ in range(2):
        d = ZSocket(context().socket(zmq.DEALER), linger_ms=0)
        d.sock.setsockopt(zmq.RCVHWM, 2)
        d.sock.connect(bound_endpoint(router.sock))
        dealers.append(d)
    try:
        slow, quick = [await hello(router, d) for d in dealers]
        big = b"x" * (1 << 20)
        await fill(lambda: router.send_nowait([slow, big]))  # the slow peer's pipe and TCP buffers
        assert router.sock.get(zmq.EVENTS) & zmq.POLLOUT  # writable: the quick peer has room
        waited = await send_while_ticking(router.send([slow, b"one more"]), 0.5)
        assert waited.gave_up  # still full: the send waited until its deadline ...
        assert waited.ticks >= 10  # ... and the loop ran other tasks meanwhile
        with trio.fail_after(5):
            await router.send([quick, b"to the quick one"])
            assert await dealers[1].recv() == [b"to the quick one"]
    finally:
        for d in dealers:
            d.close()
        router.close()
