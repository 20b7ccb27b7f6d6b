"""Liveness tells a peer that stopped answering from one that answers, before
it is lost: placement goes around it meanwhile. Real sockets on 127.0.0.1."""

from __future__ import annotations

import functools

import trio

from weft.bus.heartbeat import Liveness
from weft.bus.peers import PeerPool
from weft.bus.rpc import Server

from helpers import await_for


async def test_a_peer_that_stops_answering_is_unanswered_before_it_is_lost(nursery: trio.Nursery) -> None:
    answering = trio.Event()
    answering.set()

    async def ping(body: object, ctx: object) -> dict:
        await answering.wait()  # cleared: a paused node, its connection up
        return {}

    server = Server("storage")
    server.add("ping", ping, bypass=True)
    endpoint = await nursery.start(server.serve, "tcp://127.0.0.1:0")
    pool = PeerPool("coordinator", nursery, timeout=2)
    lost: list[str] = []
    liveness = Liveness(interval=0.1, timeout=3.0, on_lost=lost.append)
    liveness.watch("s", functools.partial(pool.get(endpoint).call, "ping", timeout=0.5))
    nursery.start_soon(liveness.run)
    with trio.fail_after(10):
        for _ in range(10):  # answering: pinged every interval, never unanswered
            await trio.sleep(0.05)
            assert not liveness.unanswered("s")
        answering = trio.Event()  # from now on pings get no answer
        await await_for(lambda: liveness.unanswered("s"), 2.5, "unanswered")
        assert lost == []  # noticed well before the 3 s timeout calls it lost
        answering.set()
        await await_for(lambda: not liveness.unanswered("s"), 2.0, "answering again")
