"""The dashboard's cost to the coordinator (issue 20), measured.

    python -m weft.bench.dashboard_cost [--runs N] [--jobs N] [--json FILE]

One local cluster as `weft bench` makes it (2 compute x 1 slot, 2 storage),
with the dashboard on (`--http`). `weft bench`'s throughput workload (N no-op
callables submitted at once) runs `--runs` times in each of two modes,
interleaved A B B A ... so that drift (a warming cache, another process
starting) falls on both alike: `without` a browser, and `with` one headless
Chromium open on the dashboard's jobs page, its live updates (server-sent
events) on. It prints every run, each mode's median and spread, and whether
the `with` median lies within the spread of the `without` runs; `--json`
writes it all with the machine's description.

Meant for a quiet machine (the lead runs it; docs/performance.md has the
numbers): every other process on the machine widens the spread, and on a
small machine the browser's own CPU is part of what `with` pays (run it where
the browser would run: on the same host, that is the honest number). Chromium is
found on PATH (chromium, chromium-browser, google-chrome) or given with
--chromium.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from .runner import machine, write_json
from .workloads import WeftSide

BROWSER_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PAGE_TIMEOUT = 30.0
# After the page is there: time for its script to fetch the table and open the event stream.
SETTLE = 2.0


class DashboardSide(WeftSide):
    """WeftSide whose coordinator serves the dashboard at `http` (HOST:PORT)."""

    def __init__(self, http: str) -> None:
        super().__init__()
        self.http = http

    def _new_cluster(self, root: Path, **kw: Any) -> Any:  # type: ignore[override]
        from weft.localcluster.cluster import LocalCluster

        return LocalCluster(root, coordinator_args=["--http", self.http], **kw)


def find_chromium(given: str | None) -> str | None:
    if given:
        return shutil.which(given) or (given if Path(given).is_file() else None)
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Browser:
    """One headless Chromium on a URL, kept open until closed; its DevTools HTTP
    endpoint (`/json`) tells when the page is there."""

    def __init__(self, exe: str, url: str) -> None:
        self.url = url
        self.profile = tempfile.mkdtemp(prefix="weft-dashcost-")
        self.proc = subprocess.Popen([exe, *BROWSER_FLAGS, f"--user-data-dir={self.profile}",
                                      "--remote-debugging-port=0", url],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)

    def wait_loaded(self, timeout: float = PAGE_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        port_file = Path(self.profile) / "DevToolsActivePort"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"chromium exited with {self.proc.returncode} before the page loaded")
            if port_file.exists():
                port = port_file.read_text().split("\n", 1)[0].strip()
                if port.isdigit():
                    try:
                        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json", timeout=2) as r:
                            pages = json.load(r)
                    except OSError:
                        pages = []
                    if any(p.get("type") == "page" and p.get("url", "").startswith(self.url.split("#")[0])
                           and p.get("title") for p in pages):
                        time.sleep(SETTLE)
                        return
            time.sleep(0.2)
        raise RuntimeError(f"the dashboard page {self.url} did not load in chromium within {timeout:g}s")

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        shutil.rmtree(self.profile, ignore_errors=True)


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per mode: median, min, max, spread (max - min, and as a share of the median);
    and whether the `with` median is within the `without` runs' range."""
    out: dict[str, Any] = {}
    for mode in ("without", "with"):
        values = [r["tasks_per_s"] for r in runs if r["mode"] == mode]
        if not values:
            continue
        med = statistics.median(values)
        out[mode] = {"median": med, "min": min(values), "max": max(values), "spread": max(values) - min(values),
                     "spread_share": (max(values) - min(values)) / med if med else None, "runs": len(values)}
    if "with" in out and "without" in out:
        w, wo = out["with"], out["without"]
        out["with_within_spread"] = wo["min"] <= w["median"] <= wo["max"]
        out["cost_share"] = (wo["median"] - w["median"]) / wo["median"] if wo["median"] else None
    return out


def measure(exe: str, runs: int, jobs: int, timeout: float, echo: Any = print) -> dict[str, Any]:
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    http = f"127.0.0.1:{_free_port()}"
    url = f"http://{http}/#/jobs"
    side = DashboardSide(http)
    nonce = f"{os.getpid()}-{int(time.time())}"
    results: list[dict[str, Any]] = []
    side.open()
    try:
        for i in range(runs):
            # A B B A: each mode goes first every other round.
            for mode in (("without", "with") if i % 2 == 0 else ("with", "without")):
                browser = None
                try:
                    if mode == "with":
                        browser = Browser(exe, url)
                        browser.wait_loaded()
                    rate = side.run("throughput", {"n": jobs}, f"dashcost-{nonce}-{i}-{mode}", timeout)
                finally:
                    if browser is not None:
                        browser.close()
                results.append({"round": i, "mode": mode, "tasks_per_s": rate})
                echo(f"round {i + 1}/{runs}  {mode:8} {rate:10.1f} tasks/s")
    finally:
        side.close()
    report = {"machine": machine(["weft"], load_before), "workload": "throughput", "jobs": jobs,
              "page": "jobs (live updates on)", "runs": results, "summary": summarize(results)}
    return report


def format_summary(summary: dict[str, Any]) -> list[str]:
    lines = []
    for mode in ("without", "with"):
        s = summary.get(mode)
        if s:
            share = f" ({s['spread_share'] * 100:.1f}% of the median)" if s["spread_share"] is not None else ""
            lines.append(f"{mode:8} median {s['median']:.1f} tasks/s, min {s['min']:.1f}, max {s['max']:.1f}, "
                         f"spread {s['spread']:.1f}{share}")
    if "with_within_spread" in summary:
        cost = summary["cost_share"]
        lines.append(f"with a browser: {cost * 100:+.1f}% slower at the median; "
                     + ("within" if summary["with_within_spread"] else "OUTSIDE")
                     + " the spread of the runs without")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m weft.bench.dashboard_cost",
                                 description="The dashboard's cost to the coordinator: weft bench's throughput "
                                             "workload, interleaved with and without a headless Chromium on the "
                                             "dashboard's jobs page.")
    ap.add_argument("--runs", type=int, default=10, help="runs of each mode (default 10)")
    ap.add_argument("--jobs", type=int, default=5000, help="no-op jobs per run (default 5000, as weft bench)")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds one run may take (default 300)")
    ap.add_argument("--json", type=Path, metavar="FILE", default=Path("dashboard-cost.json"),
                    help="write the runs and the summary here (default dashboard-cost.json)")
    ap.add_argument("--chromium", metavar="PATH", help="the browser to use (default: found on PATH)")
    args = ap.parse_args(argv)
    if args.runs < 1 or args.jobs < 1:
        print("dashboard_cost: error: --runs and --jobs must be at least 1", file=sys.stderr)
        return 2
    if not args.json.parent.exists():
        print(f"dashboard_cost: error: cannot write {args.json}: directory {args.json.parent} does not exist",
              file=sys.stderr)
        return 2
    exe = find_chromium(args.chromium)
    if exe is None:
        print("dashboard_cost: error: no Chromium found (install Debian's chromium, or give --chromium PATH)",
              file=sys.stderr)
        return 2
    try:
        report = measure(exe, args.runs, args.jobs, args.timeout)
    except KeyboardInterrupt:
        print("dashboard_cost: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a run that failed: one line, not a traceback
        print(f"dashboard_cost: error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    for line in format_summary(report["summary"]):
        print(line)
    write_json(args.json, report)
    print(f"written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
