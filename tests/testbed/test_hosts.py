"""weft across hosts of the test bed, secure (CurveZMQ keys on every daemon and the CLI).

    h1: coordinator (--replicas 2)   h2, h3: storage (beacons)
    h4: compute (beacons)            h5: compute, static discovery (--no-beacon --coordinator)

One role per host, so cutting a host off cuts one kind of node. (A host with
both a compute and a storage node, cut off mid-run, is the case where a late
write is NOT fenced today: see the report of issue 19's test bed.)

Every compute node has one slot and the coordinator sends no task ahead
(--prefetch 0), so independent jobs spread over hosts. Jobs
append their id to a file on the shared filesystem when they start, which is
how a test sees a job run twice (or not). The tests run in file order and
share the cluster: each leaves every host connected again.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .bed import TestBed
from .weftnet import Cluster, make_keys
from helpers import wait_for

pytestmark = pytest.mark.testbed

NODES_TIMEOUT = 30.0
JOB_TIMEOUT = 90.0


@pytest.fixture(scope="module")
def cluster(bed: TestBed) -> Iterator[Cluster]:
    if len(bed.hosts) < 5:
        pytest.skip("these scenarios need 5 hosts (WEFT_TESTBED_HOSTS=5)")
    keys = bed.root / "keys"
    make_keys(keys, bed.hosts)
    h1, h2, h3, h4, h5 = bed.hosts[:5]
    c = Cluster(bed, keys, h1)
    try:
        c.start(h1, "coordinator", "--replicas", "2", "--storage-grace", "3", "--prefetch", "0")
        c.start(h2, "storage")
        c.start(h3, "storage")
        # Jobs write to runs/ (below) across hosts: shared into their sandboxes (a secure cluster isolates jobs).
        (bed.root / "runs").mkdir(exist_ok=True)
        shared = ("--share", str(bed.root / "runs"))
        c.start(h4, "compute", "--slots", "1", *shared)
        c.start(h5, "compute", "--slots", "1", *shared, beacon=False)
        yield c
    finally:
        c.stop()
        for h in bed.hosts:
            bed.reconnect(h)


@pytest.fixture
def runs(bed: TestBed) -> Path:
    d = bed.root / "runs"
    d.mkdir(exist_ok=True)
    return d


def nodes(c: Cluster) -> dict[str, dict]:
    return {n["node"]: n for n in c.json("nodes")["nodes"]}


def state(c: Cluster, job: str) -> dict:
    return c.json("status", job)


def wait_all(c: Cluster, jobs: list[str]) -> None:
    res = c.cli("wait", *jobs, "--timeout", f"{JOB_TIMEOUT:g}", check=False, timeout=JOB_TIMEOUT + 30)
    assert res.returncode == 0, f"weft wait: {res.returncode}: {res.stdout}{res.stderr}"


def test_nodes_found_across_hosts_by_beacon_and_statically(cluster: Cluster, bed: TestBed) -> None:
    h2, h3, h4, h5 = bed.hosts[1:5]
    want = {"storage-h2": h2, "storage-h3": h3, "compute-h4": h4, "compute-h5": h5}
    found = wait_for(lambda: (lambda n: n if set(want) <= set(n) else None)(nodes(cluster)),
                     NODES_TIMEOUT, "every node registered with the coordinator on h1")
    for node, host in want.items():
        # Each announces its own host's address, so the coordinator (another host) reaches it there.
        assert found[node]["endpoint"].startswith(f"tcp://{host.addr}:"), found[node]


def test_a_job_graph_spans_hosts(cluster: Cluster, bed: TestBed) -> None:
    # One flow: six leaves (all runnable at once, so they spread over the one-slot nodes)
    # and a join reading every leaf's output from wherever it was stored.
    flow = ["[jobs.join]", 'command = ["sh", "-c", "cat $WEFT_INPUTS/*"]',
            "inputs = { " + ", ".join(f'l{i} = "@leaf{i}"' for i in range(6)) + " }"]
    for i in range(6):
        flow += [f"[jobs.leaf{i}]", f'command = ["sh", "-c", "sleep 2; echo leaf{i} $(hostname -I)"]']
    path = bed.root / "graph.toml"
    path.write_text("\n".join(flow) + "\n")
    ids = dict(line.split("\t") for line in cluster.cli("submit", "--file", str(path)).stdout.split("\n")
               if "\t" in line)
    assert len(ids) == 7, ids
    wait_all(cluster, list(ids.values()))
    hosts = {state(cluster, ids[f"leaf{i}"])["ran_on"] for i in range(6)}
    assert len(hosts) >= 2, f"six two-second jobs on two one-slot nodes all ran on {hosts}"
    got = sorted(cluster.cli("get", f"{ids['join']}/stdout").stdout.splitlines())
    want = sorted(cluster.cli("get", f"{ids[f'leaf{i}']}/stdout").stdout.strip() for i in range(6))
    assert got == want
    # Each leaf's output names the host it ran on: the graph's data crossed hosts.
    addrs = {line.split()[1] for line in got}
    assert len(addrs) >= 2, got


def _running_on(c: Cluster, job: str) -> str | None:
    s = state(c, job)
    return s.get("ran_on") or s.get("node") if s["state"] == "running" else None


def test_compute_host_cut_off_mid_run(cluster: Cluster, bed: TestBed, runs: Path) -> None:
    log = runs / "cut-compute"
    # Started, then 8 s of work, then the host's address as the output.
    job = cluster.submit("--", "sh", "-c", f"echo $(hostname -I) >> {log}; sleep 8; hostname -I")
    node = wait_for(lambda: _running_on(cluster, job), 30, "the job running")
    host = bed[node.split("-", 1)[1]]
    bed.cut(host)
    try:
        # The coordinator loses the node and starts the job again on another host.
        wait_for(lambda: len(log.read_text().split()) >= 2 if log.exists() else False, 30,
                 "the job started again elsewhere")
    finally:
        bed.reconnect(host)
    wait_all(cluster, [job])
    # The first run finishes on the reconnected host before the second one: its late
    # output and report are fenced, so the job's output is the second run's.
    s = state(cluster, job)
    assert s["ran_on"] != node
    out = cluster.cli("get", f"{job}/stdout").stdout.split()
    starts = log.read_text().split()
    assert starts[0] == host.addr and out == [starts[1]] and out != [host.addr], (starts, out, s)
    wait_for(lambda: nodes(cluster).get(node), NODES_TIMEOUT, f"{node} back in weft nodes")


def test_storage_host_cut_off(cluster: Cluster, bed: TestBed) -> None:
    h2 = bed.hosts[1]
    made = cluster.submit("--", "sh", "-c", "echo kept on two hosts")
    wait_all(cluster, [made])
    held = {n: nodes(cluster)[n].get("objects") for n in ("storage-h2", "storage-h3")}
    assert all(held.values()), f"both storage hosts hold objects: {held}"
    bed.cut(h2)
    try:
        # The output has a copy on h3 (--replicas 2): it is read, and used, without h2.
        assert cluster.cli("get", f"{made}/stdout").stdout == "kept on two hosts\n"
        used = cluster.submit("-i", f"X=@{made}/stdout", "--", "sh", "-c", "tr a-z A-Z < $WEFT_INPUTS/X")
        wait_all(cluster, [used])
        assert cluster.cli("get", f"{used}/stdout").stdout == "KEPT ON TWO HOSTS\n"
    finally:
        bed.reconnect(h2)
    wait_for(lambda: "storage-h2" in nodes(cluster), NODES_TIMEOUT, "storage-h2 back")


def test_coordinator_host_cut_off_and_back(cluster: Cluster, bed: TestBed, runs: Path) -> None:
    log = runs / "cut-coordinator"
    # Distinct commands: the same command twice is the same job (ids are content hashes).
    jobs = [cluster.submit("--", "sh", "-c", f"echo $WEFT_JOB_ID >> {log}; sleep 1; echo {i}") for i in range(8)]
    assert len(set(jobs)) == 8
    wait_for(lambda: log.exists() and log.read_text().strip(), 30, "the first jobs running")
    h1 = bed.hosts[0]
    bed.cut(h1)
    time.sleep(5)  # longer than the heartbeat timeout: every side notices the silence
    bed.reconnect(h1)
    wait_all(cluster, jobs)
    ran = log.read_text().split()
    assert sorted(ran) == sorted(jobs), "every job ran exactly once"
    assert all(state(cluster, j)["state"] == "succeeded" for j in jobs)
