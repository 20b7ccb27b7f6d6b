"""Where a local cluster's start goes: `python -m weft.bench.startup_timeline [STARTS]`.

For docs/performance.md ("Startup"): each start of a 2 compute x 1 slot, 2
storage LocalCluster prints, in ms from the start, when each daemon was
forked and listening, when the inventories were taken, when the first
submit was answered (`submitted`) and when that first callable was done; then each process's CPU (every thread's schedstat,
ns) at that point: the zygote, each daemon, the compute nodes' children (workers, probes), and
their minor page faults (copy-on-write of the zygote's image, ~3 us each here: a count that does not
depend on load). CPU and faults are what to compare on a shared machine; the wall only interleaved.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

import weft.localcluster.cluster as cluster_mod
import weft.localcluster.zygote_client as zygote_mod
from weft.bench.procstat import stat_fields


def _cpu_ms(pid: int) -> float:
    total = 0
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
    except OSError:
        return float("nan")
    return total / 1e6


def _faults(pid: int) -> int:
    """Minor page faults so far: after the zygote's fork, mostly copy-on-write of its image (a count
    that does not depend on the machine's load, unlike CPU time)."""
    fields = stat_fields(pid)
    return -1 if fields is None else int(fields[7])


class _Marks:
    def __init__(self) -> None:
        self.t0 = 0.0
        self.marks: dict[str, float] = {}

    def __call__(self, name: str) -> None:
        self.marks.setdefault(name, (time.perf_counter() - self.t0) * 1000)


def _instrument(mark: _Marks) -> None:
    spawn = zygote_mod.Zygote.spawn
    ready = cluster_mod.Proc.wait_ready

    def timed_spawn(self: Any, *a: Any, **kw: Any) -> Any:
        r = spawn(self, *a, **kw)
        mark(f"forked#{sum(k.startswith('forked') for k in mark.marks)}")
        return r

    def timed_ready(self: Any, timeout: float) -> str:
        r = ready(self, timeout)
        mark(f"listening {self.args_node_id or self.role}")
        return r

    zygote_mod.Zygote.spawn = timed_spawn
    cluster_mod.Proc.wait_ready = timed_ready


def one_start(mark: _Marks) -> tuple[float, float, dict[str, float], dict[str, int]]:
    from weft.actors.client import Client

    mark.marks.clear()
    with tempfile.TemporaryDirectory(prefix="weft-timeline-") as tmp:
        c = cluster_mod.LocalCluster(Path(tmp), compute=2, storage=2, slots=1)
        mark.t0 = time.perf_counter()
        c.start(60)
        ready = (time.perf_counter() - mark.t0) * 1000
        with Client(c.endpoint) as client:
            future = client.submit("weft.bench.workloads:noop", item="first")
            mark("submitted")  # the submit's answer: after the module probe, if one was needed
            future.result(timeout=60)
        first = (time.perf_counter() - mark.t0) * 1000
        cpu = {"zygote": _cpu_ms(c.zygote.proc.pid)} if c.zygote else {}
        faults = {"zygote": _faults(c.zygote.proc.pid)} if c.zygote else {}
        for p in c.procs:
            cpu[p.args_node_id or p.role] = _cpu_ms(p.pid)
            faults[p.args_node_id or p.role] = _faults(p.pid)
        workers = [w for p in c.computes for w in psutil.Process(p.pid).children()]
        cpu[f"their children({len(workers)})"] = sum(_cpu_ms(w.pid) for w in workers)  # workers, probes
        faults[f"their children({len(workers)})"] = sum(_faults(w.pid) for w in workers)
        c.stop(10)
    return ready, first, cpu, faults


def main(argv: list[str]) -> int:
    starts = int(argv[1]) if len(argv) > 1 else 5
    mark = _Marks()
    _instrument(mark)
    rows = []
    for i in range(starts):
        ready, first, cpu, faults = one_start(mark)
        total_cpu = sum(cpu.values())
        rows.append((ready, first, total_cpu))
        print(f"start {i}: ready {ready:.0f} ms, first callable done {first:.0f} ms | "
              + " ".join(f"{k}={v:.0f}" for k, v in mark.marks.items()))
        print(f"  CPU ms: {' '.join(f'{k}={v:.1f}' for k, v in cpu.items())} | sum {total_cpu:.0f}")
        print(f"  minor faults: {' '.join(f'{k}={v}' for k, v in faults.items())} | "
              f"after the fork {sum(v for k, v in faults.items() if k != 'zygote')}")
    print(f"median: ready {statistics.median(r[0] for r in rows):.0f} ms, first callable "
          f"{statistics.median(r[1] for r in rows):.0f} ms, CPU {statistics.median(r[2] for r in rows):.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
