"""Job control on a real local cluster, through the `weft` command as a user
runs it: cancelling a running command that ignores SIGTERM (and its
dependents), a group cancelled as one, `--after`, pausing and the job list."""

from __future__ import annotations

import json
import re
import time

import psutil
from cluster.conftest import Weft, wait_for

from weft.actors.client import Client

TERMINAL = ("succeeded", "failed", "cancelled")


def ok(p) -> str:
    assert p.returncode == 0, f"exit {p.returncode}: {p.stderr.strip()}"
    return p.stdout


def status(weft: Weft, job: str) -> dict:
    return json.loads(ok(weft("status", job, "--json")))


def submit(weft: Weft, *args: str) -> str:
    out = ok(weft("submit", *args)).strip()
    assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", out), out
    return out


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def stubborn(weft: Weft, pidfile, *args: str) -> str:
    """A job whose shell and sleep both ignore SIGTERM; the sleep's pid goes to `pidfile`."""
    return submit(weft, "--input", f"pidfile={pidfile}", *args, "--",
                  "sh", "-c", 'trap "" TERM; sleep 60 & echo $! > "$WEFT_INPUT_PIDFILE"; wait')


def test_cancelling_a_command_that_ignores_sigterm(weft: Weft, client: Client, tmp_path) -> None:
    pidfile = tmp_path / "sleep.pid"
    job = stubborn(weft, pidfile, "--max-cancellation-time", "2")
    dep = submit(weft, "--input", f"x=@{job}/stdout", "--", "cat", "x")
    dep2 = submit(weft, "--input", f"x=@{dep}/stdout", "--", "cat", "x")
    wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), 30, "the sleep starts")
    pid = int(pidfile.read_text())
    assert alive(pid) and status(weft, job)["state"] == "running"

    out = ok(weft("cancel", job))
    assert re.search(rf"^{job}\s+cancelling", out, re.M), out
    # It ignores SIGTERM: still there, and shown as such, until the SIGKILL 2 s
    # later (asked through the client: a CLI start could take longer than that).
    [st] = client.status([job])
    assert st["state"] == "cancelling" and st["max_cancellation_time"] == 2
    assert client.call("status", {"limit": 1})["counts"].get("cancelling") == 1  # the cluster summary
    assert alive(pid)
    # Its dependents are cancelled at once, naming it.
    for d in (dep, dep2):
        sd = status(weft, d)
        assert sd["state"] == "cancelled" and sd["cause"] == f"job {job} was cancelled", sd

    wait_for(lambda: status(weft, job)["state"] != "cancelling", 30, "the node confirms the cancel")
    st = status(weft, job)
    assert st["state"] == "cancelled" and st["outcome"] == "cancelled" and st["cause"] == "cancelled by user"
    assert not alive(pid), f"the sleep (pid {pid}) outlived its cancelled job"
    # Cancelling it again succeeds and changes nothing.
    assert re.search(rf"^{job}\s+cancelled", ok(weft("cancel", job)), re.M)
    assert status(weft, job)["finished"] == st["finished"]
    p = weft("wait", dep, "--timeout", "10")
    assert p.returncode == 1


def test_a_group_is_cancelled_as_one(weft: Weft, tmp_path) -> None:
    pids = [tmp_path / f"m{i}.pid" for i in range(3)]
    members = [stubborn(weft, pids[i], "--group", "ctl-g", "--max-cancellation-time", "1") for i in range(3)]
    other = stubborn(weft, tmp_path / "other.pid", "--group", "ctl-other", "--max-cancellation-time", "1")
    wait_for(lambda: pids[0].exists() and pids[0].read_text().strip(), 30, "a member starts")
    g = json.loads(ok(weft("group", "status", "ctl-g", "--json")))
    assert g["jobs"] == 3 and sum(g["counts"].values()) == 3 and g["pending_total"] == 3
    assert "ctl-g" in ok(weft("group", "ls"))

    out = ok(weft("group", "cancel", "ctl-g"))
    assert all(m in out for m in members)

    def settled() -> bool:
        return json.loads(ok(weft("group", "status", "ctl-g", "--json")))["counts"] == {"cancelled": 3}

    wait_for(settled, 30, "every member of the group is cancelled")
    for p in pids:
        if p.exists() and p.read_text().strip():
            assert not alive(int(p.read_text()))
    assert status(weft, other)["state"] in ("running", "runnable")
    listed = json.loads(ok(weft("jobs", "--group", "ctl-g", "--state", "cancelled", "--since", "1h", "--json")))
    assert sorted(v["job"] for v in listed["jobs"]) == sorted(members)
    ok(weft("cancel", other))
    wait_for(lambda: status(weft, other)["state"] == "cancelled", 30, "the other group's job is cancelled")


