"""The `weft` command against a real local cluster, as a user runs it."""

from __future__ import annotations

import json
import os
import re

import pytest

from weft.actors.client import Client

from .conftest import REPO, Weft, wait_for

DIAMOND = REPO / "examples" / "diamond.toml"
DIAMOND_D = b"THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG\n9\n"


def ok(p) -> str:
    assert p.returncode == 0, f"exit {p.returncode}: {p.stderr.strip()}"
    return p.stdout


def one_line_error(p, code: int = 2) -> str:
    assert p.returncode == code, f"exit {p.returncode}: {p.stdout!r} {p.stderr!r}"
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith("weft: error: "), lines[0]
    assert "Traceback" not in p.stderr
    return lines[0]


def status(weft: Weft, job: str) -> dict:
    return json.loads(ok(weft("status", job, "--json")))


def submit_one(weft: Weft, *args: str) -> str:
    """`weft submit ...` -> the job id it printed."""
    out = ok(weft("submit", *args)).strip()
    assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", out), out
    return out


# -- 1. the diamond workflow file ---------------------------------------------------------------------

def test_diamond_workflow_through_the_cli(weft: Weft) -> None:
    p = weft("submit", "--file", str(DIAMOND), "--wait")
    out = ok(p)
    # One line per job: "<name>\t<id>  <state>"
    ids = {}
    for line in out.strip().splitlines():
        name, rest = line.split("\t", 1)
        job, state = rest.split()[:2]
        assert state == "succeeded", line
        ids[name] = job
    assert sorted(ids) == ["a", "b", "c", "d"]

    p = weft("get", ids["d"])
    assert ok(p).encode() == DIAMOND_D
    assert ok(weft("get", f"{ids['d']}/result")).encode() == DIAMOND_D
    assert ok(weft("get", ids["b"])) == "THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG\n"


def test_resubmitting_the_workflow_runs_nothing(weft: Weft) -> None:
    first = json.loads(ok(weft("submit", "--file", str(DIAMOND), "--wait", "--json")))
    assert first["ok"] is True
    before = json.loads(ok(weft("stats", "--json")))
    again = json.loads(ok(weft("submit", "--file", str(DIAMOND), "--json")))
    assert [j["job"] for j in again["jobs"]] == [j["job"] for j in first["jobs"]]
    assert all(j["cached"] for j in again["jobs"])
    after = json.loads(ok(weft("stats", "--json")))
    assert after["dispatched"] == before["dispatched"]


# -- 8. the other commands --------------------------------------------------------------------------

def test_nodes_json_lists_the_cluster(weft: Weft) -> None:
    nodes = json.loads(ok(weft("nodes", "--json")))["nodes"]
    roles = sorted(n["role"] for n in nodes)
    assert roles == ["compute", "compute", "storage", "storage"]
    for n in nodes:
        assert re.fullmatch(r"tcp://127\.0\.0\.1:\d+", n["endpoint"]), n
        assert n["ready"] is True
    assert len({n["endpoint"] for n in nodes}) == 4
    assert sorted(n["node"] for n in nodes) == ["compute-0", "compute-1", "storage-0", "storage-1"]
    assert all(n["slots"] == 2 for n in nodes if n["role"] == "compute")
    # The plain table names every node too.
    table = ok(weft("nodes"))
    for n in nodes:
        assert n["node"] in table and n["endpoint"] in table


def test_stats_json_parses(weft: Weft) -> None:
    s = json.loads(ok(weft("stats", "--json")))
    assert s["computes"] == 2
    assert s["storages"] == 2
    assert s["slots"] == 4
    for key in ("dispatched", "succeeded", "failed", "soft_failures", "delegations", "runnable", "busy"):
        assert isinstance(s[key], int), key
    assert isinstance(s["jobs"], dict)


def test_status_json_of_one_job(weft: Weft) -> None:
    job = submit_one(weft, "--call", "weft.actors.builtins:echo", "--input", "x=status-json")
    ok(weft("wait", job, "--timeout", "30"))
    st = status(weft, job)
    assert st["job"] == job
    assert st["state"] == "succeeded"
    assert st["outcome"] == "success"
    assert st["outputs"] == [f"{job}/result"]
    assert st["attempts"] == 1
    assert ok(weft("get", job)) == "status-json"
    # The human form has the same facts.
    text = ok(weft("status", job))
    assert re.search(rf"^job\s+{job}$", text, re.M)
    assert re.search(r"^state\s+succeeded$", text, re.M)


def test_cancel_a_long_sleeping_job(weft: Weft, client: Client, tmp_path) -> None:
    pidfile = tmp_path / "sleeper.pid"
    job = submit_one(weft, "--input", f"pidfile={pidfile}", "--", "sh", "-c", 'echo $$ > "$WEFT_INPUT_PIDFILE"; exec sleep 60')
    dep = submit_one(weft, "--input", f"x=@{job}/stdout", "--", "cat", "x")
    wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), 20, "the sleeper starts")
    pid = int(pidfile.read_text())
    assert status(weft, job)["state"] == "running"
    assert status(weft, dep)["state"] == "waiting"

    out = ok(weft("cancel", job))
    assert job in out and "cancelling" in out  # until its node says the process is gone
    # Polled through the client: a `weft status` per poll costs a process start.
    wait_for(lambda: client.status([job])[0]["state"] == "cancelled", 20, "the cancel is confirmed")
    st = status(weft, job)
    assert st["state"] == "cancelled" and st["outcome"] == "cancelled"
    st_dep = status(weft, dep)
    assert st_dep["state"] == "cancelled"  # dependents are cancelled with it (issue 16)
    assert job in st_dep["cause"]
    p = weft("wait", dep, "--timeout", "10")
    assert p.returncode == 1

    def gone() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    # The command itself was stopped, not just forgotten.
    wait_for(gone, 15, f"the cancelled command (pid {pid}) exits")


