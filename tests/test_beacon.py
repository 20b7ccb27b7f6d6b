"""Beacon discovery over real UDP sockets, loopback only, on random free ports."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable

import msgpack
import pytest
import trio

from weft.bus.beacon import (
    MAX_DATAGRAM,
    Beacon,
    BeaconListener,
    PeerInfo,
    decode_announcement,
    encode_announcement,
)

BROADCAST = "127.255.255.255"
# Binding the listener to the loopback broadcast address keeps the test sockets off every
# real interface while still receiving the broadcasts (a 127.0.0.1 bind would not).
LISTEN = BROADCAST
FAST = 0.05
WAIT = 2.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def wait_until(pred: Callable[[], bool]) -> None:
    """Poll `pred`; every wait in this file is bounded by the same deadline."""
    with trio.fail_after(WAIT):
        while True:
            if pred():
                return
            await trio.sleep(0.01)


def beacon(port: int, role: str, node: str, endpoint: str, **kw: object) -> Beacon:
    return Beacon(
        role=role,
        node=node,
        endpoint=endpoint,
        address=BROADCAST,
        port=port,
        interval=kw.pop("interval", FAST),
        **kw,
    )  # type: ignore[arg-type]


def listener(port: int, **kw: object) -> BeaconListener:
    return BeaconListener(port=port, bind=LISTEN, **kw)  # type: ignore[arg-type]


async def test_listener_finds_two_beacons_with_roles_and_endpoints() -> None:
    port = free_port()
    found: list[PeerInfo] = []
    lst = listener(port, on_found=found.append)
    async with trio.open_nursery() as n:
        await n.start(lst.run)
        n.start_soon(beacon(port, "coordinator", "c1", "tcp://127.0.0.1:5571").run)
        n.start_soon(beacon(port, "compute", "w1", "tcp://127.0.0.1:5572").run)
        await wait_until(lambda: len(lst.peers) == 2)
        n.cancel_scope.cancel()
    assert lst.peers == {
        "c1": PeerInfo("coordinator", "c1", "tcp://127.0.0.1:5571"),
        "w1": PeerInfo("compute", "w1", "tcp://127.0.0.1:5572"),
    }
    # Repeated announcements of an unchanged peer are not reported again.
    assert sorted(p.node for p in found) == ["c1", "w1"]
    assert lst.ignored == 0


async def test_cancelled_beacon_expires_and_on_lost_is_called() -> None:
    port = free_port()
    lost: list[PeerInfo] = []
    lst = listener(port, expiry=0.5, on_lost=lost.append)
    async with trio.open_nursery() as n:
        await n.start(lst.run)
        n.start_soon(beacon(port, "storage", "keep", "tcp://127.0.0.1:5601").run)
        async with trio.open_nursery() as doomed:
            doomed.start_soon(beacon(port, "compute", "gone", "tcp://127.0.0.1:5602").run)
            await wait_until(lambda: {"keep", "gone"} <= lst.peers.keys())
            doomed.cancel_scope.cancel()
        start = trio.current_time()
        await wait_until(lambda: "gone" not in lst.peers)
        elapsed = trio.current_time() - start
        n.cancel_scope.cancel()
    assert lost == [PeerInfo("compute", "gone", "tcp://127.0.0.1:5602")]
    assert 0.4 <= elapsed <= 1.5
    # The peer that kept announcing survived the same sweeps.
    assert "keep" in lst.peers


async def test_two_listeners_on_one_port_both_see_the_beacon() -> None:
    port = free_port()
    a, b = listener(port), listener(port)
    async with trio.open_nursery() as n:
        await n.start(a.run)
        await n.start(b.run)
        n.start_soon(beacon(port, "compute", "w1", "tcp://127.0.0.1:5572").run)
        await wait_until(lambda: "w1" in a.peers and "w1" in b.peers)
        n.cancel_scope.cancel()
    assert a.peers == b.peers


async def test_other_cluster_is_not_learned() -> None:
    port = free_port()
    lst = listener(port, cluster="prod")
    async with trio.open_nursery() as n:
        await n.start(lst.run)
        n.start_soon(beacon(port, "compute", "w1", "tcp://127.0.0.1:5572", cluster="dev").run)
        await wait_until(lambda: lst.ignored >= 3)
        n.cancel_scope.cancel()
    assert lst.peers == {}


def _bad_datagrams() -> list[bytes]:
    good = {"weft": 1, "c": "default", "r": "compute", "n": "x", "e": "tcp://127.0.0.1:1"}
    oversized = dict(good, e="tcp://" + "a" * MAX_DATAGRAM)
    missing = {k: v for k, v in good.items() if k != "e"}
    return [
        os.urandom(64),
        b"",
        msgpack.packb(good)[:-3],  # truncated
        msgpack.packb([1, "default", "compute", "x", "e"]),
        msgpack.packb("just a string"),
        msgpack.packb(dict(good, weft=True)),
        msgpack.packb(dict(good, weft=2)),
        msgpack.packb(dict(good, weft="1")),
        msgpack.packb(dict(good, n=7)),
        msgpack.packb(dict(good, e=b"tcp://127.0.0.1:1")),
        msgpack.packb(dict(good, r=None)),
        msgpack.packb(dict(good, n="")),
        msgpack.packb(missing),
        msgpack.packb({1: 2, 3: 4}),
        b"\x81\x91\x01\x02",  # map with an unhashable (array) key
        b"\x91" * 900 + b"\xc0",  # deeply nested arrays
        b"\xd6\xff\x00\x00\x00\x00",  # timestamp ext
        msgpack.packb(oversized),
    ]


async def test_malformed_datagrams_are_ignored_and_counted() -> None:
    port = free_port()
    lst = listener(port)
    bad = _bad_datagrams()
    async with trio.open_nursery() as n:
        await n.start(lst.run)
        with trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM) as tx:
            tx.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_BROADCAST, 1)
            for data in bad:
                await tx.sendto(data, (BROADCAST, port))
        await wait_until(lambda: lst.ignored == len(bad))
        assert lst.peers == {}
        n.start_soon(beacon(port, "storage", "s1", "tcp://127.0.0.1:5580").run)
        await wait_until(lambda: "s1" in lst.peers)
        n.cancel_scope.cancel()
    assert lst.ignored == len(bad)


async def test_own_node_is_ignored() -> None:
    port = free_port()
    found: list[PeerInfo] = []
    lst = listener(port, ignore_node="me", on_found=found.append)
    async with trio.open_nursery() as n:
        await n.start(lst.run)
        n.start_soon(beacon(port, "coordinator", "me", "tcp://127.0.0.1:5571").run)
        await wait_until(lambda: lst.received >= 3)
        n.cancel_scope.cancel()
    assert lst.peers == {}
    assert found == []
    assert lst.ignored == 0  # our own beacon is normal traffic, not bad input


async def test_changed_endpoint_is_reported_again() -> None:
    port = free_port()
    found: list[PeerInfo] = []
    lst = listener(port, on_found=found.append)
    async with trio.open_nursery() as n:
        await n.start(lst.run)
        async with trio.open_nursery() as first:
            first.start_soon(beacon(port, "compute", "w1", "tcp://127.0.0.1:5572").run)
            await wait_until(lambda: "w1" in lst.peers)
            first.cancel_scope.cancel()
        n.start_soon(beacon(port, "compute", "w1", "tcp://127.0.0.1:6000").run)
        await wait_until(lambda: lst.peers["w1"].endpoint == "tcp://127.0.0.1:6000")
        n.cancel_scope.cancel()
    assert [p.endpoint for p in found] == ["tcp://127.0.0.1:5572", "tcp://127.0.0.1:6000"]


async def test_failing_callback_does_not_stop_discovery() -> None:
    port = free_port()

    def boom(peer: PeerInfo) -> None:
        raise RuntimeError("callback bug")

    lst = listener(port, on_found=boom)
    async with trio.open_nursery() as n:
        await n.start(lst.run)
        n.start_soon(beacon(port, "compute", "w1", "tcp://127.0.0.1:5572").run)
        n.start_soon(beacon(port, "storage", "s1", "tcp://127.0.0.1:5580").run)
        await wait_until(lambda: len(lst.peers) == 2)
        n.cancel_scope.cancel()


async def test_send_errors_are_warned_once_and_retried(caplog: pytest.LogCaptureFixture) -> None:
    # Destination port 0 makes sendto fail locally (EINVAL) on every beat, standing in for
    # ENETUNREACH without depending on this host's routes.
    b = Beacon(
        role="compute",
        node="w1",
        endpoint="tcp://127.0.0.1:5572",
        address="127.0.0.1",
        port=0,
        interval=0.02,
    )
    caplog.set_level(logging.DEBUG, logger="weft.bus")
    with trio.move_on_after(0.2):
        await b.run()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    retries = [r for r in caplog.records if r.levelno == logging.DEBUG]
    assert len(warnings) == 1
    assert len(retries) >= 3
    assert b.sent == 0


def test_announcement_round_trip_and_limits() -> None:
    peer = PeerInfo("compute", "w1", "tcp://127.0.0.1:5572")
    data = encode_announcement("default", peer)
    assert decode_announcement(data, "default") == peer
    assert decode_announcement(data, "other") is None
    with pytest.raises(ValueError):
        Beacon(role="compute", node="w1", endpoint="tcp://" + "a" * MAX_DATAGRAM)
    with pytest.raises(ValueError):
        Beacon(role="compute", node="w1", endpoint="e", interval=0)
    with pytest.raises(ValueError):
        BeaconListener(expiry=-1)
