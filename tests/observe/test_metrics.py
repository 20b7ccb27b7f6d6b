"""Every daemon's /metrics, scraped with Prometheus' own text parser while jobs run."""

from __future__ import annotations

import subprocess
import sys

import pytest
from prometheus_client.parser import text_string_to_metric_families

from weft.actors.client import Client, JobFailed
from weft.bus.errors import BusError
from weft.localcluster.cluster import LocalCluster

from .conftest import http_get


def scrape(addr: str) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} of one daemon's /metrics."""
    status, text = http_get(f"http://{addr}/metrics")
    assert status == 200, text
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def addrs(c: LocalCluster) -> dict[str, str]:
    return {"coordinator": c.metrics_addr("coordinator"), "storage": c.metrics_addr("storage", 0),
            "compute": c.metrics_addr("compute", 0)}


def test_each_role_serves_its_metrics_and_they_move_as_jobs_run(observed: LocalCluster, client: Client) -> None:
    where = addrs(observed)
    before = {role: scrape(a) for role, a in where.items()}
    for role, samples in before.items():
        (info,) = [k for k in samples if k[0] == "weft_node_info"]
        assert dict(info[1])["role"] == role
        assert ("process_resident_memory_bytes", ()) in samples  # the process collector is there too
    assert value(before["compute"], "weft_compute_slots") == 2

    ok = [client.submit(["sh", "-c", f"echo metrics-{i}"]) for i in range(3)]
    bad = client.submit(["sh", "-c", "echo metrics-bad; exit 3"])
    for f in ok:
        f.result(timeout=30)
    try:
        bad.result(timeout=30)
    except JobFailed:
        pass
    else:
        raise AssertionError("a job exiting 3 succeeded")

    after = {role: scrape(a) for role, a in where.items()}
    c0, c1 = before["coordinator"], after["coordinator"]
    assert value(c1, "weft_jobs_submitted_total") - value(c0, "weft_jobs_submitted_total") == 4
    assert value(c1, "weft_jobs_completed_total", outcome="succeeded") - value(
        c0, "weft_jobs_completed_total", outcome="succeeded") == 3
    assert value(c1, "weft_jobs_completed_total", outcome="failed") - value(
        c0, "weft_jobs_completed_total", outcome="failed") == 1
    failures = {dict(k[1])["code"]: v for k, v in c1.items() if k[0] == "weft_job_failures_total"}
    assert failures.get("exit-status", 0) >= 1, failures
    assert value(c1, "weft_jobs_dispatched_total") - value(c0, "weft_jobs_dispatched_total") >= 4
    for h in ("weft_dispatch_latency_seconds_count", "weft_job_runtime_seconds_count"):
        assert value(c1, h) - value(c0, h) >= 4, h
    again = scrape(where["coordinator"])  # nothing new ran: each job counted once, not at every scrape
    for h in ("weft_dispatch_latency_seconds_count", "weft_job_runtime_seconds_count"):
        assert value(again, h) == value(c1, h), h
    assert value(again, "weft_job_failures_total", code="exit-status") == failures["exit-status"]
    assert value(c1, "weft_jobs", state="succeeded") >= 3
    compute = observed.computes[0].node_id
    assert value(c1, "weft_node_slots", node=compute) == 2
    assert value(c1, "weft_node_memory_bytes", node=compute) > 0  # what the node offers placement
    assert ("weft_node_drained", (("node", compute), ("role", "compute"))) in c1
    assert value(c1, "weft_node_drained", node=compute, role="compute") == 0
    assert value(c1, "weft_rpc_calls_total") > value(c0, "weft_rpc_calls_total")

    s0, s1 = before["storage"], after["storage"]
    assert value(s1, "weft_storage_objects") - value(s0, "weft_storage_objects") >= 4  # 4 stdout logs at least
    assert value(s1, "weft_storage_commit_seconds_count") > value(s0, "weft_storage_commit_seconds_count")
    assert value(s1, "weft_events_total") > value(s0, "weft_events_total")
    assert value(after["compute"], "weft_rpc_calls_total") > value(before["compute"], "weft_rpc_calls_total")


