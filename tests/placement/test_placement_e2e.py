"""Placement on a real local cluster: memory packing, anti-starvation,
workorders, priority and deadline order, hosts, draining, memory limits.

One cluster for the module: 2 compute nodes of 4 CPUs and 512 MiB, 3
storage nodes, a coordinator that reserves a node for a job after it waited
1 s. Tests pin their jobs to one compute node (`node=`) where they count
what runs there, and use inputs of their own so job ids never collide.
"""

from __future__ import annotations

import json
import socket
import sys
import time

import pytest

from weft.actors.client import Client
from weft.localcluster.cluster import LocalCluster

from .conftest import Weft, cluster_fixtures
from helpers import wait_for

MIB = 1 << 20
# Prints when it started and ended (wall seconds), sleeping between.
STAMP = "date +%s.%N; sleep {s}; date +%s.%N"


cluster, client, weft = cluster_fixtures("placement", compute=2, storage=3, slots=4,
                                        compute_args=["--memory", "512M"],
                                        coordinator_args=["--reserve-after", "1"])


def node(cluster: LocalCluster, i: int) -> str:
    return cluster.node_name("compute", i)


def intervals(client: Client, futures: list) -> list[tuple[float, float]]:
    out = []
    for f in futures:
        start, end = f.result(timeout=60).split()
        out.append((float(start), float(end)))
    return out


def most_at_once(spans: list[tuple[float, float]]) -> int:
    edges = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    now = top = 0
    for _, d in edges:
        now += d
        top = max(top, now)
    return top


def test_nodes_show_cpus_and_memory(client: Client, weft: Weft, cluster: LocalCluster) -> None:
    computes = [n for n in client.nodes() if n["role"] == "compute"]
    assert len(computes) == 2
    for n in computes:
        assert n["cpus"] == 4 and n["memory"] == 512 * MIB and n["host"] == socket.gethostname()
        assert n["drained"] is False
    p = weft("nodes")
    assert p.returncode == 0, p.stderr
    assert "512 MiB" in p.stdout and "cpus used/free" in p.stdout
    assert json.loads(weft("nodes", "--json").stdout)["nodes"]


def test_a_512_mib_node_never_runs_more_than_512_mib_at_once(client: Client, cluster: LocalCluster) -> None:
    # 200 MiB each: two fit (400 MiB), a third would be 600.
    futures = [client.submit(["sh", "-c", STAMP.format(s=0.6), "pack", str(i)], memory="200M",
                             node=node(cluster, 0)) for i in range(5)]
    spans = intervals(client, futures)
    assert most_at_once(spans) == 2, spans


def test_a_big_job_is_not_starved_by_a_stream_of_small_ones(client: Client, cluster: LocalCluster) -> None:
    where = node(cluster, 1)

    def small(i: int):  # noqa: ANN202
        return client.submit(["sh", "-c", "sleep 0.5", "small", str(i)], memory="256M", node=where)

    # Two smalls fill the node, ending a quarter second apart, and each
    # freed half is wanted by the next small: the node is never all free
    # unless it is kept for the big job.
    smalls = [small(0)]
    wait_for(lambda: client.status(smalls)[0]["state"] == "running", 10, "the first small running")
    time.sleep(0.25)
    smalls += [small(1), small(2), small(3)]
    big = client.submit(["sh", "-c", "echo big", "big"], memory="512M", node=where)
    i = 4
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and client.status([big])[0]["state"] != "succeeded":
        queued = [s for s in client.status(smalls) if s["state"] in ("waiting", "runnable")]
        if len(queued) < 3:
            smalls.append(small(i))
            i += 1
        time.sleep(0.05)
    assert client.status([big])[0]["state"] == "succeeded", "the big job did not start within the stream"
    assert any(s["state"] not in ("succeeded", "failed") for s in client.status(smalls))  # the stream went on
    client.wait(smalls, timeout=60)


def test_a_workorder_starts_on_a_full_node(client: Client, weft: Weft, cluster: LocalCluster) -> None:
    where = node(cluster, 0)
    before = client.stats()["overcommits"]
    full = client.submit(["sh", "-c", "sleep 3", "full"], cpus=4, node=where)
    wait_for(lambda: client.status([full])[0]["state"] == "running", 10, "the node filled")
    batch = client.submit(["sh", "-c", "echo b", "batch-behind"], node=where)
    wo = client.submit(["sh", "-c", "echo wo", "workorder"], node=where, job_class="workorder")
    assert wo.result(timeout=10) == b"wo\n"
    assert client.status([full])[0]["state"] == "running"  # it started beside it
    assert client.status([batch])[0]["state"] in ("runnable", "waiting")
    assert client.stats()["overcommits"] == before + 1
    assert "overcommits" in weft("stats").stdout
    client.wait([full, batch], timeout=30)


def test_priority_then_deadline_on_one_slot_and_late(client: Client, weft: Weft, cluster: LocalCluster) -> None:
    where = node(cluster, 1)
    one = dict(cpus=4, node=where)  # the whole node: one at a time
    blocker = client.submit(["sh", "-c", "sleep 1.5", "blocker"], **one)
    wait_for(lambda: client.status([blocker])[0]["state"] == "running", 10, "the blocker running")
    jobs = {
        "later": client.spec(["sh", "-c", "true", "later"], deadline="+1h", **one),
        "plain": client.spec(["sh", "-c", "true", "plain"], **one),
        "urgent": client.spec(["sh", "-c", "true", "urgent"], priority=1, **one),
        "sooner": client.spec(["sh", "-c", "true", "sooner"], deadline="+1s", **one),
    }
    futures = dict(zip(jobs, client.submit_specs(list(jobs.values())), strict=True))
    done = client.wait(list(futures.values()), timeout=30)
    started = {name: st["started"] for name, st in zip(futures, done, strict=True)}
    assert sorted(started, key=started.get) == ["urgent", "sooner", "later", "plain"]
    # `sooner` ended after its deadline (behind the blocker): late.
    sooner = client.status([futures["sooner"]])[0]
    assert sooner.get("late") is True and "late" not in client.status([futures["later"]])[0]
    assert "late" in weft("status", futures["sooner"].job).stdout
    assert "late" in weft("jobs").stdout
    assert client.stats()["late"] >= 1


