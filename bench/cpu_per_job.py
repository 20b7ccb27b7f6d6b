"""CPU per job of each process of a local cluster, around one workload.

    python -m weft.bench.cpu_per_job chain 300 3     # workload, size, runs

Starts the cluster `weft bench` uses (WeftSide: 2 compute x 1 slot, 2
storage), runs the workload `runs` times and prints, per run, the figure
`weft bench` would and the CPU time (utime+stime from /proc/PID/stat, in
ms per job) of the coordinator, the compute nodes, the storage nodes, the
compute nodes' worker processes and this client. On a shared machine the
wall-clock figure swings with the load; CPU per job much less so.
Linux only (/proc).
"""

from __future__ import annotations

import os
import sys
import time

from weft.bench.procstat import cpu_seconds, stat_fields
from weft.bench.workloads import WeftSide


def _cpu(pid: int) -> float:
    fields = stat_fields(pid)
    return 0.0 if fields is None else cpu_seconds(fields)  # (gone: a replaced worker)


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out += [int(c) for c in f.read().split()]
    except OSError:
        pass
    return out


def snapshot(cluster: object) -> dict[str, float]:
    """Seconds of CPU so far per role (and `worker` for the compute nodes' children)."""
    s: dict[str, float] = {}
    for p in cluster.procs:  # type: ignore[attr-defined]
        s[p.role] = s.get(p.role, 0.0) + _cpu(p.pid)
        if p.role == "compute":
            for c in _children(p.pid):
                s["worker"] = s.get("worker", 0.0) + _cpu(c)
    return s


def main(argv: list[str]) -> int:
    if len(argv) != 3 or not argv[1].isdigit() or not argv[2].isdigit():
        print("usage: python -m weft.bench.cpu_per_job WORKLOAD SIZE RUNS (e.g. chain 300 3)", file=sys.stderr)
        return 2
    workload, n, runs = argv[0], int(argv[1]), int(argv[2])
    if workload not in ("throughput", "chain", "commands"):
        print(f"cpu_per_job: unknown workload {workload!r}: expected throughput, chain or commands", file=sys.stderr)
        return 2
    side = WeftSide()
    side.open()
    try:
        for r in range(runs):
            before, c0 = snapshot(side.cluster), time.process_time()
            value = side.run(workload, {"n": n}, f"cpu-{os.getpid()}-{r}-{time.time()}", 300)
            after, c1 = snapshot(side.cluster), time.process_time()
            per = {k: (after[k] - before.get(k, 0.0)) / n * 1e3 for k in sorted(after)}
            per["client"] = (c1 - c0) / n * 1e3
            shown = ", ".join(f"{k} {v:.3f}" for k, v in per.items())
            print(f"{workload} run {r}: {value:.3f}; CPU ms/job: {shown}; total {sum(per.values()):.3f}", flush=True)
    finally:
        side.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
