"""Repair on a real cluster: 3 storage nodes, `--replicas 2`, one storage node
SIGKILLed. Every finished object must be back at 2 copies on live nodes,
byte-identical, within REPAIR_BOUND; when the node comes back on its data
dir with its old copies, the extra ones must be trimmed back to 2.

Copies and counts are read from the storage nodes themselves (`list`,
`read`), not from the coordinator, so a copy it only believes in cannot pass.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import trio

from weft.actors.client import Client
from weft.actors.storage.client import read_all
from weft.bus.peers import connect
from weft.localcluster.cluster import LocalCluster

from helpers import wait_for

JOBS = 30
REPLICAS = 2
# From the kill (or the restart) until every object is at its count again. It
# covers the 2 s heartbeat timeout, repair's 1 s delay and copying ~10 MB;
# measured a few seconds on the 2-core machine.
REPAIR_BOUND = 30.0
BIG = 1_500_000  # every fifth output: more than one read chunk, held in a file


def expected(i: int) -> bytes:
    line = f"job-{i}\n".encode()
    size = BIG if i % 5 == 0 else 200 + i
    return (line * (size // len(line) + 1))[:size]


def command(i: int) -> list[str]:
    return ["sh", "-c", 'yes "job-$0" | head -c "$1"', str(i), str(len(expected(i)))]


def listings(endpoints: list[str]) -> dict[str, set[str]]:
    """{endpoint: names of the finished objects it holds}."""

    async def main() -> dict[str, set[str]]:
        out = {}
        with trio.fail_after(20):
            for ep in endpoints:
                async with connect(ep, "repair-test", timeout=5.0) as peer:
                    r = await peer.call("list", {"states": ["finished"]})
                    out[ep] = {o["name"] for o in r["objects"]}
        return out

    return trio.run(main)


def contents(endpoint: str, names: list[str]) -> dict[str, bytes]:
    async def main() -> dict[str, bytes]:
        with trio.fail_after(60):
            async with connect(endpoint, "repair-test", timeout=10.0) as peer:
                return {n: await read_all(peer, n) for n in names}

    return trio.run(main)


def copies_of(names: dict[str, int], endpoints: list[str]) -> dict[str, int]:
    held = listings(endpoints)
    return {n: sum(n in objs for objs in held.values()) for n in names}


def at_count(names: dict[str, int], endpoints: list[str]) -> bool:
    return all(c == REPLICAS for c in copies_of(names, endpoints).values())


def check_bytes(names: dict[str, int], endpoints: list[str]) -> None:
    """Every copy on every live node is the bytes the job made."""
    held = listings(endpoints)
    for ep in endpoints:
        mine = [n for n in names if n in held[ep]]
        for n, data in contents(ep, mine).items():
            assert data == expected(names[n]), f"{n} on {ep}: {len(data)} bytes differ from what job {names[n]} made"


def test_a_killed_storage_nodes_copies_are_made_again_and_trimmed_when_it_returns(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path / "cluster", compute=1, storage=3, slots=2, log_level="info",
                           coordinator_args=["--replicas", str(REPLICAS), "--heartbeat-timeout", "2"])
    cluster.start(timeout=30)
    try:
        with Client(cluster.endpoint, timeout=5.0, retry_for=20.0) as client:
            futures = [client.submit(command(i)) for i in range(JOBS)]
            names: dict[str, int] = {}
            for i, f in enumerate(futures):
                assert f.result(timeout=60) == expected(i)
                names[f.key] = i
            everyone = [p.endpoint for p in cluster.storages]
            wait_for(lambda: at_count(names, everyone), 30, "every output written to 2 storage nodes")
            assert client.stats()["repair_copied"] == 0, "copies made while every object was at its count"

            victim = max(range(3), key=lambda k: len(listings([everyone[k]])[everyone[k]] & set(names)))
            assert listings([everyone[victim]])[everyone[victim]] & set(names)
            cluster.storages[victim].signal(signal.SIGKILL)
            cluster.storages[victim].popen.wait(10)
            t0 = time.monotonic()
            live = [ep for k, ep in enumerate(everyone) if k != victim]
            wait_for(lambda: at_count(names, live), REPAIR_BOUND, "every object back at 2 copies on live nodes",
                     interval=0.25)
            repaired_in = time.monotonic() - t0
            check_bytes(names, live)
            stats = wait_for(lambda: (s := client.stats())["under_replicated"] == 0 and s, 10,
                             "the coordinator sees no under-replicated object")
            assert stats["repair_copied"] > 0 and stats["repair_in_flight"] == 0, stats

            # Back on its data dir with its old copies: three of some objects now.
            back = cluster.add_storage(index=victim)
            t1 = time.monotonic()
            everyone[victim] = back.endpoint
            wait_for(lambda: any(c > REPLICAS for c in copies_of(names, everyone).values())
                     or (client.stats()["repair_trimmed"] > 0), 20, "the node back with its copies")
            wait_for(lambda: at_count(names, everyone) and client.stats()["over_replicated"] == 0,
                     REPAIR_BOUND, "extra copies trimmed back to 2", interval=0.25)
            trimmed_in = time.monotonic() - t1
            check_bytes(names, everyone)
            stats = client.stats()
            assert stats["repair_trimmed"] > 0, stats
            assert stats["jobs"].get("succeeded") == JOBS, stats["jobs"]
            storage_rows = [n for n in client.nodes() if n["role"] == "storage"]
            assert all("copies_in" in n and "copies_out" in n for n in storage_rows), storage_rows
            print(f"repaired in {repaired_in:.1f}s, trimmed in {trimmed_in:.1f}s: {stats}")
    finally:
        cluster.stop(grace=5.0)
        problems = _problems(cluster)
    assert not problems, problems


def _problems(cluster: LocalCluster) -> list[Any]:
    out = []
    for f in sorted((cluster.data_dir / "logs").glob("*.log")):
        for line in f.read_text(errors="replace").splitlines():
            if " error " in line or " critical " in line or "Traceback" in line:
                out.append(f"{f.stem}: {line[:300]}")
    return out[:10]
