"""How weft's cost grows with the number of jobs: `python -m weft.bench.scaling`.

`throughput` (independent no-op callables on the bench's 2 x 1-slot cluster,
to all finished) and `submit`/`memory` (jobs queued on a coordinator with no
compute node: accepted per second, RSS growth per job) at 1,000, 10,000 and
100,000 jobs, one run each; weft only (the peer comparison is `weft bench`).
Prints a table and writes JSON with `--json FILE`. `--sizes 1000,10000`
picks other sizes; `--queued-sizes` other sizes for submit and memory alone
(default: the same), so `--queued-sizes 1000,10000,100000,1000000` adds the
1M-queued row without a 1M throughput run (~20 minutes at ~1,000 tasks/s);
the 1M submit takes a minute or two and ~2 GB in the submitting client.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from .machine import write_report
from .workloads import QUEUE_WARMUP, WeftSide


class QueueSide(WeftSide):
    """The queue measurement's clusters, with a queue bound above the
    jobs queued (the coordinator's default, 1,000,000, would answer the 1M
    size busy: the warm-up jobs are queued too)."""

    max_queue = 1_000_000

    def _new_cluster(self, root: Any, **kw: Any) -> Any:  # type: ignore[override]
        from weft.localcluster.cluster import LocalCluster

        return LocalCluster(root, coordinator_args=["--max-queue", str(self.max_queue)], **kw)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m weft.bench.scaling", description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,10000,100000", help="comma-separated job counts")
    ap.add_argument("--queued-sizes", help="job counts for submit and memory (default: --sizes)")
    ap.add_argument("--json", dest="json_path", help="write the figures here")
    args = ap.parse_args(argv)
    sizes = _sizes("--sizes", args.sizes)
    queued = sizes if args.queued_sizes is None else _sizes("--queued-sizes", args.queued_sizes)
    if sizes is None or queued is None:
        return 2
    rows = []
    side = WeftSide()
    side.open()
    try:
        for n in sizes:
            print(f"throughput with {n:,} jobs ...", file=sys.stderr, flush=True)
            rate = side.run("throughput", {"n": n}, f"scale-{time.time_ns()}", timeout=max(120.0, n / 50))
            rows.append({"jobs": n, "workload": "throughput", "value": rate, "unit": "tasks/s"})
    finally:
        side.close()
    qside = QueueSide()
    for n in queued:
        print(f"submit and memory with {n:,} queued jobs ...", file=sys.stderr, flush=True)
        qside.max_queue = max(QueueSide.max_queue, 2 * (n + QUEUE_WARMUP))
        q = qside.queue(n, f"scale-q-{time.time_ns()}", timeout=max(120.0, n / 500))
        rows.append({"jobs": n, "workload": "submit", "value": q["submit"], "unit": "jobs/s"})
        rows.append({"jobs": n, "workload": "memory", "value": q["memory"], "unit": "KiB/job"})
    print(f"{'workload':10} {'jobs':>8} {'value':>10}  unit")
    for r in rows:
        print(f"{r['workload']:10} {r['jobs']:>8,} {r['value']:>10.2f}  {r['unit']}")
    if args.json_path:
        write_report(args.json_path, results=rows)
    return 0


def _sizes(flag: str, text: str) -> list[int] | None:
    try:
        sizes = [int(s) for s in text.split(",")]
        if not sizes or min(sizes) < 1:
            raise ValueError
    except ValueError:
        print(f"bench.scaling: error: {flag} must be positive integers, got {text!r}", file=sys.stderr)
        return None
    return sizes


if __name__ == "__main__":
    sys.exit(main())