def test_an_unknown_host_waits_with_its_reason_then_fails(client: Client, weft: Weft) -> None:
    p = weft("submit", "--host", "gpu7", "--pending-timeout", "2", "--", "echo", "gpu-job")
    assert p.returncode == 0, p.stderr
    job = p.stdout.strip()
    shown = weft("status", job)
    assert "host gpu7 unknown" in shown.stdout, shown.stdout
    [st] = client.wait([job], timeout=20)
    assert st["state"] == "failed" and st["code"] == "pending-timeout"
    assert st["detail"].startswith("host-unknown")


def test_host_local_and_a_bad_size_are_told(client: Client, weft: Weft) -> None:
    f = client.submit(["sh", "-c", "echo here", "local-host"], host="local")
    assert f.result(timeout=20) == b"here\n"
    p = weft("submit", "--memory", "lots", "--", "true")
    assert p.returncode != 0 and "--memory" in p.stderr and len(p.stderr.splitlines()) == 1


def test_a_job_over_its_memory_limit_ends_memory_limit(client: Client) -> None:
    hog = [sys.executable, "-c", "import time; b = bytearray(300 << 20); time.sleep(5)"]
    f = client.submit(hog, memory="64M")
    [st] = client.wait([f], timeout=30)
    assert st["state"] == "failed" and st["code"] == "memory-limit", st


def test_draining_a_compute_node_stops_new_work_on_it(client: Client, weft: Weft, cluster: LocalCluster) -> None:
    drained = node(cluster, 1)
    p = weft("node", "drain", drained)
    assert p.returncode == 0 and "drained" in p.stdout, p.stderr
    try:
        assert next(n for n in client.nodes() if n["node"] == drained)["drained"] is True
        futures = [client.submit(["sh", "-c", "true", "after-drain", str(i)]) for i in range(6)]
        client.wait(futures, timeout=30)
        assert {s["ran_on"] for s in client.status(futures)} == {node(cluster, 0)}
        pinned = client.submit(["sh", "-c", "true", "pinned-drained"], node=drained)
        wait_for(lambda: "waiting" in client.status([pinned])[0], 10, "a reason for the pinned job")
    finally:
        assert weft("node", "undrain", drained).returncode == 0
    client.wait([pinned], timeout=20)


def test_an_idle_node_takes_jobs_queued_on_a_busy_one(
        client: Client, weft: Weft, cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> None:
    runs = tmp_path_factory.mktemp("steal") / "runs"
    busy, idle = node(cluster, 0), node(cluster, 1)
    assert weft("node", "drain", idle).returncode == 0
    before = client.stats()["withdrawn"]
    # A deep queue: the busy node takes 16 (its memory in tiny jobs) ahead of its 4 CPUs.
    specs = [client.spec(["sh", "-c", f'echo "$WEFT_JOB" >> {runs}; sleep 0.6', "steal", str(i)])
             for i in range(20)]
    futures = client.submit_specs(specs)
    wait_for(lambda: sum(s["state"] == "running" for s in client.status(futures)) >= 16, 10,
             "the busy node holding its queue")
    client.drain(idle, undo=True)
    done = client.wait(futures, timeout=60)
    assert all(s["state"] == "succeeded" and s["attempts"] == 1 for s in done)
    assert client.stats()["withdrawn"] > before
    ran = runs.read_text().split()
    assert sorted(ran) == sorted(f.job for f in futures)  # every job ran exactly once
    where = [s["ran_on"] for s in client.status(futures)]
    assert where.count(idle) > 4  # more than the 4 left in the coordinator's queue
    assert set(where) == {busy, idle}


def test_draining_a_storage_node_copies_its_objects_before_it_leaves(
        client: Client, weft: Weft, cluster: LocalCluster) -> None:
    victim = cluster.node_name("storage", 2)
    endpoint = cluster.storages[2].endpoint

    def held() -> int:
        return sum(endpoint in client.locate(f.key)["copies"] for f in futures)

    # Outputs go to the least loaded storage node: one at a time, until the
    # victim holds some (a batch shares one node).
    futures = []
    for i in range(30):
        # (Past 4 KiB: the coordinator holds no copy of the bytes itself.)
        futures.append(client.submit(["sh", "-c", f"head -c 8000 /dev/zero; echo object {i}", "obj", str(i)]))
        client.wait(futures[-1:], timeout=30)
        if len(futures) >= 6 and held() > 0:
            break
    assert held() > 0
    p = weft("node", "drain", victim)
    assert p.returncode == 0, p.stderr
    wait_for(lambda: next(n for n in client.nodes() if n["node"] == victim).get("drain_left") == 0, 30,
             "the drained node's objects copied elsewhere")
    reruns = client.stats()["lineage_reruns"]
    cluster.storages[2].stop()
    for i, f in enumerate(futures):
        assert f.result(timeout=20) == bytes(8000) + f"object {i}\n".encode()
    # Read from the copies made before it left, not made again by lineage.
    assert client.stats()["lineage_reruns"] == reruns
    assert all(s["attempts"] == 1 for s in client.status(futures))
