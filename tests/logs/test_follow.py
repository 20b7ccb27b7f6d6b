"""Following jobs on a real local cluster: `weft logs` (also --follow, and a
failed job's log after its compute node is gone), progress in `weft status`,
a callable's weft.progress, and the Python client's view of both."""

from __future__ import annotations

import json
import selectors
import shutil
import subprocess
import time
from pathlib import Path

from cluster.conftest import REPO, Weft, weft_argv

from weft.actors.client import Client
from weft.localcluster.cluster import LocalCluster

from helpers import wait_for

# A shell loop that waits (at most 60 s) for a file the test creates.
WAIT_FLAG = 'i=0; while [ ! -e "$1" ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done'


def submit(weft: Weft, *argv: str) -> str:
    p = weft("submit", *argv)
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


def read_line(proc: subprocess.Popen, timeout: float) -> bytes:
    """One line of the process's stdout within `timeout` seconds (bounded; no hang)."""
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    buf = b""
    deadline = time.monotonic() + timeout
    try:
        while not buf.endswith(b"\n"):
            left = deadline - time.monotonic()
            assert left > 0, f"no line from weft logs within {timeout}s (got {buf!r})"
            if sel.select(left):
                byte = proc.stdout.read1(1)
                assert byte, f"weft logs ended before a full line (got {buf!r})"
                buf += byte
    finally:
        sel.close()
    return buf


def test_logs_follow_prints_a_running_jobs_lines_before_it_ends(weft: Weft, tmp_path: Path) -> None:
    flag = tmp_path / "go-on"
    job = submit(weft, "--name", "follow-me", "--", "sh", "-c",
                 f'echo first line; {WAIT_FLAG}; echo "second to stderr" >&2; echo third', "sh", str(flag))
    follower = subprocess.Popen([*weft_argv(), "logs", "--follow", job], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, cwd=REPO, env=weft.env, stdin=subprocess.DEVNULL)
    try:
        assert read_line(follower, 30.0) == b"first line\n"
        # The job is still running (it waits for our file), and so is the follower.
        assert json.loads(weft("status", job, "--json").stdout)["state"] == "running"
        assert follower.poll() is None
        flag.touch()
        rest, err = follower.communicate(timeout=60)
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()
    assert follower.returncode == 0, err
    assert sorted(rest.decode().splitlines()) == ["second to stderr", "third"]
    assert json.loads(weft("status", job, "--json").stdout)["state"] == "succeeded"
    # Read again once ended: the whole log, from storage (or the task) alike.
    assert weft("logs", job).stdout.splitlines()[0] == "first line"
    assert weft("logs", "--tail", "1", job).stdout.count("\n") == 1


def test_progress_is_shown_by_status_while_a_command_runs(weft: Weft, tmp_path: Path) -> None:
    flag = tmp_path / "done"
    job = submit(weft, "--name", "half-way", "--", "sh", "-c",
                 f'echo "50 half way there" >> "$WEFT_PROGRESS"; {WAIT_FLAG}', "sh", str(flag))
    try:
        line = wait_for(lambda: _progress_line(weft("status", job).stdout), 30.0, "progress in weft status")
        assert line == "progress  50% half way there"
        st = json.loads(weft("status", job, "--json").stdout)
        assert st["state"] == "running" and st["progress"] == [50, "half way there"]
    finally:
        flag.touch()
    assert weft("wait", "--timeout", "1m", job).returncode == 0
    # Ended: no progress is shown any more.
    assert _progress_line(weft("status", job).stdout) is None


def _progress_line(status: str) -> str | None:
    return next((line for line in status.splitlines() if line.startswith("progress ")), None)


def test_a_callables_weft_progress_reaches_the_future(cluster: LocalCluster, tmp_path: Path) -> None:
    flag = tmp_path / "callable-done"
    with Client(cluster.endpoint, timeout=10.0, retry_for=10.0) as c:
        [fut] = c.submit_specs([c.spec("follow_fns:report_then_wait", flag=str(flag))])
        try:
            got = wait_for(fut.progress, 30.0, "the callable's progress")
            assert got == (30.0, "callable at work")
        finally:
            flag.touch()
        assert fut.result(timeout=60) == b"done"
        assert fut.progress() is None


def test_a_failed_callables_prints_are_its_log(weft: Weft) -> None:
    job = submit(weft, "--call", "follow_fns:noisy_fail", "-i", "word=hello")
    assert weft("wait", "--timeout", "60s", job).returncode == 1
    p = weft("logs", job)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == ["callable says hello", "callable warns"]
    # The worker's log file was emptied: the next call's log starts clean.
    again = submit(weft, "--call", "follow_fns:noisy_fail", "-i", "word=again")
    assert weft("wait", "--timeout", "60s", again).returncode == 1
    assert weft("logs", again).stdout.splitlines() == ["callable says again", "callable warns"]


