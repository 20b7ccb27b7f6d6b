"""Job control on a real local cluster, through the `weft` command as a user
runs it: cancelling a running command that ignores SIGTERM (and its
dependents), a group cancelled as one, `--after`, pausing and the job list."""

from __future__ import annotations

import json
import os
import re
import sys
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


def state(client: Client, job: str) -> str:
    """For polling: the client asks in-process (a `weft status` per poll costs a process start)."""
    return client.status([job])[0]["state"]


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def stubborn(weft: Weft, pidfile, *args: str) -> str:
    """A job whose shell and sleep both ignore SIGTERM; the sleep's pid goes
    to `pidfile`, the shell's (its process group's id) to `pidfile`.pg first."""
    return submit(weft, "--input", f"pidfile={pidfile}", *args, "--",
                  "sh", "-c", 'trap "" TERM; echo $$ > "$WEFT_INPUT_PIDFILE.pg"; '
                  'sleep 60 & echo $! > "$WEFT_INPUT_PIDFILE"; wait')


def in_group(pgid: int) -> list[int]:
    """Live processes of process group `pgid`, from the whole process table."""
    out = []
    for p in psutil.process_iter(["pid", "status"]):
        try:
            if os.getpgid(p.pid) == pgid and p.info["status"] != psutil.STATUS_ZOMBIE:
                out.append(p.pid)
        except (ProcessLookupError, PermissionError):
            pass
    return out


def test_cancelling_a_command_that_ignores_sigterm(weft: Weft, client: Client, tmp_path) -> None:
    pidfile = tmp_path / "sleep.pid"
    job = stubborn(weft, pidfile, "--max-cancellation-time", "2")
    dep = submit(weft, "--input", f"x=@{job}/stdout", "--", "cat", "x")
    dep2 = submit(weft, "--input", f"x=@{dep}/stdout", "--", "cat", "x")
    wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), 30, "the sleep starts")
    pid = int(pidfile.read_text())
    pgid = int(pidfile.with_name(pidfile.name + ".pg").read_text())
    assert alive(pid) and status(weft, job)["state"] == "running"
    assert pid in in_group(pgid) and pgid in in_group(pgid)

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

    wait_for(lambda: state(client, job) != "cancelling", 30, "the node confirms the cancel")
    st = status(weft, job)
    assert st["state"] == "cancelled" and st["outcome"] == "cancelled" and st["cause"] == "cancelled by user"
    assert not alive(pid), f"the sleep (pid {pid}) outlived its cancelled job"
    assert in_group(pgid) == [], f"processes of the cancelled job's group {pgid} are left"
    # Cancelling it again succeeds and changes nothing.
    assert re.search(rf"^{job}\s+cancelled", ok(weft("cancel", job)), re.M)
    assert status(weft, job)["finished"] == st["finished"]
    p = weft("wait", dep, "--timeout", "10")
    assert p.returncode == 1


def test_a_cancelled_callable_gets_its_max_cancellation_time(weft: Weft, client: Client, tmp_path) -> None:
    """A callable's worker gets SIGTERM and the job's --max-cancellation-time
    before SIGKILL, as a command does (it handles SIGTERM here and goes on)."""
    pidfile, termfile = tmp_path / "worker.pid", tmp_path / "term"
    job = submit(weft, "--call", "control_fns:stubborn", "--input", f"pidfile={pidfile}",
                 "--input", f"termfile={termfile}", "--max-cancellation-time", "5")
    wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), 30, "the callable starts")
    pid = int(pidfile.read_text())
    assert re.search(rf"^{job}\s+cancelling", ok(weft("cancel", job)), re.M)
    wait_for(termfile.exists, 30, "the worker gets SIGTERM")
    # It handled SIGTERM: a while later it is still there, and the job still
    # `cancelling` (its SIGKILL is due 5 s after the SIGTERM, not sooner).
    time.sleep(1.5)
    [st] = client.status([job])
    assert st["state"] == "cancelling" and alive(pid), st
    wait_for(lambda: state(client, job) != "cancelling", 30, "the node confirms the cancel")
    st = status(weft, job)
    assert st["state"] == "cancelled" and st["code"] == "cancelled", st
    wait_for(lambda: not alive(pid), 10, "the worker is gone")
    # What it printed, also while stopping, is its log.
    assert ok(weft("logs", job)).splitlines() == ["working", "got SIGTERM: cleaning up"]
    # The pool replaced the worker: callables still run.
    again = submit(weft, "--call", "weft.actors.builtins:concat", "--input", "a=ctl-", "--input", "b=after")
    assert weft("wait", again, "--timeout", "30").returncode == 0
    assert ok(weft("get", again)) == "ctl-after"


