"""`weft up` as a new user runs it: the demo, and a cluster that outlives its daemons."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
from pathlib import Path

import psutil

from .conftest import REPO, Weft, wait_for, weft_argv
from helpers import free_endpoint


def test_up_demo_prints_the_result_and_stops_everything(tmp_path: Path) -> None:
    p = subprocess.run([*weft_argv(), "up", "--demo", "--data-dir", str(tmp_path), "--listen", free_endpoint()],
                       capture_output=True, text=True, cwd=REPO, timeout=120, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr
    assert "demo result:" in p.stdout
    assert "THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG" in p.stdout and "\n9" in p.stdout, p.stdout
    daemons = [q for q in psutil.process_iter(["cmdline"]) if str(tmp_path) in " ".join(q.info["cmdline"] or [])]
    assert not daemons, f"daemons left running: {[q.pid for q in daemons]}"


def test_up_survives_a_dead_daemon_and_prints_how_to_restart_it(tmp_path: Path) -> None:
    endpoint = free_endpoint()
    err = open(tmp_path / "up.err", "w+")
    up = subprocess.Popen([*weft_argv(), "up", "--json", "--slots", "1", "--data-dir", str(tmp_path / "data"),
                           "--listen", endpoint], stdout=subprocess.PIPE, stderr=err, text=True, cwd=REPO,
                          stdin=subprocess.DEVNULL)
    restarted: subprocess.Popen | None = None
    try:
        info = json.loads(up.stdout.readline())
        weft = Weft(endpoint)
        # Node ids carry the cluster's tag: compute-0-TAG.
        compute0 = next(name for name in info["pids"] if name.startswith("compute-0-"))
        tag = compute0.removeprefix("compute-0-")
        os.kill(info["pids"][compute0], signal.SIGKILL)

        def restart_line() -> str | None:
            err.seek(0)
            lines = err.read().splitlines()
            return next((lines[i + 1].strip() for i, line in enumerate(lines)
                         if f"compute {compute0}" in line and "restart it with" in line and i + 1 < len(lines)), None)

        command = wait_for(restart_line, 10, "weft up reports the dead compute node")
        assert command.startswith("weft compute ") and f"--node-id {compute0}" in command, command
        assert up.poll() is None, "weft up stopped when one compute node died"
        # The printed command, as the user would paste it.
        argv = shlex.split(command)
        restarted = subprocess.Popen([*weft_argv(), *argv[1:]], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     cwd=REPO, stdin=subprocess.DEVNULL)
        r = weft("submit", "--wait", "--", "sh", "-c", "echo after-restart")
        assert r.returncode == 0, r.stderr

        def both_compute() -> bool:
            nodes = json.loads(weft("nodes", "--json").stdout)["nodes"]
            return sorted(n["node"] for n in nodes if n["role"] == "compute") == [compute0, f"compute-1-{tag}"]

        wait_for(both_compute, 15, "the restarted compute node rejoins")
    finally:
        up.send_signal(signal.SIGTERM)
        up.wait(30)
        if restarted is not None:
            restarted.terminate()
            restarted.wait(15)
        err.close()
    assert up.returncode == 0
    assert all(not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
               for name, pid in info["pids"].items() if name != compute0)


def test_stopping_a_cluster_twice_signalled_stops_daemons_cleanly_and_leaves_no_task(tmp_path: Path) -> None:
    from weft.actors.client import Client
    from weft.localcluster.cluster import LocalCluster

    marker = f"weft-stop-test-{os.getpid()}"
    cluster = LocalCluster(tmp_path, compute=1, storage=1, slots=1)
    cluster.start(60)
    try:
        with Client(cluster.endpoint) as c:
            c.submit_specs([c.spec(["sh", "-c", f"sleep 60; echo {marker}"])])

            def task_processes() -> list[psutil.Process]:
                shells = [q for q in psutil.process_iter(["cmdline"]) if marker in " ".join(q.info["cmdline"] or [])]
                return [*shells, *(child for q in shells for child in q.children())]

            running = wait_for(lambda: len(task_processes()) == 2 and task_processes(), 20, "the task is running")
    finally:
        # LocalCluster.stop signals each worker daemon twice (all at once, then
        # one by one): the second SIGTERM must not kill a daemon mid-shutdown.
        cluster.stop(grace=20)
    codes = {f"{p.role} {p.node_id}": p.popen.returncode for p in cluster.procs}
    assert all(rc == 0 for rc in codes.values()), codes
    survivors = [q.pid for q in running if q.is_running() and q.status() != psutil.STATUS_ZOMBIE]
    assert not survivors, f"task processes outlived their compute node: {survivors}"
