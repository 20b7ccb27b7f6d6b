"""The per-node latency bound: the floor for a quick node, a multiple of what
a slow node usually takes, and not thrown off by one answer after a pause."""

from __future__ import annotations

import time

import trio
from e2e.conftest import Daemons, job_id, peer, read_object

from weft.actors.storage.client import Latency, ObjectWriter, ReplicatedWriter

from helpers import SilentStorage, free_endpoint


def test_a_quick_node_gets_the_floor_and_a_slow_one_a_multiple_of_its_latency() -> None:
    lat = Latency(floor=1.5, factor=8.0)
    assert lat.bound("never-called") == 1.5
    for _ in range(100):
        lat.record("quick", 0.002)
        lat.record("slow", 0.5)
    assert lat.bound("quick") == 1.5
    assert 3.5 < lat.bound("slow") <= 4.0  # 8 x ~0.5 s


def test_one_answer_that_waited_out_a_pause_barely_moves_the_bound() -> None:
    lat = Latency(floor=1.5, factor=8.0)
    for _ in range(100):
        lat.record("node", 0.002)
    lat.record("node", 8.0)  # the reply to a call made just before an 8 s SIGSTOP
    assert lat.bound("node") == 1.5


def test_a_node_that_missed_its_bound_is_suspect_until_it_answers() -> None:
    lat = Latency(floor=1.5, factor=8.0, suspect_for=60.0, suspect_bound=0.25)
    lat.record("node", 0.002)
    lat.missed("node")
    assert lat.suspect("node") and lat.bound("node") == 0.25
    assert lat.bound("other") == 1.5  # one node's pause is not another's
    lat.record("node", 0.002)  # it answered: running again
    assert not lat.suspect("node") and lat.bound("node") == 1.5


def test_suspicion_ends_after_its_time_and_a_miss_while_suspect_does_not_extend_it() -> None:
    lat = Latency(floor=1.5, factor=8.0, suspect_for=0.2, suspect_bound=0.25)
    lat.missed("node")
    time.sleep(0.1)
    lat.missed("node")  # a short-bound miss: not a new suspicion
    time.sleep(0.15)
    assert not lat.suspect("node") and lat.bound("node") == 1.5


async def test_a_write_drops_a_suspect_replica_without_waiting_its_full_bound(daemons: Daemons) -> None:
    """The first write that meets a silent node waits its bound and makes it
    suspect; the next write drops it at once even with a 30 s bound (in the
    soak, the jobs one compute slot ran in turn each waited a full bound)."""
    store = daemons.storage("storage-a")
    silent = SilentStorage(free_endpoint())
    lat = Latency(floor=0.3, factor=8.0, suspect_for=60.0, suspect_bound=0.25)
    with trio.fail_after(20):
        async with peer(store.endpoint) as a, peer(silent.endpoint) as s, trio.open_nursery() as nursery:
            await nursery.start(silent.serve)

            async def write(name: str) -> ReplicatedWriter:
                w = ReplicatedWriter([ObjectWriter(a, name, 1), ObjectWriter(s, name, 1)], latency=lat)
                await w.write(b"bytes")
                await w.close()
                return w

            first = await write(f"{job_id('suspect')}/one")
            assert [ep for ep, _ in first.dropped] == [silent.endpoint]
            assert lat.suspect(silent.endpoint)
            lat.floor = 30.0  # the full bound: only suspicion can drop it sooner
            with trio.fail_after(10):
                second = await write(f"{job_id('suspect')}/two")
            assert [ep for ep, _ in second.dropped] == [silent.endpoint]
            assert await read_object(a, f"{second.writers[0].name}") == b"bytes"
            nursery.cancel_scope.cancel()
