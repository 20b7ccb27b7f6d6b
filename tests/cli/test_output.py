"""What the client commands print: resubmissions (cached, joined, settings not
applied), one job's status, submit --wait's output."""

from __future__ import annotations

import json
import re
import uuid

import pytest

from weft.actors.client import Client
from weft.localcluster.cluster import LocalCluster

from .conftest import REPO, Weft, error_line, job_id, ok

DIAMOND = REPO / "examples" / "diamond.toml"


# -- 8. resubmission --------------------------------------------------------------------------------

def test_a_new_job_reports_nothing_existing(weft: Weft) -> None:
    p = weft("submit", "--json", "--call", "weft.actors.builtins:echo", "--input", f"x={uuid.uuid4().hex}")
    [rec] = json.loads(ok(p))["jobs"]
    assert (rec["cached"], rec["joined"], rec["differs"]) == (False, False, [])
    assert p.stderr == ""


def test_resubmitting_a_finished_job_says_so_on_stderr(weft: Weft) -> None:
    args = ("--call", "weft.actors.builtins:echo", "--input", "x=resubmit-finished")
    job = job_id(weft("submit", *args))
    assert weft("wait", job, "--timeout", "30").returncode == 0
    p = weft("submit", *args)
    assert p.stdout == f"{job}\n"
    assert p.stderr == f"job {job} already exists (finished): not run again\n"
    [rec] = json.loads(ok(weft("submit", "--json", *args)))["jobs"]
    assert (rec["job"], rec["cached"], rec["joined"], rec["differs"]) == (job, True, False, [])


def test_resubmitting_a_workflow_counts_what_existed(weft: Weft) -> None:
    assert weft("submit", "--file", str(DIAMOND), "--wait").returncode == 0
    p = weft("submit", "--file", str(DIAMOND))
    assert p.returncode == 0
    assert p.stderr == "4 of 4 jobs already existed (4 finished, 0 queued or running): not run again\n"


def test_python_futures_carry_the_resubmission_fields(cluster: LocalCluster) -> None:
    with Client(cluster.endpoint, timeout=10.0, retry_for=10.0) as c:
        f = c.submit("weft.actors.builtins:echo", x="future-fields")
        assert (f.cached, f.joined, f.differs) == (False, False, [])
        f.result(timeout=30)
        again = c.submit("weft.actors.builtins:echo", x="future-fields")
        assert (again.job, again.cached, again.joined, again.differs) == (f.job, True, False, [])


def test_joining_a_running_job_names_the_settings_not_applied(weft: Weft, cluster: LocalCluster) -> None:
    tag = f"tag={uuid.uuid4().hex}"
    job = job_id(weft("submit", "--time-limit", "60", "--input", tag, "--", "sleep", "30"))
    try:
        with Client(cluster.endpoint, timeout=10.0, retry_for=10.0) as c:
            raw = c.call("submit", {"jobs": [{"cmd": ["sleep", "30"], "in": {"tag": tag[4:]}, "o": ["stdout"]}]})
        if "joined" not in raw["jobs"][0]:
            pytest.skip("this coordinator does not report joined/differs yet")
        p = weft("submit", "--json", "--time-limit", "5", "--input", tag, "--", "sleep", "30")
        [rec] = json.loads(ok(p))["jobs"]
        assert (rec["job"], rec["cached"], rec["joined"]) == (job, False, True)
        assert "time_limit" in rec["differs"]
        line = p.stderr.strip()
        assert re.fullmatch(rf"job {job} already exists \((running|runnable|waiting)\): your --time-limit 5"
                            r"( and [^;]+)? (was|were) not applied(; it keeps .+)?", line), line
    finally:
        weft("cancel", job)


# -- 9. status of one job -----------------------------------------------------------------------------

def test_status_of_one_job_shows_every_field_it_carries(weft: Weft) -> None:
    job = job_id(weft("submit", "--input", "who=status-lines", "--", "sh", "-c", "echo hi $WEFT_INPUT_WHO"))
    assert weft("wait", job, "--timeout", "30").returncode == 0
    st = json.loads(ok(weft("status", job, "--json")))
    lines = ok(weft("status", job)).splitlines()
    keys = [line.split()[0] for line in lines]
    assert set(keys) == set(st) - {"demand", "final"}
    shown = dict(line.split(None, 1) for line in lines)
    assert shown["job"] == job and shown["state"] == "succeeded"
    if "node" in st:  # the node that ran it, when the coordinator still says
        assert re.fullmatch(r"compute-\d", shown["node"])
    for when in ("submitted", "started", "finished"):
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[+-]\d\d:\d\d", shown[when]), shown[when]
    assert re.fullmatch(r"\d+\.\d{3}s", shown["ran"])
    # Fields the coordinator adds (command, inputs, exit code) are printed as they come.
    if "command" in st:
        assert shown["command"] == "sh -c echo hi $WEFT_INPUT_WHO"
    if "inputs" in st:
        assert shown["inputs"] == "who=status-lines"
    if "exit_code" in st:
        assert shown["exit_code"] == "0"


# -- 10. submit --wait prints the output -----------------------------------------------------------------

def test_submit_wait_prints_the_output(weft: Weft) -> None:
    p = weft("submit", "--wait", "--input", "WHO=you", "--", "sh", "-c", "echo hello $WEFT_INPUT_WHO")
    assert (p.returncode, p.stdout, p.stderr) == (0, "hello you\n", "")
    p = weft("submit", "--wait", "--call", "weft.actors.builtins:echo", "--input", "x=wait-call")
    assert (p.returncode, p.stdout, p.stderr) == (0, "wait-call", "")


def test_submit_wait_of_binary_or_large_output_says_how_to_get_it(weft: Weft) -> None:
    p = weft("submit", "--wait", "--", "head", "-c", "1000", "/dev/zero")
    job = json.loads(ok(weft("submit", "--json", "--", "head", "-c", "1000", "/dev/zero")))["jobs"][0]["job"]
    assert (p.returncode, p.stdout) == (0, "")
    assert p.stderr == f"weft: output {job}/stdout is binary (1000 bytes): weft get {job} -o FILE\n"
    p = weft("submit", "--wait", "--", "sh", "-c", "yes abc | head -c 300000")
    job = json.loads(ok(weft("submit", "--json", "--", "sh", "-c", "yes abc | head -c 300000")))["jobs"][0]["job"]
    assert (p.returncode, p.stdout) == (0, "")
    assert p.stderr == f"weft: output {job}/stdout is over 256 KiB: weft get {job} -o FILE\n"


def test_submit_wait_of_a_failing_job_is_one_line_exit_1(weft: Weft) -> None:
    p = weft("submit", "--wait", "--", "sh", "-c", "echo wait-fails; exit 3")
    assert p.stdout == ""
    line = error_line(p, 1)
    job = re.match(r"job (\S+) failed: ", line).group(1)
    cause = json.loads(ok(weft("status", job, "--json")))["cause"]
    assert line == f"job {job} failed: {cause}"
    assert "exit code 3" in cause