def test_a_group_is_cancelled_as_one(weft: Weft, client: Client, tmp_path) -> None:
    pids = [tmp_path / f"m{i}.pid" for i in range(3)]
    members = [stubborn(weft, pids[i], "--group", "ctl-g", "--max-cancellation-time", "1") for i in range(3)]
    other = stubborn(weft, tmp_path / "other.pid", "--group", "ctl-other", "--max-cancellation-time", "1")
    wait_for(lambda: pids[0].exists() and pids[0].read_text().strip(), 30, "a member starts")
    g = json.loads(ok(weft("group", "status", "ctl-g", "--json")))
    assert g["jobs"] == 3 and sum(g["counts"].values()) == 3 and g["pending_total"] == 3
    assert "ctl-g" in ok(weft("group", "ls"))

    out = ok(weft("group", "cancel", "ctl-g"))
    assert all(m in out for m in members)

    wait_for(lambda: client.group("ctl-g")["counts"] == {"cancelled": 3}, 30, "every member of the group is cancelled")
    assert json.loads(ok(weft("group", "status", "ctl-g", "--json")))["counts"] == {"cancelled": 3}
    for p in pids:
        if p.exists() and p.read_text().strip():
            assert not alive(int(p.read_text()))
    assert status(weft, other)["state"] in ("running", "runnable")
    listed = json.loads(ok(weft("jobs", "--group", "ctl-g", "--state", "cancelled", "--since", "1h", "--json")))
    assert sorted(v["job"] for v in listed["jobs"]) == sorted(members)
    ok(weft("cancel", other))
    wait_for(lambda: state(client, other) == "cancelled", 30, "the other group's job is cancelled")
    assert status(weft, other)["state"] == "cancelled"


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
    cause = status(weft, after_bad)["cause"]
    assert cause.startswith(f"after job {bad} (sh -c echo ctl-after; exit 3) failed"), cause


def test_after_group_waits_for_every_member(weft: Weft, tmp_path) -> None:
    log, gate = tmp_path / "group-order.txt", tmp_path / "group-gate"
    wait_gate = 'i=0; while [ ! -e "$WEFT_INPUT_GATE" ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done'
    members = [submit(weft, "--group", "ctl-ag", "--input", f"log={log}", "--input", f"gate={gate}", "--",
                      "sh", "-c", f'{wait_gate}; echo member{i} >> "$WEFT_INPUT_LOG"') for i in range(2)]
    last = submit(weft, "--after-group", "ctl-ag", "--input", f"log={log}", "--",
                  "sh", "-c", 'echo last >> "$WEFT_INPUT_LOG"')
    st = status(weft, last)
    assert st["state"] == "waiting" and sorted(st["after"]) == sorted(members) and st["pending"] == 2, st
    gate.touch()
    assert weft("wait", last, "--timeout", "30").returncode == 0
    lines = log.read_text().splitlines()
    assert sorted(lines[:2]) == ["member0", "member1"] and lines[2:] == ["last"], lines


# Level 0 waits for a file `go`, then hands its stdout to level 1, which waits
# for a file `gate`, then notes itself in a log and prints (each wait at most 60 s).
DELEGATING = """\
import json, os, sys, time
env = os.environ

def wait(path):
    for _ in range(1200):
        if os.path.exists(path):
            break
        time.sleep(0.05)

if env["WEFT_INPUT_LEVEL"] == "0":
    wait(env["WEFT_INPUT_GO"])
    job = {"o": ["stdout"], "cmd": [sys.executable, "-c", env["WEFT_INPUT_CODE"]],
           "in": {"code": env["WEFT_INPUT_CODE"], "level": "1", "log": env["WEFT_INPUT_LOG"],
                  "gate": env["WEFT_INPUT_GATE"]}}
    with open(env["WEFT_DELEGATE"], "w") as f:
        json.dump({"job": job, "stream": "stdout"}, f)
else:
    wait(env["WEFT_INPUT_GATE"])
    with open(env["WEFT_INPUT_LOG"], "a") as f:
        f.write("delegate\\n")
    print("made by the delegate")
"""


def test_after_a_job_that_delegated_waits_for_its_delegate(weft: Weft, client: Client, tmp_path) -> None:
    log, go, gate = tmp_path / "order.txt", tmp_path / "go", tmp_path / "gate"
    first = submit(weft, "--input", f"code={DELEGATING}", "--input", "level=0", "--input", f"log={log}",
                   "--input", f"go={go}", "--input", f"gate={gate}", "--", sys.executable, "-c", DELEGATING)
    second = submit(weft, "--after", first, "--input", f"log={log}", "--", "sh", "-c", 'echo after >> "$WEFT_INPUT_LOG"')
    assert status(weft, second)["state"] == "waiting"
    go.touch()
    wait_for(lambda: state(client, first) == "succeeded", 30, "the delegating job succeeds")
    # Its output is still being made by the delegate (held by our gate): the
    # job ordered after it waits for that, not for the delegator alone.
    time.sleep(1.0)
    st = status(weft, second)
    assert st["state"] == "waiting" and st.get("pending") == 1, st
    assert not log.exists()
    gate.touch()
    assert weft("wait", second, "--timeout", "30").returncode == 0
    assert log.read_text() == "delegate\nafter\n"
    assert ok(weft("get", first)) == "made by the delegate\n"


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
