"""`weft bench --smoke` end to end: a real cluster, the JSON schema, the table.

No speed is asserted: only that the bench runs, exits 0 and reports positive
numbers in the documented shape.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORKLOADS = ["throughput", "chain", "startup"]


def test_bench_smoke(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["COLUMNS"] = "120"
    proc = subprocess.run(
        [sys.executable, "-m", "weft", "bench", "--smoke", "--json", str(out), "--workloads", ",".join(WORKLOADS)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"

    for w in WORKLOADS:
        assert w in proc.stdout, f"{w} missing from the table:\n{proc.stdout}"
    for w in ("fanout", "handoff", "submit"):
        assert w not in proc.stdout

    data = json.loads(out.read_text())
    machine = data["machine"]
    assert isinstance(machine["cpu_count"], int) and machine["cpu_count"] > 0
    assert isinstance(machine["python"], str) and isinstance(machine["platform"], str)
    assert isinstance(machine["date"], str)
    for pkg in ("weft", "pyzmq", "trio", "msgpack"):
        assert pkg in machine["packages"]
    assert "dask" not in machine["packages"]

    results = data["results"]
    assert [r["workload"] for r in results] == WORKLOADS
    units = {"throughput": ("tasks/s", "higher"), "chain": ("ms/hop", "lower"), "startup": ("s", "lower")}
    for r in results:
        assert r["system"] == "weft"
        assert (r["unit"], r["better"]) == units[r["workload"]]
        assert isinstance(r["value"], float) and r["value"] > 0, r
        assert len(r["runs"]) == 1 and all(v > 0 for v in r["runs"])
        assert "error" not in r


def test_bench_unknown_workload() -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    proc = subprocess.run([sys.executable, "-m", "weft", "bench", "--workloads", "nope"],
                          env=env, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert "unknown workload 'nope'" in proc.stderr
