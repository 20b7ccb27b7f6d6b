"""Liveness: pings quiet peers over real sockets, reports the lost ones once."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import pytest
import trio

from weft.bus.heartbeat import Liveness
from weft.bus.peers import PeerPool
from weft.bus.rpc import CallContext, Server

from helpers import await_for

Serve = Callable[..., Any]  # the `serve` fixture from conftest.py


def ping_server(name: str) -> Server:
    server = Server(name)
    server.add("ping", lambda body, ctx: {"node": name}, bypass=True)
    return server


async def test_stopped_peer_is_reported_lost_and_live_peer_is_not(
    serve: Serve, nursery: trio.Nursery
) -> None:
    doomed_scope = trio.CancelScope()
    live = ping_server("live")
    live_ep = await serve(live)
    doomed = ping_server("doomed")
    doomed_ep = await serve(doomed, scope=doomed_scope)
    pool = PeerPool("watcher", nursery, timeout=2)
    lost: list[str] = []
    liveness = Liveness(interval=0.1, timeout=0.5, on_lost=lost.append)
    for key, ep in (("live", live_ep), ("doomed", doomed_ep)):
        liveness.watch(key, functools.partial(pool.get(ep).call, "ping", timeout=0.3))
    nursery.start_soon(liveness.run)

    # Pings answered over twice the timeout (10 at 0.1 s intervals): none lost.
    await await_for(lambda: doomed.stats.calls >= 10 and live.stats.calls >= 10, 5, "10 pings each")
    assert lost == []

    doomed_scope.cancel()
    stopped = trio.current_time()
    await await_for(lambda: bool(lost), timeout=2.0)
    elapsed = trio.current_time() - stopped
    assert lost == ["doomed"]
    assert elapsed <= 1.0, f"reported after {elapsed:.2f}s"

    # Reported once, and the live peer never: over more pings than the timeout spans.
    pinged = live.stats.calls
    await await_for(lambda: live.stats.calls >= pinged + 8, 5, "8 more pings of the live peer")
    assert lost == ["doomed"]
    assert liveness.watched == ["live"]
    assert liveness.last_seen("doomed") is None


async def test_peer_that_never_answers_is_lost(serve: Serve, nursery: trio.Nursery) -> None:
    server = Server("stuck")

    async def ping(body: Any, ctx: CallContext) -> None:
        await trio.sleep_forever()

    server.add("ping", ping, bypass=True)
    ep = await serve(server)
    pool = PeerPool("watcher", nursery, timeout=10)
    lost: list[str] = []
    liveness = Liveness(interval=0.1, timeout=0.5, on_lost=lost.append)
    liveness.watch("stuck", functools.partial(pool.get(ep).call, "ping"))
    nursery.start_soon(liveness.run)
    start = trio.current_time()
    await await_for(lambda: bool(lost), timeout=2.0)
    assert lost == ["stuck"]
    assert 0.5 <= trio.current_time() - start <= 1.0


async def test_any_traffic_counts_as_a_heartbeat(nursery: trio.Nursery) -> None:
    pings = 0

    async def failing_ping() -> None:
        nonlocal pings
        pings += 1
        raise ConnectionError("no answer")

    lost: list[str] = []
    liveness = Liveness(interval=0.1, timeout=0.3, on_lost=lost.append)
    liveness.watch("chatty", failing_ping)
    liveness.watch("silent", failing_ping)
    nursery.start_soon(liveness.run)
    with trio.fail_after(2):
        for _ in range(60):  # 0.6 s of traffic from one of them
            liveness.seen("chatty")
            await trio.sleep(0.01)
    assert lost == ["silent"]
    assert liveness.watched == ["chatty"]
    assert pings >= 1  # the silent one was pinged before it was given up


def test_timeout_must_exceed_interval() -> None:
    with pytest.raises(ValueError, match="longer than its interval"):
        Liveness(interval=1.0, timeout=1.0)
