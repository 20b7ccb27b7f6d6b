"""`weft bench --smoke` end to end: a real cluster, the JSON schema, the table.

No speed is asserted: only that the bench runs, exits 0 and reports positive
numbers in the documented shape. The Ray run is skipped where Ray is not
installed (the default CI installs `[test]`, not `[bench]`).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from weft.bench.runner import Plan, Result, annotate
from weft.bench.workloads import can_pin

REPO = Path(__file__).resolve().parents[1]
WORKLOADS = ["throughput", "chain", "roundtrip", "handoff-cross", "startup", "dispatch"]
UNITS = {"throughput": ("tasks/s", "higher"), "chain": ("ms/hop", "lower"), "roundtrip": ("ms", "lower"),
         "handoff-cross": ("MB/s", "higher"), "startup": ("s", "lower"), "dispatch": ("jobs/s", "higher")}


def _env(extra_path: Path | None = None) -> dict[str, str]:
    env = dict(os.environ)
    paths = [str(p) for p in (extra_path, REPO) if p is not None]
    env["PYTHONPATH"] = os.pathsep.join(paths + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env["COLUMNS"] = "160"
    return env


def _bench(tmp_path: Path, *args: str, timeout: float) -> tuple[subprocess.CompletedProcess, dict]:
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, "-m", "weft", "bench", "--smoke", "--json", str(out), *args],
                          cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc, json.loads(out.read_text())


def test_bench_smoke(tmp_path: Path) -> None:
    proc, data = _bench(tmp_path, "--workloads", ",".join(WORKLOADS), timeout=120)

    for w in WORKLOADS:
        assert w in proc.stdout, f"{w} missing from the table:\n{proc.stdout}"
    for w in ("fanout", "commands", "submit"):
        assert w not in proc.stdout

    machine = data["machine"]
    assert isinstance(machine["cpu_count"], int) and machine["cpu_count"] > 0
    assert isinstance(machine["python"], str) and isinstance(machine["platform"], str)
    assert isinstance(machine["date"], str)
    for pkg in ("weft", "pyzmq", "trio", "msgpack"):
        assert pkg in machine["packages"]
    assert "dask" not in machine["packages"] and "ray" not in machine["packages"]

    rows = {(r["workload"], r["system"]): r for r in data["results"]}
    # The raw round trip is the transport's own row; everything else is weft's.
    assert sorted(rows) == sorted([("roundtrip", "pyzmq")] + [(w, "weft") for w in WORKLOADS if w != "roundtrip"])
    for (w, _), r in rows.items():
        assert (r["unit"], r["better"]) == UNITS[w]
        assert "error" not in r, r
        if w == "handoff-cross" and not can_pin_here():
            # Without node pinning weft cannot pin pairs: said, not failed.
            assert r.get("na") is True and r["value"] is None and r["runs"] == []
            assert any("needs node pinning" in n for n in r["notes"]), r
            continue
        assert isinstance(r["value"], float) and r["value"] > 0, r
        assert len(r["runs"]) == 1 and all(v > 0 for v in r["runs"])
    assert "best_peer" not in rows[("throughput", "weft")]  # no peer, nothing to compare with
    chain, rtt = rows[("chain", "weft")], rows[("roundtrip", "pyzmq")]
    assert chain["vs_roundtrip"] == pytest.approx(chain["value"] / rtt["value"])
    assert "raw pyzmq round trips" in proc.stdout


def can_pin_here() -> bool:
    from weft.actors.client import Client

    return can_pin(Client)


@pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                    reason="Ray is not installed (pip install 'weft[bench]')")
def test_bench_smoke_with_ray(tmp_path: Path) -> None:
    workloads = ["throughput", "chain", "roundtrip", "dispatch"]
    proc, data = _bench(tmp_path, "--peers", "ray", "--workloads", ",".join(workloads), timeout=300)

    assert data["machine"]["packages"]["ray"]
    rows = {(r["workload"], r["system"]): r for r in data["results"]}
    assert sorted(rows) == sorted([("roundtrip", "pyzmq"), ("throughput", "weft"), ("chain", "weft"),
                                   ("dispatch", "weft"), ("throughput", "ray"), ("chain", "ray"),
                                   ("dispatch", "ray")])
    for w in ("throughput", "chain"):
        weft, ray = rows[(w, "weft")], rows[(w, "ray")]
        assert ray["value"] > 0 and "error" not in ray, ray
        # The only peer is the best one; the ratio is weft's value over it.
        assert weft["best_peer"] == "ray" and weft["best_peer_value"] == ray["value"]
        assert weft["vs_best_peer"] == pytest.approx(weft["value"] / ray["value"])
        assert weft["winner"] in ("weft", "ray", "tie")
    assert rows[("dispatch", "ray")].get("na") is True  # weft only
    assert rows[("dispatch", "weft")]["value"] > 0
    assert rows[("roundtrip", "pyzmq")]["unit"] == "ms" and rows[("roundtrip", "pyzmq")]["value"] > 0
    header = next(line for line in proc.stdout.splitlines() if "workload" in line)
    for column in ("ray", "best peer", "weft/best"):
        assert column in header, proc.stdout


def _result(workload: str, system: str, value: float | None) -> Result:
    r = Result(workload, system)
    if value is None:
        r.error = "failed"
    else:
        r.runs = [value]
    return r


def test_best_peer_is_the_best_value_in_the_workloads_direction() -> None:
    plan = Plan(workloads=["throughput", "chain", "commands"], systems=["weft", "dask", "ray"])
    results = [
        _result("throughput", "weft", 3000.0), _result("throughput", "dask", 600.0),
        _result("throughput", "ray", 1500.0),
        _result("chain", "weft", 2.0), _result("chain", "dask", 6.0), _result("chain", "ray", 1.6),
        # A peer that failed is not the best; the other one is.
        _result("commands", "weft", 700.0), _result("commands", "dask", 500.0),
        _result("commands", "ray", None),
    ]
    annotate(plan, results)
    by = {(r.workload, r.system): r for r in results}
    t, c, m = by[("throughput", "weft")].extra, by[("chain", "weft")].extra, by[("commands", "weft")].extra
    assert (t["best_peer"], t["best_peer_value"], t["winner"]) == ("ray", 1500.0, "weft")
    assert t["vs_best_peer"] == pytest.approx(2.0) and t["vs_dask"] == pytest.approx(5.0)
    assert (c["best_peer"], c["winner"]) == ("ray", "ray")  # lower is better: 1.6 ms beats 6 ms
    assert c["vs_best_peer"] == pytest.approx(1.25) and c["vs_dask"] == pytest.approx(1 / 3)
    assert (m["best_peer"], m["winner"]) == ("dask", "weft")
    assert "extra" not in by[("chain", "ray")].to_json() and by[("chain", "ray")].extra == {}
    assert by[("chain", "weft")].to_json()["best_peer"] == "ray"


def test_bench_missing_peer_names_the_extra(tmp_path: Path) -> None:
    # A `ray` package that fails to import, ahead of any installed one.
    (tmp_path / "ray").mkdir()
    (tmp_path / "ray" / "__init__.py").write_text("raise ImportError('No module named ray')\n")
    proc = subprocess.run([sys.executable, "-m", "weft", "bench", "--smoke", "--peers", "ray"],
                          cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "--peers ray needs Ray" in lines[0] and "weft[bench]" in lines[0]


def test_bench_unknown_workload_or_peer() -> None:
    for args, message in ((["--workloads", "nope"], "unknown workload 'nope'"),
                          (["--peers", "spark"], "unknown peer 'spark': choose from dask, ray")):
        proc = subprocess.run([sys.executable, "-m", "weft", "bench", *args],
                              env=_env(), capture_output=True, text=True, timeout=30)
        assert proc.returncode == 2
        assert message in proc.stderr


def test_make_bytes_gives_the_blocks_bytes_behind_the_producers_mark() -> None:
    from weft.bench import workloads as W

    block, mark = W._block(), W._node_mark().encode()[:W.MARK].ljust(W.MARK)
    for n in (0, 10, W.MARK, W.MARK + 1, len(block) - 1, len(block), len(block) + 7, 3 * len(block) + 5):
        want = (mark + (block * (n // len(block) + 1))[W.MARK:n])[:n]  # what the value is: block repeated, marked
        got = W.make_bytes(n)
        assert type(got) is bytes and len(got) == n and got == want, n