def test_rpc_counts_by_op_and_poll_wakeups_move_as_jobs_run(observed: LocalCluster, client: Client) -> None:
    where = addrs(observed)
    before = {role: scrape(a) for role, a in where.items()}
    client.submit(["sh", "-c", "echo by-op"]).result(timeout=30)
    with pytest.raises(BusError):
        client.call("status", "not a map")  # a bad request: its handler answers with an error
    after = {role: scrape(a) for role, a in where.items()}

    def moved(role: str, name: str, **labels: str) -> float:
        return value(after[role], name, **labels) - value(before[role], name, **labels)

    assert moved("coordinator", "weft_rpc_op_calls_total", op="submit") == 1
    assert moved("coordinator", "weft_rpc_op_errors_total", op="status") == 1
    assert moved("coordinator", "weft_rpc_op_errors_total", op="submit") == 0
    assert ("weft_rpc_op_busy_total", (("op", "submit"),)) in after["coordinator"]  # every op, even at 0
    assert moved("compute", "weft_rpc_op_calls_total", op="start_many") + moved(
        "compute", "weft_rpc_op_calls_total", op="start") >= 1
    assert sum(moved("storage", "weft_rpc_op_calls_total", op=op) for op in ("put", "finish")) >= 1  # stdout
    # Long-polls waiting on the compute node's events were woken by the job's steps.
    assert moved("compute", "weft_event_poll_wakeups_total") >= 1
    assert ("weft_event_queue_depth", ()) in after["compute"]


def test_only_metrics_is_served_and_nonsense_is_answered(observed: LocalCluster) -> None:
    addr = observed.metrics_addr("storage", 0)
    status, text = http_get(f"http://{addr}/nope")
    assert status == 404 and "/metrics" in text
    import socket

    host, port = addr.split(":")
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(b"\x00garbage\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 400")
    assert scrape(addr)  # and it still serves


def test_a_metrics_port_in_use_is_refused_in_one_line(observed: LocalCluster, tmp_path) -> None:
    p = subprocess.run([sys.executable, "-m", "weft", "storage", "--data-dir", str(tmp_path / "s"),
                        "--metrics", observed.metrics_addr("coordinator")],
                       capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert p.returncode != 0
    assert f"cannot serve --metrics on {observed.metrics_addr('coordinator')}" in p.stderr, p.stderr


def test_weft_up_refuses_a_bad_metrics_address_before_starting_anything(tmp_path) -> None:
    p = subprocess.run([sys.executable, "-m", "weft", "up", "--data-dir", str(tmp_path), "--metrics", "nowhere"],
                       capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert p.returncode != 0
    assert p.stderr.strip().splitlines()[-1].startswith("weft: error: invalid --metrics 'nowhere'"), p.stderr


def test_weft_up_serves_every_daemons_metrics_on_the_ports_that_follow(tmp_path) -> None:
    import json
    import signal

    from .conftest import free_ports

    base = free_ports(5)
    proc = subprocess.Popen([sys.executable, "-m", "weft", "up", "--data-dir", str(tmp_path), "--listen",
                             "tcp://127.0.0.1:0", "--compute", "1", "--storage", "2", "--slots", "1",
                             "--metrics", f"127.0.0.1:{base}", "--http", f"127.0.0.1:{base + 4}", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True)
    try:
        info = json.loads(proc.stdout.readline())
        urls = info["metrics"]
        assert sorted(urls.values()) == [f"http://127.0.0.1:{base + k}/metrics" for k in range(4)]
        roles = {}
        for node, url in urls.items():
            samples = scrape(url.removeprefix("http://").removesuffix("/metrics"))
            (info_key,) = [k for k in samples if k[0] == "weft_node_info"]
            assert dict(info_key[1])["node"] == node
            roles[dict(info_key[1])["role"]] = url
        assert urls[next(n for n in urls if n.startswith("coordinator"))] == f"http://127.0.0.1:{base}/metrics"
        assert set(roles) == {"coordinator", "storage", "compute"}
        assert info["http"] == f"http://127.0.0.1:{base + 4}/"
        assert http_get(info["http"] + "api/nodes")[0] == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
