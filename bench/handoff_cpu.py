"""CPU per daemon for handoffs: `python -m weft.bench.handoff_cpu [handoff|cross] [PAIRS] [MIB] [BATCHES]`.

Starts a local cluster like `weft bench`'s (2 compute x 1 slot, 2 storage),
runs BATCHES batches of PAIRS producer/consumer pairs of MIB MiB (`cross`:
every pair pinned across the two compute nodes) and prints, per batch, one
JSON line: MB/s, pairs that crossed, CPU seconds (utime+stime from
/proc/PID/stat) of the coordinator, the compute nodes with their worker
processes (and the nodes alone: `compute_node`) and the storage nodes, the storage nodes' calls, and the compute
nodes' value-cache counters. CPU and counts do not depend on the machine's
load the way wall time does: compare code by them (the first batch of a
fresh cluster also pays for memory faulted in for the first time; later
batches are warm, as the bench's runs 2 and 3 are).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

from weft.actors.client import Client
from weft.bench.procstat import cpu_seconds, stat_fields
from weft.bench.workloads import handoff_specs
from weft.bus.peers import connect
from weft.localcluster.cluster import LocalCluster


def _stat(pid: int) -> tuple[float, int]:
    """(CPU seconds, parent pid) of `pid`; (0, 0) if it is gone."""
    fields = stat_fields(pid)
    return (0.0, 0) if fields is None else (cpu_seconds(fields), int(fields[1]))


def _tree_cpu(pid: int) -> float:
    """CPU seconds of `pid` and its children (a compute node's workers)."""
    total = _stat(pid)[0]
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            cpu, parent = _stat(int(entry))
            if parent == pid:
                total += cpu
    return total


def _cpu(cluster: LocalCluster) -> dict[str, float]:
    # compute: the nodes and their workers; compute_node: the nodes alone
    return {"coordinator": _tree_cpu(cluster.coordinator.pid),
            "compute": sum(_tree_cpu(p.pid) for p in cluster.computes),
            "compute_node": sum(_stat(p.pid)[0] for p in cluster.computes),
            "storage": sum(_tree_cpu(p.pid) for p in cluster.storages)}


def _infos(cluster: LocalCluster) -> tuple[list[Any], int]:
    async def ask() -> tuple[list[Any], int]:
        caches, calls = [], 0
        with trio.fail_after(30):
            for p in cluster.computes:
                async with connect(p.endpoint, "handoff-cpu") as peer:
                    caches.append((await peer.call("info")).get("value_cache"))
            for p in cluster.storages:
                async with connect(p.endpoint, "handoff-cpu") as peer:
                    calls += (await peer.call("info"))["stats"]["calls"]
        return caches, calls

    return trio.run(ask)


def _batch(c: Client, cluster: LocalCluster, mode: str, pairs: int, size: int, tag: str) -> dict[str, Any]:
    nodes = [cluster.node_name("compute", i) for i in range(2)]
    cpu0, (_, calls0) = _cpu(cluster), _infos(cluster)
    t0 = time.perf_counter()
    specs = handoff_specs(c, pairs, size, tag, nodes if mode == "cross" else None)
    futures = c.submit_specs(specs, batch=len(specs))
    results = [f.result(timeout=600) for f in futures[1::2]]
    wall = time.perf_counter() - t0
    cpu1, (caches, calls1) = _cpu(cluster), _infos(cluster)
    cpu = {k: round(cpu1[k] - cpu0[k], 2) for k in cpu1}
    crossed = sum(1 for r in results if len(r.split()) == 3 and r.split()[1] != r.split()[2])
    return {"mode": mode, "pairs": pairs, "MB/s": round(pairs * size / wall / 1e6, 1), "cross": crossed,
            "cpu_s": cpu, "cpu_total": round(sum(v for k, v in cpu.items() if k != "compute_node"), 2), "storage_calls": calls1 - calls0,
            "value_caches": caches}


def main(argv: list[str]) -> int:
    mode = argv[0] if argv else "handoff"
    if mode not in ("handoff", "cross"):
        print(f"handoff_cpu: mode must be handoff or cross, not {mode!r}", file=sys.stderr)
        return 2
    try:
        pairs, mib, batches = (int(a) for a in (*argv[1:4], *("100", "10", "2")[len(argv[1:4]):]))
    except ValueError as e:
        print(f"handoff_cpu: PAIRS, MIB and BATCHES must be whole numbers: {e}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        cluster = LocalCluster(Path(tmp), compute=2, storage=2, slots=1)
        cluster.start(timeout=30)
        try:
            with Client(cluster.endpoint, timeout=60) as c:
                for b in range(batches):
                    row = _batch(c, cluster, mode, pairs, mib << 20, f"hc-{time.time()}-{b}")
                    print(json.dumps({"batch": b, **row}), flush=True)
        finally:
            cluster.stop(grace=5)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
