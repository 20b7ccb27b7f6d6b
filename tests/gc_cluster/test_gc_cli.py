"""`weft delete`, `weft gc` and the janitor on a real local cluster, as a user
runs them; storage is asked directly (`weft object ls`) what it still holds."""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import Callable

import pytest

from weft.actors.client import Client
from weft.actors.model import JobSpec
from weft.localcluster.cluster import LocalCluster

from .conftest import Weft, error_line, ok, wait_for


def held(weft: Weft, cluster: LocalCluster, prefix: str = "") -> list[str]:
    """Names of the objects every storage node holds (optionally under `prefix`)."""
    names: list[str] = []
    for s in cluster.storages:
        names += [o["name"] for o in json.loads(ok(weft("object", "ls", "--storage", s.endpoint,
                                                        "--prefix", prefix, "--json")))]
    return names


def test_delete_is_refused_while_a_pending_job_reads_the_output_then_allowed(
        weft: Weft, cluster: LocalCluster) -> None:
    ok(weft("submit", "--name", "del-a", "--wait", "--", "echo", "a"))
    ok(weft("submit", "--name", "del-c", "--", "sleep", "60"))
    ok(weft("submit", "--name", "del-b", "-i", "x=@del-a/stdout", "-i", "y=@del-c/stdout", "--", "true"))
    assert held(weft, cluster, "del-a/")

    line = error_line(weft("delete", "del-a"))
    assert "job del-a is needed by 1 unfinished job(s) (e.g. del-b)" in line and "--force" in line
    assert ok(weft("get", "del-a")) == "a\n"  # still there

    ok(weft("cancel", "del-c"))  # del-b ends with it: nothing pending reads del-a now
    assert weft("wait", "del-b", "--timeout", "20").returncode == 1
    out = ok(weft("delete", "del-a"))
    assert out.splitlines()[0] == "deleted del-a"
    assert held(weft, cluster, "del-a/") == []
    assert "no job 'del-a'" in error_line(weft("status", "del-a"))


def test_delete_force_fails_the_waiting_reader(weft: Weft, cluster: LocalCluster) -> None:
    ok(weft("submit", "--name", "frc-a", "--wait", "--", "echo", "a"))
    ok(weft("submit", "--name", "frc-c", "--", "sleep", "60"))
    ok(weft("submit", "--name", "frc-b", "-i", "x=@frc-a/stdout", "-i", "y=@frc-c/stdout", "--", "true"))
    r = json.loads(ok(weft("delete", "frc-a", "--force", "--json")))
    assert r["jobs"] == ["frc-a"] and r["failed"] == ["frc-b"]
    st = json.loads(ok(weft("status", "frc-b", "--json")))
    assert st["state"] == "failed" and "frc-a was deleted" in st["cause"]
    ok(weft("cancel", "frc-c"))


def test_delete_of_a_running_job_is_refused(weft: Weft) -> None:
    ok(weft("submit", "--name", "run-a", "--", "sleep", "60"))
    line = error_line(weft("delete", "run-a"))
    assert "job run-a is" in line and "only finished jobs can be deleted" in line
    ok(weft("cancel", "run-a"))


def test_a_task_started_by_hand_on_a_managed_node_survives_the_janitor(
        weft: Weft, cluster: LocalCluster) -> None:
    compute = cluster.computes[0].endpoint
    job = ok(weft("task", "create", "--compute", compute, "hello")).split("\t")[0]

    def done() -> bool:
        return ok(weft("task", "result", "--compute", compute, job)).split()[1] == "done"

    wait_for(done, 20.0, f"task {job} done", interval=0.1)
    # The coordinator hears of it ending; its janitor runs every 0.5 s.
    end = time.monotonic() + 3.0
    for _ in range(30):
        listed = [line.split()[0] for line in ok(weft("task", "list", "--compute", compute)).splitlines()]
        assert job in listed
        if time.monotonic() > end:
            break
        time.sleep(0.2)
    assert ok(weft("task", "delete", "--compute", compute, job)).strip() == f"deleted {job}"


def _gc_run(make_cluster: Callable[..., LocalCluster], n: int) -> tuple[dict, LocalCluster]:
    cluster = make_cluster(compute=1, storage=1, slots=2)
    weft = Weft(cluster.endpoint)
    with Client(cluster.endpoint, timeout=10.0, retry_for=10.0) as c:
        futures = c.submit_specs([JobSpec(command=["echo", str(i)], outputs=["stdout"]) for i in range(n)])
        c.wait(futures, timeout=60.0 + n / 10)
        old = [f.job for f in futures]
        ok(weft("submit", "--name", "need", "--wait", "--", "echo", "needed"))
        ok(weft("submit", "--name", "slow", "--", "sleep", "60"))
        ok(weft("submit", "--name", "reader", "-i", "x=@need/stdout", "-i", "y=@slow/stdout", "--", "true"))
        before = set(held(weft, cluster))
        assert {f"{j}/stdout" for j in old} <= before

        r = json.loads(ok(weft("gc", "--keep", "0", "--json")))
        print(f"\ngc of {n} jobs on a local cluster: {len(r['jobs'])} jobs, {r['objects']} objects, "
              f"journal {r['journal_before']} -> {r['journal_after']} bytes, compacted in "
              f"{r['compact_seconds']:.3f}s")
        assert set(old) <= set(r["jobs"])
        assert "need" not in r["jobs"] and "slow" not in r["jobs"] and "reader" not in r["jobs"]
        assert r["objects"] >= n
        assert r["retained"] == 1  # need: finished, read by the waiting reader
        # Gone from storage; what is still needed is still there.
        after = set(held(weft, cluster))
        assert not {o for o in after if o.split("/")[0] in set(old)}
        assert "need/stdout" in after
        assert "no job" in error_line(weft("status", old[0]))
        counts = c.stats()["jobs"]
        assert sum(counts.values()) == 3, counts  # need, slow, reader
        assert ok(weft("get", "need")) == "needed\n"
        c.cancel(["slow"])
        return r, cluster


GC_STATS = ("gc_jobs_forgotten", "gc_objects_deleted", "gc_last", "journal_compactions")


def test_gc_forgets_finished_jobs_and_deletes_their_objects(make_cluster: Callable[..., LocalCluster]) -> None:
    t0 = int(time.time())
    r, cluster = _gc_run(make_cluster, 40)
    assert r["journal_after"] <= r["journal_before"]
    # `weft stats` counts what gc did, and keeps it across a coordinator restart.
    weft = Weft(cluster.endpoint)
    stats = json.loads(ok(weft("stats", "--json")))
    got = {k: stats[k] for k in GC_STATS}
    assert got["gc_jobs_forgotten"] == len(r["jobs"]) and got["gc_objects_deleted"] == r["objects"], got
    assert got["journal_compactions"] == 1 and t0 <= got["gc_last"] <= time.time() + 1, got
    line = next(x for x in ok(weft("stats")).splitlines() if x.startswith("gc_last"))
    assert datetime.datetime.fromtimestamp(got["gc_last"]).astimezone().strftime("%Y-%m-%d %H:%M") in line, line
    assert cluster.coordinator is not None
    cluster.coordinator.stop(10.0)
    cluster.start_coordinator()
    after = json.loads(ok(weft("stats", "--json")))
    assert {k: after[k] for k in GC_STATS} == got


@pytest.mark.slow
def test_gc_of_two_thousand_jobs(make_cluster: Callable[..., LocalCluster]) -> None:
    r, _ = _gc_run(make_cluster, 2000)
    assert r["journal_after"] < r["journal_before"]