def test_wait_on_a_failed_dependent_exits_1(weft: Weft) -> None:
    bad = submit_one(weft, "--", "sh", "-c", "echo cli-case-6; exit 3")
    dep = submit_one(weft, "--input", f"x=@{bad}/stdout", "--", "cat", "x")
    p = weft("wait", dep, "--timeout", "30")
    assert p.returncode == 1, p.stderr
    assert dep in p.stdout and "failed" in p.stdout and bad in p.stdout
    p = weft("submit", "--wait", "--", "sh", "-c", "echo cli-case-6; exit 3")
    # One job: its failure is the one error line, on stderr.
    line = one_line_error(p, code=1)
    assert line.startswith(f"weft: error: job {bad} failed: ")
    assert "exit code 3" in line
    assert p.stdout == ""


def test_unreachable_coordinator_is_one_line_and_exit_2() -> None:
    weft = Weft("tcp://127.0.0.1:1")
    p = weft("status", timeout=30)
    line = one_line_error(p)
    assert "tcp://127.0.0.1:1" in line
    assert "unreachable" in line
    assert p.elapsed < 6.0, f"took {p.elapsed:.1f}s"


@pytest.mark.parametrize("args", [
    ("--input", "noequals", "--", "echo", "hi"),
    ("--input", "=value", "--", "echo", "hi"),
    ("--input", "x=@not an object", "--", "echo", "hi"),
])
def test_submit_with_a_bad_input_is_one_line_and_exit_2(weft: Weft, args: tuple[str, ...]) -> None:
    p = weft("submit", *args)
    line = one_line_error(p)
    assert "--input" in line
    assert args[1] in line



# -- empty outputs: held by the coordinator, on no storage node -----------------------------------

def test_an_empty_stdout_and_an_empty_output_file_read_back_empty(weft: Weft, cluster, tmp_path) -> None:
    from weft.actors.client import Client, ObjectRef

    tag = str(os.getpid())
    with Client(cluster.endpoint, timeout=10.0) as c:
        before = c.stats()
        sa = c.spec(["sh", "-c", ': > "$WEFT_OUTPUTS/file"'], outputs=["stdout", "file"], tag=tag)
        # Its reader finds both inputs there as files, empty (submitted
        # together: it may follow `a` on a's node, which hands it the bytes).
        sb = c.spec(["sh", "-c", 'wc -c < "$WEFT_INPUTS/x"; wc -c < "$WEFT_INPUTS/y"'],
                    x=ObjectRef(f"{sa.job_id()}/stdout"), y=ObjectRef(f"{sa.job_id()}/file"), tag=tag)
        a, b = c.submit_specs([sa, sb])
        assert b.result(timeout=60).split() == [b"0", b"0"]
        # It never found an input missing: one attempt, nothing unmet.
        assert c.stats().get("unmet", 0) == before.get("unmet", 0)
        assert c.status([b.job])[0]["attempts"] == 1
        for output in ("stdout", "file"):
            where = c.locate(f"{a.job}/{output}")
            # Written nowhere: no storage copy, its (empty) bytes in the answer.
            assert where["state"] == "finished" and where["copies"] == [] and where["data"] == b""
            assert c.get(f"{a.job}/{output}") == b""
    assert ok(weft("get", a.job)) == ""
    ok(weft("get", f"{a.job}/file", "-o", str(tmp_path / "got")))
    assert (tmp_path / "got").read_bytes() == b""


def test_a_callables_empty_result_reads_back_empty_with_no_storage_copy(weft: Weft, cluster) -> None:
    from weft.actors.client import Client, ObjectRef

    tag = str(os.getpid())
    with Client(cluster.endpoint, timeout=10.0) as c:
        before = c.stats()
        sa = c.spec("weft.actors.builtins:noop", tag=tag)  # returns b""
        # Its reader, submitted with it: started ahead on a's node or later
        # elsewhere, it gets the empty bytes either way, in one attempt.
        sb = c.spec("weft.actors.builtins:concat", x=ObjectRef(f"{sa.job_id()}/result"), y="!", tag=tag)
        a, b = c.submit_specs([sa, sb])
        assert b.result(timeout=60) == f"{tag}!".encode()  # concat: tag, x, y in name order
        assert c.stats().get("unmet", 0) == before.get("unmet", 0)
        assert c.status([b.job])[0]["attempts"] == 1
        where = c.locate(f"{a.job}/result")
        assert where["state"] == "finished" and where["copies"] == [] and where["data"] == b""
        assert c.get(f"{a.job}/result") == b""
        # A reader submitted after a ended: the coordinator hands it b"" inline.
        assert c.submit("weft.actors.builtins:concat", x=ObjectRef(f"{a.job}/result"), y="?").result(timeout=60) == b"?"
    assert ok(weft("get", a.job)) == ""


def test_a_callable_with_one_empty_output_and_one_not_stores_only_the_other(cluster) -> None:
    from weft.actors.client import Client

    with Client(cluster.endpoint, timeout=10.0) as c:
        # echo with two inputs returns each as the output of its name.
        f = c.submit("weft.actors.builtins:echo", outputs=["none", "some"], none="", some=f"bytes {os.getpid()}")
        st = c.wait([f], timeout=30)[0]
        assert st.get("final", st)["state"] == "succeeded", st
        none, some = c.locate(f"{f.job}/none"), c.locate(f"{f.job}/some")
        assert none["state"] == "finished" and none["copies"] == [] and none["data"] == b""
        assert some["state"] == "finished" and len(some["copies"]) == 1
        assert c.get(f"{f.job}/none") == b"" and c.get(f"{f.job}/some") == f"bytes {os.getpid()}".encode()
