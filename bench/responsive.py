"""How quickly the coordinator answers while it takes a big submit.

A cluster where nothing can run (no compute node, one storage node) is sent
`n` jobs (100,000; 10,000 with `--smoke`) in submits of `batch` specs, while
a second connection calls `stats` back to back. Reported: the latency of
those `stats` calls (p50, p99, max, in ms), how many were answered, and how
long the submit took. The coordinator takes a submit in slices and answers
other calls between them; without that a `stats` call waits for the whole
submit message.

    python -m weft.bench.responsive [--smoke] [--jobs N] [--json PATH]

`weft bench --workloads responsive` runs the same measurement (weft only:
the Dask peer shows n/a) and reports the p99.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SIZES = {"full": 100_000, "smoke": 10_000}
# Specs per submit call: big enough that one call is many of the
# coordinator's slices (weft.actors.coordinator.state.SUBMIT_SLICE).
BATCH = 20_000


def percentile(values: list[float], q: float) -> float:
    """The `q` quantile (0..1) by nearest rank; values need not be sorted."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def measure(n: int, *, batch: int = BATCH, timeout: float = 300.0, tag: str | None = None) -> dict[str, Any]:
    """Submit `n` jobs while timing `stats` calls: the figures, in ms and s.
    The `stats` caller is a process of its own, so what it measures is the
    coordinator, not this process's own work for the submit."""
    from weft.actors.client import Client
    from weft.localcluster.cluster import LocalCluster

    tag = tag or f"resp-{time.time_ns():x}"
    with tempfile.TemporaryDirectory(prefix="weft-bench-resp-") as tmp:
        stop, out = Path(tmp) / "stop", Path(tmp) / "latencies.json"
        with LocalCluster(Path(tmp) / "cluster", compute=0, storage=1) as cluster, \
                Client(cluster.endpoint, timeout=30.0) as submitter:
            specs = [submitter.spec("weft.bench.workloads:noop", x=f"{tag}-{i}") for i in range(n)]
            watcher = subprocess.Popen(
                [sys.executable, "-m", "weft.bench.responsive", "--watch", cluster.endpoint, "--stop", str(stop),
                 "--out", str(out), "--timeout", str(timeout)], stdin=subprocess.DEVNULL)
            try:
                # It calls stats once before it says it is ready (connected, warm).
                _wait_file(out.with_suffix(".ready"), 30, watcher)
                t0 = time.perf_counter()
                futures = submitter.submit_specs(specs, batch=batch)
                elapsed = time.perf_counter() - t0
            finally:
                stop.touch()
                try:
                    watcher.wait(30)
                except subprocess.TimeoutExpired:
                    watcher.kill()
                    watcher.wait()
            if len(futures) != n:
                raise RuntimeError(f"submitted {n} jobs, {len(futures)} were accepted")
            got = json.loads(out.read_text()) if out.exists() else {}
    if got.get("error"):
        raise RuntimeError(f"a stats call failed during the submit: {got['error']}")
    ms = [x * 1000 for x in got.get("latencies", [])]
    if not ms:
        raise RuntimeError("no stats call was answered during the submit")
    return {
        "jobs": n, "batch": batch, "submit_s": round(elapsed, 3), "stats_calls": len(ms),
        "stats_p50_ms": round(percentile(ms, 0.5), 2), "stats_p99_ms": round(percentile(ms, 0.99), 2),
        "stats_max_ms": round(max(ms), 2), "stats_mean_ms": round(statistics.fmean(ms), 2),
    }


def _wait_file(path: Path, timeout: float, proc: subprocess.Popen) -> None:
    end = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None or time.monotonic() > end:
            raise RuntimeError("the stats caller did not start")
        time.sleep(0.01)


def watch(endpoint: str, stop: Path, out: Path, timeout: float) -> None:
    """Call `stats` back to back until `stop` exists; write the latencies (s) to `out`."""
    from weft.actors.client import Client

    latencies: list[float] = []
    error = None
    end = time.monotonic() + timeout
    with Client(endpoint, timeout=30.0) as c:
        c.stats()
        out.with_suffix(".ready").touch()
        while not stop.exists() and time.monotonic() < end:
            t0 = time.perf_counter()
            try:
                c.stats()
            except Exception as e:  # reported by the measuring side
                error = str(e)
                break
            latencies.append(time.perf_counter() - t0)
            time.sleep(0.005)
    out.write_text(json.dumps({"latencies": latencies, "error": error}))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m weft.bench.responsive", description=__doc__.split("\n\n")[0])
    p.add_argument("--smoke", action="store_true", help=f"{SIZES['smoke']:,} jobs instead of {SIZES['full']:,}")
    p.add_argument("--jobs", type=int, default=None, help="jobs to submit (overrides --smoke)")
    p.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the figures here")
    # The stats caller's own process (started by `measure`).
    p.add_argument("--watch", default=None, help=argparse.SUPPRESS)
    p.add_argument("--stop", type=Path, default=None, help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, default=None, help=argparse.SUPPRESS)
    p.add_argument("--timeout", type=float, default=300.0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.watch:
        watch(args.watch, args.stop, args.out, args.timeout)
        return 0
    n = args.jobs or SIZES["smoke" if args.smoke else "full"]
    if n < 1:
        p.error(f"invalid --jobs {n}: expected at least 1")
    r = measure(n)
    print(f"stats during a {r['jobs']:,}-job submit ({r['submit_s']:.2f} s, {r['stats_calls']} calls): "
          f"p50 {r['stats_p50_ms']:.1f} ms, p99 {r['stats_p99_ms']:.1f} ms, max {r['stats_max_ms']:.1f} ms")
    if args.json is not None:
        args.json.write_text(json.dumps(r, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
