"""kill -9 a compute node with jobs queued for it, restart it: no job shows
more attempts than times it started running (real processes and signals;
each job appends a line to a run log when it starts)."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from pathlib import Path

import pytest
import trio

from weft.actors.client import Client
from weft.bus.peers import connect
from weft.localcluster.cluster import LocalCluster
from weft.runtime.node import new_node_id

from helpers import wait_for

JOBS = 24  # deep enough that the coordinator sends jobs ahead to each node's queue
BIG_INPUT = 48 << 20


def runs(log: Path) -> list[tuple[str, str]]:
    """(job name, task dir) per start, from the run log."""
    if not log.exists():
        return []
    return [tuple(line.split(" ", 1)) for line in log.read_text().splitlines() if " " in line]


@pytest.mark.parametrize(("heartbeat", "down"), [(5.0, 1.0), (1.0, 2.5)], ids=["back-in-time", "lost-then-back"])
def test_jobs_queued_on_a_killed_compute_node_are_not_charged_for_it(tmp_path: Path, heartbeat: float,
                                                                     down: float) -> None:
    """Back before the coordinator gives up on it, or after (its jobs were
    charged when it was lost, and given back when it said they never ran)."""
    log = tmp_path / "runs.log"
    with LocalCluster(tmp_path / "cluster", compute=2, storage=1, slots=1,
                      coordinator_args=["--heartbeat-timeout", str(heartbeat)]) as cluster:
        victim = cluster.computes[0]
        with Client(cluster.endpoint) as client:
            specs = [client.spec(["sh", "-c", f'echo j{i} "$PWD" >> {log}; sleep 0.5; echo j{i}'], name=f"j{i}")
                     for i in range(JOBS)]
            futures = client.submit_specs(specs)
            # Kill it while it runs a job (mid-sleep: that job has logged its
            # start) and more wait in its queue.
            wait_for(lambda: any("compute-0" in d for _, d in runs(log)), 30, "a job running on compute-0")
            queued = client.stats()["busy"]
            victim.signal(signal.SIGKILL)
            victim.popen.wait(10)
            time.sleep(down)
            restarted = cluster.add_compute(index=0, slots=1)
            assert restarted.endpoint and queued >= 1
            states = client.wait(futures, timeout=120)
            assert [s["state"] for s in states] == ["succeeded"] * JOBS, states
            started = Counter(name for name, _ in runs(log))
            views = client.status([f.job for f in futures])
    over = {v["name"]: (v["attempts"], started[v["name"]]) for v in views if v["attempts"] > started[v["name"]]}
    assert not over, f"jobs with more attempts than starts (attempts, starts): {over}"
    assert all(v["attempts"] >= 1 and v.get("ran_on") for v in views), views
    # The kill cost some job a second start, and that one counts as two.
    assert sum(started.values()) > JOBS
    assert sum(v["attempts"] for v in views) > JOBS


def test_a_compute_node_past_its_queue_bound_costs_no_attempts(tmp_path: Path) -> None:
    # The coordinator sends up to 9 jobs per slot ahead; the node takes 2.
    with LocalCluster(tmp_path / "cluster", compute=1, storage=1, slots=1,
                      compute_args=["--max-queued", "2"]) as cluster, Client(cluster.endpoint) as client:
        futures = client.submit_specs([client.spec(["true"], name=f"b{i}") for i in range(40)])
        states = client.wait(futures, timeout=120)
        assert [s["state"] for s in states] == ["succeeded"] * 40, states
        assert all(s["attempts"] == 1 for s in states), states
        stats = client.stats()
    assert stats["busy_starts"] > 0 and stats["soft_failures"] == 0 and stats["failed"] == 0


async def _pause_while_fetching(compute: str, job: str, storage: int, within: float) -> None:
    """SIGSTOP `storage` once `compute` says `job` is reading its inputs."""
    async with connect(compute, new_node_id("test"), timeout=5.0) as peer:
        with trio.fail_after(within):
            while True:
                tasks = (await peer.call("list", {}))["tasks"]
                if any(t["job"] == job and t["state"] == "fetching" for t in tasks):
                    os.kill(storage, signal.SIGSTOP)
                    return
                await trio.sleep(0.002)


def test_a_job_its_node_died_under_while_it_read_its_input_is_not_charged(tmp_path: Path) -> None:
    """The node took a slot for the job and was reading its input when it
    was killed (the input's storage node paused mid-read): nothing of the job
    executed, so the restarted node says it never ran and it is no attempt."""
    log = tmp_path / "runs.log"
    data = tmp_path / "input.bin"
    data.write_bytes(os.urandom(BIG_INPUT))  # read in many chunks: a window to pause storage in
    with LocalCluster(tmp_path / "cluster", compute=1, storage=1, slots=1,
                      coordinator_args=["--heartbeat-timeout", "10"]) as cluster:
        storage, victim = cluster.storages[0], cluster.computes[0]
        with Client(cluster.endpoint) as client:
            spec = client.spec(["sh", "-c", f'echo reader "$PWD" >> {log}; wc -c < "$WEFT_INPUTS/x"'], name="reader", x=data)
            (reader,) = client.submit_specs([spec])
            try:
                trio.run(_pause_while_fetching, victim.endpoint, reader.job, storage.pid, 30.0)
                time.sleep(0.3)
                assert not log.exists()  # it never began running
                victim.signal(signal.SIGKILL)
                victim.popen.wait(10)
                cluster.add_compute(index=0, slots=1)
            finally:
                storage.signal(signal.SIGCONT)
            (state,) = client.wait([reader], timeout=60)
            assert state["state"] == "succeeded", state
            assert client.get(reader.key) == f"{BIG_INPUT}\n".encode()
            (view,) = client.status([reader.job])
    assert [name for name, _ in runs(log)] == ["reader"]
    assert view["attempts"] == 1, view
