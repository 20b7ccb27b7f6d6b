"""Flood each role past its admission bound (real daemons, real sockets on
127.0.0.1): what it holds stays bounded (counted by the node's own `info`),
it does not crash, and news still flows (polls and pings are answered while
the flood goes on). Every loop is bounded in count and time."""

from __future__ import annotations

import os
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

from weft.actors.client import Client
from weft.actors.model import JobSpec
from weft.bus.errors import Busy
from weft.bus.peers import connect
from weft.bus.rpc import Peer
from weft.localcluster.cluster import Proc
from weft.protocol.events import Poll
from weft.protocol.objects import Put
from weft.protocol.tasks import Refused, Start, StartMany, StartManyReply

from helpers import wait_for


def daemon(tmp_path: Path, role: str, *flags: str) -> Iterator[Proc]:
    args = [role, "--data-dir", str(tmp_path / role), "--node-id", f"{role}-flood", "--no-beacon",
            "--listen", "tcp://127.0.0.1:0", *flags]
    p = Proc(role, args, tmp_path / f"{role}.log", dict(os.environ))
    try:
        p.wait_ready(30)
        yield p
    finally:
        p.stop()


@pytest.fixture
def compute(tmp_path: Path) -> Iterator[Proc]:
    yield from daemon(tmp_path, "compute", "--slots", "1", "--max-queued", "20")


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[Proc]:
    yield from daemon(tmp_path, "storage", "--max-writes", "2")


@pytest.fixture
def coordinator(tmp_path: Path) -> Iterator[Proc]:
    yield from daemon(tmp_path, "coordinator", "--max-queue", "300")


async def flooding(endpoint: str, flood: Callable[[Peer], Awaitable[None]], *,
                   watch: Callable[[dict], None] = lambda info: None) -> tuple[int, int]:
    """Run `flood` while another connection polls, pings and reads `info`
    (handing each to `watch`); returns (polls, pings) answered meanwhile."""
    answered = [0, 0]
    async with connect(endpoint, "flooder", timeout=20) as peer, connect(endpoint, "watcher", timeout=5) as w:
        done = trio.Event()

        async def watcher() -> None:
            for _ in range(2000):
                if done.is_set():
                    return
                await w.call("poll", Poll(0, 0).to_wire())
                answered[0] += 1
                await w.call("ping", {})
                answered[1] += 1
                watch(await w.call("info", {}))
                await trio.sleep(0.01)

        async with trio.open_nursery() as n:
            n.start_soon(watcher)
            with trio.fail_after(120):
                await flood(peer)
            done.set()
    return answered[0], answered[1]


def test_a_flooded_compute_node_answers_busy_past_its_bound(compute: Proc) -> None:
    seen: list[int] = []
    counts = {"taken": 0, "busy": 0}

    async def flood(peer: Peer) -> None:
        async def starter(k: int) -> None:
            for b in range(10):
                starts = [Start(f"f{k}-{b}-{i}", JobSpec(command=["sleep", "30"]), token=1) for i in range(20)]
                reply = StartManyReply.from_wire(await peer.call(
                    "start_many", StartMany(starts, 1).to_wire(), retry_busy=False))
                for t in reply.tasks:
                    if type(t) is Refused:
                        assert t.code == "busy", t
                        counts["busy"] += 1
                    else:
                        counts["taken"] += 1

        async with trio.open_nursery() as n:
            for k in range(10):
                n.start_soon(starter, k)

    polls, pings = trio.run(lambda: flooding(compute.endpoint, flood, watch=lambda i: seen.append(i["unfinished"])))
    assert counts["taken"] == 20 and counts["busy"] == 2000 - 20
    assert seen and max(seen) <= 20
    assert polls >= 1 and pings >= 1
    assert compute.alive()


def test_a_flooded_storage_node_bounds_concurrent_writes_and_writers_retry(storage: Proc) -> None:
    seen: list[int] = []
    counts = {"written": 0, "busy": 0}
    data = os.urandom(64 << 10)

    async def flood(peer: Peer, retry: bool) -> None:
        async def writer(k: int) -> None:
            for i in range(25):
                body = Put(f"w{k}-{i}-{int(retry)}/out", data, 1).to_wire()
                try:
                    reply = await peer.call("put", body, retry_busy=retry)
                except Busy:
                    counts["busy"] += 1
                else:
                    assert reply["size"] == len(data)
                    counts["written"] += 1

        async with trio.open_nursery() as n:
            for k in range(8):
                n.start_soon(writer, k)

    polls, pings = trio.run(lambda: flooding(storage.endpoint, lambda p: flood(p, False),
                                             watch=lambda i: seen.append(i["writing"])))
    assert counts["busy"] > 0 and counts["written"] + counts["busy"] == 200
    assert seen and max(seen) <= 2
    assert polls >= 1 and pings >= 1
    # Writers that back off and retry (the default) all get through.
    counts.update(written=0, busy=0)
    trio.run(lambda: flooding(storage.endpoint, lambda p: flood(p, True)))
    assert counts == {"written": 200, "busy": 0}
    assert storage.alive()


def test_a_flooded_coordinator_bounds_its_queue_and_the_client_honours_busy(coordinator: Proc) -> None:
    seen: list[int] = []
    counts = {"taken": 0, "busy": 0}
    hints: list[str] = []

    def specs(tag: str, n: int) -> list[dict[str, Any]]:
        return [JobSpec(command=["true"], name=f"{tag}-{i}", outputs=["stdout"]).to_wire() for i in range(n)]

    async def flood(peer: Peer) -> None:
        async def submitter(k: int) -> None:
            for b in range(10):
                try:
                    await peer.call("submit", {"jobs": specs(f"s{k}-{b}", 50)}, retry_busy=False)
                except Busy as e:
                    counts["busy"] += 1
                    hints.append(e.message)
                else:
                    counts["taken"] += 50

        async with trio.open_nursery() as n:
            for k in range(6):
                n.start_soon(submitter, k)

    polls, pings = trio.run(lambda: flooding(coordinator.endpoint, flood, watch=lambda i: seen.append(i["jobs"])))
    assert counts["taken"] == 300 and counts["busy"] == 60 - 6
    assert max(seen) <= 300 and "retry in 2s" in hints[0]
    assert polls >= 1 and pings >= 1

    # The client waits as long as it is asked to (it does not hammer the
    # coordinator with retries) and submits once there is room.
    with Client(coordinator.endpoint, retry_for=60) as client:
        refused_before = client.call("info", {})["stats"]["errors"]
        result: list[Any] = []
        t = threading.Thread(target=lambda: result.append(
            client.submit_specs([JobSpec.from_wire(s) for s in specs("late", 10)])))
        t.start()
        try:
            wait_for(lambda: client.call("info", {})["stats"]["errors"] > refused_before, 10, "a busy answer")
            assert not result
            waiting = [j["job"] for j in client.call("status", {"limit": 300})["jobs"]]
            client.cancel(waiting[:20])
        finally:
            t.join(60)
        assert result and len(result[0]) == 10
        assert client.call("info", {})["stats"]["errors"] - refused_before <= 3
        wait_for(lambda: client.stats()["jobs"].get("cancelled") == 20, 10, "cancelled jobs counted")
    assert coordinator.alive()
