"""Handoff of large values between callables on a real local cluster: a
consumer on the producer's compute node takes the bytes from that node's
value cache, a consumer on another compute node reads them from the
producer's node (its `read` op), and a value over the cache's budget goes
through storage as before. Every value is still stored: the consumer's bytes
must equal the producer's stored output."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import trio

from weft.actors.client import Client, ObjectRef
from weft.actors.storage.client import read_object
from weft.bus.peers import connect
from weft.localcluster.cluster import LocalCluster

from .conftest import running_cluster

MIB = 1 << 20
# Small enough that a 3 MiB value is refused (it goes the old way), large enough for 1 MiB ones.
BUDGET_MB = 2


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with running_cluster(tmp_path_factory.mktemp("handoff"), compute=2, storage=1, slots=1,
                         compute_args=["--value-cache-mb", str(BUDGET_MB)]) as c:
        yield c


@pytest.fixture(scope="module")
def client(cluster: LocalCluster) -> Iterator[Client]:
    with Client(cluster.endpoint, timeout=10.0, retry_for=10.0) as c:
        yield c


def node_info(endpoint: str) -> dict[str, Any]:
    async def ask() -> dict[str, Any]:
        with trio.fail_after(10):
            async with connect(endpoint, "test-handoff") as peer:
                return await peer.call("info")

    return trio.run(ask)


def cache_view(cluster: LocalCluster, i: int) -> dict[str, Any]:
    return node_info(cluster.computes[i].endpoint)["value_cache"]


def handoff(client: Client, cluster: LocalCluster, src: int, dst: int, size: int, tag: str) -> tuple[bytes, bytes]:
    """A producer of `size` bytes pinned to compute `src`, its consumer (echo) to `dst`."""
    p = client.spec("weft.bench.workloads:make_bytes", nbytes=str(size), x=tag, node=cluster.node_name("compute", src))
    q = client.spec("weft.actors.builtins:echo", data=ObjectRef(f"{p.job_id()}/result"),
                    node=cluster.node_name("compute", dst))
    made, took = client.submit_specs([p, q])
    return made.result(timeout=60), took.result(timeout=60)


def test_a_consumer_on_the_producers_node_takes_the_value_from_memory(client: Client, cluster: LocalCluster) -> None:
    before = cache_view(cluster, 0)
    made, took = handoff(client, cluster, 0, 0, MIB, "same")
    assert len(made) == MIB and took == made
    after = cache_view(cluster, 0)
    assert after["hits"] == before["hits"] + 1
    assert after["bytes_served"] - before["bytes_served"] == MIB
    assert after["bytes"] <= after["budget"] == BUDGET_MB * MIB


def test_a_consumer_on_another_node_reads_the_value_from_the_producers_node(client: Client,
                                                                         cluster: LocalCluster) -> None:
    before = [cache_view(cluster, i) for i in (0, 1)]
    made, took = handoff(client, cluster, 0, 1, MIB, "cross")
    assert len(made) == MIB and took == made
    after = [cache_view(cluster, i) for i in (0, 1)]
    assert after[0]["lent"] - before[0]["lent"] == MIB  # every byte from compute-0's memory
    assert after[1]["hits"] == before[1]["hits"]  # not in compute-1's own cache


def stored(cluster: LocalCluster, name: str) -> bytes:
    """Object `name` as storage-0 holds it (not any compute node's memory)."""
    async def read() -> bytes:
        got = bytearray()
        with trio.fail_after(20):
            async with connect(cluster.storages[0].endpoint, "test-handoff") as peer:
                await read_object(peer, name, got.extend)
        return bytes(got)

    return trio.run(read)


def test_a_large_value_reaches_storage_on_this_host_by_descriptor(client: Client, cluster: LocalCluster) -> None:
    before = node_info(cluster.storages[0].endpoint)["fd_puts"]
    a, b = bytes(range(256)) * (MIB // 512), bytes(range(255, -1, -1)) * (MIB // 512) + b"by-fd"
    data = a + b  # 1 MiB and 5 bytes, from immediate inputs of half that each (they are limited to 1 MiB)
    p = client.spec("weft.actors.builtins:concat", a=a, b=b, node=cluster.node_name("compute", 0))
    [job] = client.submit_specs([p])
    assert job.result(timeout=60) == data
    assert stored(cluster, f"{p.job_id()}/result") == data  # storage's own copy, byte-exact
    # The result (a sealed memory file) was passed to storage, not sent on the bus.
    assert node_info(cluster.storages[0].endpoint)["fd_puts"] == before + 1


def test_a_value_over_the_budget_goes_through_storage(client: Client, cluster: LocalCluster) -> None:
    before = cache_view(cluster, 0)
    made, took = handoff(client, cluster, 0, 1, 3 * MIB, "big")
    assert len(made) == 3 * MIB and took == made  # read from storage after compute-0 said missing
    after = cache_view(cluster, 0)
    assert after["refused"] == before["refused"] + 1
    assert after["lent"] == before["lent"]
    assert after["bytes"] <= BUDGET_MB * MIB
