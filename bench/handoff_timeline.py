"""When each handoff pair's steps happened: `python -m weft.bench.handoff_timeline [PAIRS] [MIB] [BATCHES]`.

Starts a local cluster like `weft bench`'s (2 compute x 1 slot, 2 storage;
its data directory under $TMPDIR, so TMPDIR=/dev/shm puts storage in
memory), runs BATCHES batches of PAIRS producer/consumer pairs of MIB MiB
(placed as weft likes, as `weft bench`'s handoff) and prints per batch,
from the coordinator's attempt records (seconds since the submit): when
producers and consumers started and ended (a producer ends once storage
acknowledged its value durable), how many consumers started before their
producer ended, and what held the end of the batch (the last producer's
end against the last consumer's). The coordinator dates a follower's start
at its producer's end (when it takes its slot there), so the start of each
consumer on its compute node is also read from the nodes' task logs: how
many consumers started before their producer was durable ("early").
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack

from weft.actors.client import Client
from weft.bench.workloads import handoff_specs
from weft.localcluster.cluster import LocalCluster


def _ms(xs: list[float]) -> str:
    return f"median {1e3 * statistics.median(xs):.1f} ms (min {1e3 * min(xs):.1f}, max {1e3 * max(xs):.1f})"


def task_times(dirs: list[Path]) -> dict[str, dict[str, Any]]:
    """job -> its last attempt's merged task-log records, over the compute nodes' logs."""
    out: dict[str, dict[str, Any]] = {}
    for d in dirs:
        try:
            with open(d / "tasks.log", "rb") as f:
                for rec in msgpack.Unpacker(f, raw=False):
                    if isinstance(rec, dict) and isinstance(rec.get("job"), str):
                        job = rec["job"]
                        out[job] = rec if "spec" in rec else {**out.get(job, {}), **rec}
        except (OSError, ValueError):
            continue
    return out


def batch(c: Client, pairs: int, size: int, tag: str,
          times: Callable[[], dict[str, dict[str, Any]]] | None = None) -> list[str]:
    """One batch's timeline, as lines to print."""
    t0 = time.time()
    specs = handoff_specs(c, pairs, size, tag)
    futures = c.submit_specs(specs, batch=len(specs))
    for f in futures[1::2]:
        f.result(timeout=600)
    wall = time.time() - t0
    rows = []
    statuses = c.status(futures, attempts=True)
    for p, q in zip(statuses[::2], statuses[1::2], strict=True):
        pa, ca = p["attempt_list"][-1], q["attempt_list"][-1]
        rows.append((pa["started"] - t0, pa["ended"] - t0, ca["started"] - t0, ca["ended"] - t0,
                     pa["node"] == ca["node"]))
    early = ""
    if times is not None:
        t = times()
        ids = [f.job for f in futures]
        got = [(t.get(p, {}).get("f"), t.get(q, {}).get("r") or t.get(q, {}).get("st"))
               for p, q in zip(ids[::2], ids[1::2], strict=True)]
        got = [(pf, qs) for pf, qs in got if pf is not None and qs is not None]
        early = (f"; on the compute nodes {sum(qs < pf for pf, qs in got)} of {len(got)} consumers started "
                 f"before their producer was durable (early)")
    return [
        f"{pairs} pairs of {size >> 20} MiB: {wall:.3f} s, {pairs * size / wall / 1e6:.0f} MB/s, "
        f"{sum(r[4] for r in rows)} on the producer's node",
        f"  producer started -> ended (durable): {_ms([r[1] - r[0] for r in rows])}",
        f"  consumer started -> ended: {_ms([r[3] - r[2] for r in rows])}",
        f"  producer ended -> consumer started: {_ms([r[2] - r[1] for r in rows])}; "
        f"consumers started before their producer ended: {sum(r[2] < r[1] for r in rows)}{early}",
        f"  last producer started {max(r[0] for r in rows):.3f} s, ended {max(r[1] for r in rows):.3f} s; "
        f"last consumer ended {max(r[3] for r in rows):.3f} s",
    ]


def main(argv: list[str]) -> int:
    try:
        pairs, mib, batches = (int(a) for a in (*argv[:3], *("100", "10", "2")[len(argv[:3]):]))
    except ValueError as e:
        print(f"handoff_timeline: PAIRS, MIB and BATCHES must be whole numbers: {e}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        cluster = LocalCluster(Path(tmp), compute=2, storage=2, slots=1)
        cluster.start(timeout=30)
        try:
            with Client(cluster.endpoint, timeout=60) as c:
                for b in range(batches):
                    print(f"batch {b}:", *batch(c, pairs, mib << 20, f"tl-{time.time()}-{b}",
                                                      lambda: task_times(cluster.data_dirs()[-2:])), sep="\n", flush=True)
        finally:
            cluster.stop(grace=5)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
