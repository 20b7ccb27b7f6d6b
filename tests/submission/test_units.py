"""Unit files through `weft run` and `weft units ls`, on a real cluster."""

from __future__ import annotations

import json
from pathlib import Path

from cluster.conftest import Weft

from weft.actors.client import Client

BUILD = """\
[Batch]
Exec=sh -c 'echo "mode=$WEFT_PARAM_MODE n=$WEFT_PARAM_N"; cat parameters.json'
Priority=3
TimeLimit=5m

[Parameters]
MODE=fast|slow|careful
N=int
"""


def units(tmp_path: Path) -> Path:
    d = tmp_path / "units"
    d.mkdir()
    (d / "build.batch").write_text(BUILD)
    (d / "fix.workorder").write_text("[Workorder]\nExec=true\n")
    return d


def test_bad_parameter_is_rejected_naming_the_allowed_values(weft: Weft, tmp_path: Path) -> None:
    d = units(tmp_path)
    p = weft("run", "--units", str(d), "build", "--param", "MODE=turbo", "--param", "N=2")
    assert p.returncode == 2
    assert p.stderr.strip() == ("weft: error: unit build: parameter MODE='turbo': "
                                "allowed values are fast, slow, careful")
    p = weft("run", "--units", str(d), "build", "--param", "MODE=fast", "--param", "N=two")
    assert p.returncode == 2 and "parameter N='two': expected an integer" in p.stderr
    p = weft("run", "--units", str(d), "build", "--param", "MODE=fast")
    assert p.returncode == 2 and "needs --param N=... (an integer)" in p.stderr
    p = weft("run", "--units", str(d), "nope")
    assert p.returncode == 2 and "no unit 'nope'" in p.stderr and "build, fix" in p.stderr


def test_parameters_reach_the_command(weft: Weft, client: Client, tmp_path: Path) -> None:
    d = units(tmp_path)
    p = weft("run", "build", "--param", "MODE=slow", "--param", "N=7", "--json", env={"WEFT_UNITS": str(d)})
    assert p.returncode == 0, p.stderr
    job = json.loads(p.stdout)["job"]
    st = client.wait([job], timeout=30)[0]
    assert st["state"] == "succeeded", st
    assert st["priority"] == 3
    out = client.get(f"{job}/stdout").decode().splitlines()
    assert out[0] == "mode=slow n=7"
    assert json.loads(out[1]) == {"MODE": "slow", "N": 7}


def test_units_ls(weft: Weft, tmp_path: Path) -> None:
    d = units(tmp_path)
    p = weft("units", "ls", "--units", str(d), "--json")
    assert p.returncode == 0, p.stderr
    got = {u["name"]: u for u in json.loads(p.stdout)["units"]}
    assert got["build"]["class"] == "batch" and got["build"]["parameters"] == {"MODE": "fast|slow|careful", "N": "int"}
    assert got["fix"]["class"] == "workorder" and got["fix"]["parameters"] == {}
    p = weft("units", "ls", "--units", str(d))
    assert p.stdout.splitlines()[0].split() == ["build", "batch", "MODE=fast|slow|careful", "N=int"]


def test_a_recurring_unit_starts_its_first_instance_and_is_deleted(weft: Weft, client: Client,
                                                                    tmp_path: Path) -> None:
    d = tmp_path / "units"
    d.mkdir()
    (d / "tick.batch").write_text("[Batch]\nExec=echo tick\nEvery=1h\n")
    p = weft("run", "--units", str(d), "tick", "--json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["last"] == "tick.1"
    assert client.wait(["tick.1"], timeout=30)[0]["state"] == "succeeded"
    [r] = json.loads(weft("recurring", "ls", "--json").stdout)["recurring"]
    assert r["name"] == "tick" and r["every"] == 3600 and r["instances"] == 1
    p = weft("run", "--units", str(d), "tick")
    assert p.returncode == 2 and "recurring job 'tick' exists" in p.stderr
    assert weft("recurring", "delete", "tick").returncode == 0
    assert json.loads(weft("recurring", "ls", "--json").stdout)["recurring"] == []
    p = weft("submit", "--every", "30m", "--", "true")
    assert p.returncode == 2 and "--every needs --name NAME" in p.stderr