def test_after_orders_without_data(weft: Weft, tmp_path) -> None:
    log = tmp_path / "order.txt"
    gate = tmp_path / "gate"
    first = submit(weft, "--input", f"log={log}", "--input", f"gate={gate}", "--",
                   "sh", "-c", 'i=0; while [ ! -e "$WEFT_INPUT_GATE" ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done; '
                   'echo first >> "$WEFT_INPUT_LOG"')
    second = submit(weft, "--after", first, "--input", f"log={log}", "--", "sh", "-c", 'echo second >> "$WEFT_INPUT_LOG"')
    st = status(weft, second)
    assert st["state"] == "waiting" and st["pending"] == 1 and st["after"] == [first]
    assert re.search(r"^pending\s+1$", ok(weft("status", second)), re.M)
    gate.touch()
    assert weft("wait", second, "--timeout", "30").returncode == 0
    assert log.read_text() == "first\nsecond\n"
    # After a job that failed: fails, naming it.
    bad = submit(weft, "--", "sh", "-c", "echo ctl-after; exit 3")
    after_bad = submit(weft, "--after", bad, "--", "echo", "never")
    assert weft("wait", after_bad, "--timeout", "30").returncode == 1
    # (named by its command: issue 17's readable causes)
    assert status(weft, after_bad)["cause"].startswith(f"after job {bad} (sh -c echo ctl-after; exit 3) failed")


def test_pause_and_resume(weft: Weft, tmp_path) -> None:
    ok(weft("pause"))
    try:
        held = submit(weft, "--", "echo", "ctl-paused-cluster")
        assert "cluster paused since" in ok(weft("status"))
        stats = json.loads(ok(weft("stats", "--json")))
        assert "cluster" in stats["paused"]
    finally:
        ok(weft("resume"))
    assert weft("wait", held, "--timeout", "30").returncode == 0

    out = ok(weft("pause", "--group", "ctl-p"))
    assert "group ctl-p paused since" in out
    try:
        member = submit(weft, "--group", "ctl-p", "--", "echo", "ctl-paused-member")
        free = submit(weft, "--group", "ctl-free", "--", "echo", "ctl-free-member")
        # Rounds run (the free job, submitted later, finishes); the member does not start.
        assert weft("wait", free, "--timeout", "30").returncode == 0
        st = status(weft, member)
        assert st["state"] not in TERMINAL and "started" not in st, st
        assert json.loads(ok(weft("group", "status", "ctl-p", "--json")))["paused"] > 0
    finally:
        ok(weft("resume", "--group", "ctl-p"))
    assert weft("wait", member, "--timeout", "30").returncode == 0


def test_jobs_lists_like_squeue(weft: Weft) -> None:
    job = submit(weft, "--name", "ctl-listed", "--group", "ctl-list", "--", "echo", "listed")
    assert weft("wait", job, "--timeout", "30").returncode == 0
    out = ok(weft("jobs", "--group", "ctl-list"))
    header, *rows = out.strip().splitlines()
    assert header.split()[:6] == ["JOB", "NAME", "STATE", "NODE", "AGE", "RUNTIME"]
    assert len(rows) == 1 and rows[0].split()[:3] == ["ctl-listed", "ctl-listed", "succeeded"]
    assert ok(weft("jobs", "--state", "failed", "--group", "ctl-list")).strip().splitlines()[1:] == []
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() + 3600))
    assert json.loads(ok(weft("jobs", "--since", since, "--json")))["jobs"] == []
    p = weft("jobs", "--state", "sleeping")
    assert p.returncode == 2 and "invalid --state 'sleeping'" in p.stderr
