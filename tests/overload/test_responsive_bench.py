"""The responsiveness measurement runs (a real cluster) and reports its
figures; `weft bench` shows it for weft and n/a for a peer. No latency is
asserted: only that the numbers are there and make sense together."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from weft.bench import runner


def test_the_measurement_reports_stats_latency_during_a_submit(tmp_path: Path) -> None:
    out = tmp_path / "resp.json"
    p = subprocess.run([sys.executable, "-m", "weft.bench.responsive", "--jobs", "3000", "--json", str(out)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "stats during a 3,000-job submit" in p.stdout
    r = json.loads(out.read_text())
    assert r["jobs"] == 3000 and r["stats_calls"] >= 1
    assert 0 < r["stats_p50_ms"] <= r["stats_p99_ms"] <= r["stats_max_ms"]


class _Side:
    def __init__(self) -> None:
        self.asked: list[int] = []

    def responsive(self, n: int, tag: str, timeout: float) -> float:
        self.asked.append(n)
        return 12.5

    def close(self) -> None:
        pass


def test_weft_bench_runs_it_for_weft_and_shows_n_a_for_a_peer() -> None:
    sides: dict[str, Any] = {}
    plan = runner.Plan(["responsive"], ["weft", "dask"], smoke=True)
    results = runner.run_plan(plan, make_side=lambda system: sides.setdefault(system, _Side()))
    by = {r.system: r for r in results}
    assert by["weft"].value == 12.5 and sides["weft"].asked == [10_000]
    assert sides["dask"].asked == [] and by["dask"].na and by["dask"].error is None
    assert runner.format_result(by["dask"]) == "n/a"
    assert runner.compare(by["weft"], by["dask"]) == (None, None)
    assert by["dask"].to_json()["na"] is True
