"""A beacon listener's callbacks that raise: each is still called for every
peer, the failure is logged, and discovery and expiry go on (real UDP on
loopback, as tests/test_beacon.py; the fixed version of its
test_failing_callback_does_not_stop_discovery, which never checked that the
callback was called)."""

from __future__ import annotations

import logging
import socket

import pytest
import trio

from weft.bus.beacon import Beacon, BeaconListener, PeerInfo

from helpers import await_for

BROADCAST = "127.255.255.255"  # see test_beacon.py: loopback broadcast, off every real interface
FAST = 0.05


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def beacon(port: int, role: str, node: str, endpoint: str) -> Beacon:
    return Beacon(role=role, node=node, endpoint=endpoint, address=BROADCAST, port=port, interval=FAST)


async def test_failing_callbacks_are_called_for_every_peer_and_discovery_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = free_port()
    found: list[str] = []
    lost: list[str] = []

    def bad_found(peer: PeerInfo) -> None:
        found.append(peer.node)
        raise RuntimeError("found callback bug")

    def bad_lost(peer: PeerInfo) -> None:
        lost.append(peer.node)
        raise RuntimeError("lost callback bug")

    caplog.set_level(logging.INFO, logger="weft.bus")
    lst = BeaconListener(port=port, bind=BROADCAST, expiry=0.5, on_found=bad_found, on_lost=bad_lost)
    with trio.fail_after(10):
        async with trio.open_nursery() as n:
            await n.start(lst.run)
            w1 = trio.CancelScope()

            async def run_w1() -> None:
                with w1:
                    await beacon(port, "compute", "w1", "tcp://127.0.0.1:5572").run()

            n.start_soon(run_w1)
            n.start_soon(beacon(port, "storage", "s1", "tcp://127.0.0.1:5580").run)
            await await_for(lambda: sorted(found) == ["s1", "w1"], 5, "both peers reported found")
            # Found after the callback failed twice: discovery is still going.
            n.start_soon(beacon(port, "compute", "w2", "tcp://127.0.0.1:5573").run)
            await await_for(lambda: "w2" in found, 5, "a third peer reported found")
            # w1 falls silent: the lost callback is called too, and fails too.
            w1.cancel()
            await await_for(lambda: lost == ["w1"], 5, "w1 reported lost")
            assert set(lst.peers) == {"s1", "w2"}
            n.cancel_scope.cancel()
    assert sorted(found) == ["s1", "w1", "w2"]  # once each
    failures = [r for r in caplog.records if r.levelno == logging.ERROR and "beacon callback" in r.getMessage()]
    assert len(failures) == 4, [r.getMessage() for r in failures]
    assert all(r.exc_info and "callback bug" in str(r.exc_info[1]) for r in failures)


async def test_a_forgotten_peer_is_found_again_by_its_next_beacon() -> None:
    """The coordinator forgets a node it lost by heartbeat (a short network cut, shorter
    than the beacon expiry): the node's next beacon must be news again, or it is never met."""
    port = free_port()
    found: list[str] = []
    lst = BeaconListener(port=port, bind=BROADCAST, expiry=30, on_found=lambda p: found.append(p.node))
    with trio.fail_after(10):
        async with trio.open_nursery() as n:
            await n.start(lst.run)
            n.start_soon(beacon(port, "compute", "w1", "tcp://127.0.0.1:5572").run)
            await await_for(lambda: found == ["w1"], what="w1 found")
            lst.forget("w1")
            await await_for(lambda: found == ["w1", "w1"], what="w1 found again after forget")
            n.cancel_scope.cancel()