def test_client_logs_of_a_running_and_an_ended_job(cluster: LocalCluster, tmp_path: Path) -> None:
    flag = tmp_path / "client-go"
    with Client(cluster.endpoint, timeout=10.0, retry_for=10.0) as c:
        from weft.actors.model import JobSpec

        spec = JobSpec(command=["sh", "-c", f'echo one; {WAIT_FLAG}; echo two', "sh", str(flag)],
                       outputs=["stdout"], name="client-follow")
        [fut] = c.submit_specs([spec])
        chunks = c.logs(fut, follow=True)
        assert wait_for(lambda: c.logs(fut), 30.0, "the first line") == b"one\n"
        flag.touch()
        assert b"".join(chunks) == b"one\ntwo\n"
        assert c.logs(fut) == b"one\ntwo\n"


def test_a_failed_and_a_cancelled_jobs_logs_outlive_their_compute_node(make_cluster, tmp_path: Path) -> None:
    cluster: LocalCluster = make_cluster(compute=1, storage=1, slots=1)
    weft = Weft(cluster.endpoint)
    job = submit(weft, "--", "sh", "-c", "echo working; echo 'it broke: no disk' >&2; exit 3")
    assert weft("wait", "--timeout", "60s", job).returncode == 1
    # A cancelled job's log is kept the same way.
    flag = tmp_path / "cancel-me"
    cancelled = submit(weft, "--", "sh", "-c", 'echo about to be cancelled; echo "on stderr too" >&2; touch "$1"; sleep 60',
                       "sh", str(flag))
    wait_for(flag.exists, 30.0, "the job to be cancelled starts")
    assert weft("cancel", cancelled).returncode == 0
    with Client(cluster.endpoint, timeout=10.0, retry_for=10.0) as client:  # polls without a process each
        wait_for(lambda: client.status([cancelled])[0]["state"] == "cancelled", 30.0, "the cancel is confirmed")
    assert json.loads(weft("status", cancelled, "--json").stdout)["state"] == "cancelled"
    # The compute node goes, with everything it kept, and comes back empty.
    cluster.computes[0].stop()
    shutil.rmtree(cluster.data_dir / "compute-0")
    cluster.add_compute(index=0)
    p = weft("logs", job)
    assert p.returncode == 0, p.stderr
    assert sorted(p.stdout.splitlines()) == ["it broke: no disk", "working"]
    assert weft("logs", "--tail", "0", job).stdout == ""
    p = weft("logs", cancelled)
    assert p.returncode == 0, p.stderr
    assert sorted(p.stdout.splitlines()) == ["about to be cancelled", "on stderr too"]


def test_logs_follow_goes_on_while_a_job_is_cancelling(weft: Weft, tmp_path: Path) -> None:
    """Lines a job writes as it shuts down (between SIGTERM and its end) are followed too."""
    flag = tmp_path / "may-stop"
    job = submit(weft, "--max-cancellation-time", "60", "--", "sh", "-c",
                 f'trap \'echo stopping; {WAIT_FLAG}; echo stopped; exit 0\' TERM; echo started; '
                 'i=0; while [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done', "sh", str(flag))
    follower = subprocess.Popen([*weft_argv(), "logs", "--follow", job], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, cwd=REPO, env=weft.env, stdin=subprocess.DEVNULL)
    try:
        assert read_line(follower, 30.0) == b"started\n"
        assert weft("cancel", job).returncode == 0
        # The job traps SIGTERM and waits for our file: it stays `cancelling`,
        # and what it prints meanwhile reaches the follower.
        # (sh may first say its sleep was "Terminated": it is in the group too.)
        lines = [read_line(follower, 30.0)]
        while lines[-1] != b"stopping\n" and len(lines) < 3:
            lines.append(read_line(follower, 30.0))
        assert lines[-1] == b"stopping\n", lines
        assert json.loads(weft("status", job, "--json").stdout)["state"] == "cancelling"
        assert follower.poll() is None
        flag.touch()
        rest, err = follower.communicate(timeout=60)
    finally:
        flag.touch()
        if follower.poll() is None:
            follower.kill()
            follower.wait()
    assert follower.returncode == 0, err
    assert rest == b"stopped\n"
    assert json.loads(weft("status", job, "--json").stdout)["state"] == "cancelled"
