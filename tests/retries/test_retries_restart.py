"""Attempts survive a coordinator restart; a pending timeout with no compute
node says `no-capacity`. Each test starts a cluster of its own."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from weft.localcluster.cluster import LocalCluster

from .conftest import Weft, finished, status, submitted
from .test_retries_cli import counting


def test_attempts_survive_a_coordinator_restart(make_cluster: Callable[..., LocalCluster], tmp_path: Path) -> None:
    cluster = make_cluster(compute=1, storage=1, slots=1, coordinator_args=["--max-soft-retries", "3"])
    weft = Weft(cluster.endpoint)
    runs = tmp_path / "runs"
    job = submitted(weft("submit", "--name", "flaky", "--retries", "1", "--retry-delay", "0.1",
                         "--", "sh", "-c", counting(runs, 9, fail_with=3)))
    before = finished(weft, job)
    tries = status(weft, job, "--attempts")["attempt_list"]
    assert before["state"] == "failed" and [t["exit_code"] for t in tries] == [3, 3]
    assert cluster.coordinator is not None
    cluster.coordinator.stop(10.0)
    cluster.start_coordinator()
    cluster.wait_nodes(1, 1)
    after = status(weft, job, "--attempts")
    assert after["attempt_list"] == tries
    assert (after["state"], after["code"], after["detail"]) == ("failed", "exit-status", "3")
    stats = weft("stats", "--json")
    assert stats.returncode == 0 and '"retries": 1' in stats.stdout, stats.stdout


def test_a_pending_timeout_with_no_compute_node_says_no_capacity(make_cluster: Callable[..., LocalCluster]) -> None:
    cluster = make_cluster(compute=0, storage=1)
    weft = Weft(cluster.endpoint)
    job = submitted(weft("submit", "--name", "stranded", "--pending-timeout", "1", "--", "true"))
    st = finished(weft, job)
    assert (st["state"], st["code"]) == ("failed", "pending-timeout")
    assert st["detail"] == "no-capacity: no compute node connected"
    assert "pending timeout" in st["message"]
