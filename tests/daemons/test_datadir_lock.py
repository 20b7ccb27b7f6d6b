"""One daemon per data directory: a second one is refused and the first runs on untouched."""

from __future__ import annotations

import json
from pathlib import Path

from weft.actors.client import Client
from weft.localcluster.cluster import LocalCluster, zygote_usable

from .conftest import Daemons, assert_one_line_error, free_port, wait_for, weft


def test_a_second_daemon_on_a_used_data_dir_is_refused_and_the_running_job_succeeds(tmp_path: Path) -> None:
    # Forked from the zygote where it can be, as `weft up` starts them: the fork holds the lock too.
    cluster = LocalCluster(tmp_path / "cluster", compute=1, storage=1, slots=1, fork_server=zygote_usable())
    cluster.start(60)
    try:
        compute = cluster.computes[0]
        compute_dir = tmp_path / "cluster" / "compute-0"
        tasks_log = compute_dir / "tasks.log"
        with Client(cluster.endpoint, timeout=10.0) as c:
            [future] = c.submit_specs([c.spec(["sh", "-c", "sleep 1.5; echo still-mine"])])
            # Running before the intruder comes: a refused start must not stop it.
            wait_for(lambda: future.status().get("state") == "running", 20, "the job runs")
            before = tasks_log.read_bytes()

            for role, d in (("compute", compute_dir), ("coordinator", tmp_path / "cluster" / "coordinator")):
                p = weft(role, "--data-dir", str(d), "--listen", f"tcp://127.0.0.1:{free_port()}", "--no-beacon")
                owner = compute.pid if role == "compute" else cluster.coordinator.pid
                assert_one_line_error(p, f"data directory {d} is in use by pid {owner}")

            assert future.result(timeout=30) == b"still-mine\n"
        assert tasks_log.read_bytes().startswith(before), "the refused daemon rewrote the live node's task log"
        assert compute.alive() and cluster.coordinator.alive()
    finally:
        cluster.stop()


def test_weft_up_on_a_used_data_dir_is_refused_before_it_starts_anything(tmp_path: Path, daemons: Daemons) -> None:
    data = tmp_path / "data"
    first = daemons.start("up", "--json", "--compute", "1", "--storage", "1", "--slots", "1",
                          "--data-dir", str(data), "--listen", f"tcp://127.0.0.1:{free_port()}")
    info = json.loads(daemons.ready_line(first))
    logs_before = sorted(p.name for p in (data / "logs").iterdir())

    p = weft("up", "--data-dir", str(data), "--listen", f"tcp://127.0.0.1:{free_port()}", timeout=30)
    assert_one_line_error(p, f"data directory {data} is in use by pid {first.pid}")
    # Its daemons' own directories are refused too, naming the daemon.
    coordinator_pid = info["pids"][next(n for n in info["pids"] if n.startswith("coordinator"))]
    p = weft("coordinator", "--data-dir", str(data / "coordinator"), "--listen",
             f"tcp://127.0.0.1:{free_port()}", "--no-beacon")
    assert_one_line_error(p, f"data directory {data / 'coordinator'} is in use by pid {coordinator_pid}")
    assert sorted(p.name for p in (data / "logs").iterdir()) == logs_before
    assert first.poll() is None


def test_a_data_dir_is_free_again_once_its_daemon_is_gone(tmp_path: Path, daemons: Daemons) -> None:
    d = tmp_path / "storage"
    args = ("storage", "--data-dir", str(d), "--no-beacon", "--listen", "tcp://127.0.0.1:0")
    first = daemons.start(*args)
    daemons.ready_line(first)
    first.kill()  # no clean exit: the kernel drops the lock
    first.wait(10)
    second = daemons.start(*args)
    assert "listening on" in daemons.ready_line(second)
