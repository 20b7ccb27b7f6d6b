"""The dashboard's JSON API (what its pages and scripts read), on a real cluster running a flow with failures."""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from weft.actors.client import Client
from weft.localcluster.cluster import LocalCluster

from .conftest import free_ports, http_get
from .flows import submit_flow
from helpers import wait_for


@pytest.fixture(scope="module")
def flow(observed: LocalCluster, client: Client) -> dict[str, str]:
    ids = submit_flow(client, "dash")
    wait_for(lambda: client.status([ids["after_bad"]])[0]["state"] == "failed", 30, "after_bad failed")
    return ids


def get(c: LocalCluster, path: str) -> dict:
    status, text = http_get(c.http + path)
    assert status == 200, (path, status, text)
    return json.loads(text)


def test_jobs_are_listed_filtered_and_paged_on_the_server(observed: LocalCluster, flow: dict[str, str]) -> None:
    failed = get(observed, "/api/jobs?flow=dash&state=failed")
    assert failed["total"] == 2
    assert {j["job"] for j in failed["jobs"]} == {flow["bad"], flow["after_bad"]}
    assert {j["flow"] for j in failed["jobs"]} == {"dash:bad", "dash:after_bad"}
    everything = get(observed, "/api/jobs?flow=dash")
    assert everything["total"] == 4
    first, second = (get(observed, f"/api/jobs?flow=dash&limit=1&offset={k}") for k in (0, 1))
    assert len(first["jobs"]) == len(second["jobs"]) == 1 and first["total"] == 4
    assert first["jobs"][0]["job"] != second["jobs"][0]["job"]
    assert [j["job"] for j in everything["jobs"][:2]] == [first["jobs"][0]["job"], second["jobs"][0]["job"]]
    assert get(observed, "/api/jobs?name=after_bad")["jobs"][0]["job"] == flow["after_bad"]
    # A running job's progress, asked of its compute node for the page's jobs.
    slow = wait_for(lambda: next((j.get("progress") for j in get(observed, "/api/jobs?flow=dash&state=running")["jobs"]),
                                 None), 20, "the slow job's progress")
    assert 0 <= slow[0] <= 100 and slow[1].startswith("line ")
    status, text = http_get(observed.http + "/api/jobs?limit=lots")
    assert status == 400 and "'limit' must be an integer" in text


def test_counts_match_what_the_coordinator_says(observed: LocalCluster, client: Client,
                                                flow: dict[str, str]) -> None:
    wait_for(lambda: client.status([flow["slow"]])[0]["state"] == "running", 30, "slow running")
    api = get(observed, "/api/stats")
    assert api["jobs"] == client.stats()["jobs"]
    assert api["jobs"]["failed"] >= 2
    nodes = get(observed, "/api/nodes")["nodes"]
    assert {n["role"] for n in nodes} == {"compute", "storage"} and all(n["ready"] for n in nodes)
    failures = {c["code"]: c for c in get(observed, "/api/failures")["codes"]}
    assert flow["bad"] in {j["job"] for j in failures["exit-status"]["recent"]}
    assert flow["after_bad"] in {j["job"] for j in failures["input-failed"]["recent"]}


def test_one_job_shows_its_neighbours_attempts_and_provenance(observed: LocalCluster, flow: dict[str, str]) -> None:
    bad = get(observed, f"/api/jobs/{flow['bad']}")
    assert bad["state"] == "failed" and bad["code"] == "exit-status"
    assert [d["job"] for d in bad["dependencies"]] == [flow["text"]]
    assert [d["job"] for d in bad["dependents"]] == [flow["after_bad"]]
    assert bad["attempt_list"][0]["code"] == "exit-status"
    assert bad["provenance"].startswith("not made")
    text = get(observed, "/api/jobs/dash:text")  # FLOW:JOB names work as in `weft status`
    assert text["job"] == flow["text"] and text["provenance"].startswith("made by its own run")
    assert {d["job"] for d in text["dependents"]} == {flow["bad"], flow["slow"]}
    assert text["outputs_detail"][0]["state"] == "finished"
    status, body = http_get(observed.http + "/api/jobs/jnosuchjob")
    assert status == 404 and "no job" in body


def test_a_flow_is_a_dag_of_its_jobs(observed: LocalCluster, flow: dict[str, str]) -> None:
    dag = get(observed, "/api/dag?flow=dash")
    assert {j["label"]: j["state"] for j in dag["jobs"]}.keys() == {"text", "bad", "after_bad", "slow"}
    assert sorted(map(tuple, dag["edges"])) == sorted([(flow["text"], flow["bad"]), (flow["bad"], flow["after_bad"]),
                                                       (flow["text"], flow["slow"])])
    assert dag["counts"]["failed"] == 2
    group = get(observed, "/api/dag?group=dash-all")
    assert {j["job"] for j in group["jobs"]} == set(flow.values()) and len(group["edges"]) == 3
    assert get(observed, "/api/jobs?group=dash-all")["total"] == 4
    status, body = http_get(observed.http + "/api/dag?flow=nosuchflow")
    assert status == 404 and "nosuchflow" in body


def test_the_stream_pushes_counts_and_a_growing_log(observed: LocalCluster, flow: dict[str, str]) -> None:
    url = f"{observed.http}/api/stream?job={flow['slow']}&offset=0"
    kinds, offsets = set(), []
    with urllib.request.urlopen(url, timeout=10) as r:
        assert r.headers["Content-Type"].startswith("text/event-stream")
        deadline = time.monotonic() + 20
        event = None
        while time.monotonic() < deadline and len(offsets) < 2:
            line = r.readline().decode().rstrip("\n")
            if line.startswith("event: "):
                event = line[7:]
                kinds.add(event)
            elif line.startswith("data: ") and event == "log":
                chunk = json.loads(line[6:])
                assert "line " in chunk["data"]
                offsets.append(chunk["offset"])
    assert {"history", "stats", "job", "log"} <= kinds
    assert len(offsets) == 2 and offsets[1] > offsets[0], offsets
    # A page opened later starts with the counts the earlier one saw.
    with urllib.request.urlopen(f"{observed.http}/api/stream", timeout=10) as r:
        assert r.readline() == b"event: history\n"
        history = json.loads(r.readline().decode()[6:])
    assert history and all(set(h) == {"time", "jobs"} for h in history)
    assert [h["time"] for h in history] == sorted(h["time"] for h in history)


def _weft(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "weft", *args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def test_beyond_loopback_the_dashboard_needs_tokens(tmp_path: Path) -> None:
    p = _weft("coordinator", "--data-dir", str(tmp_path / "c"), "--http", "0.0.0.0:8570")
    assert p.returncode != 0
    assert p.stderr.strip().splitlines()[-1].startswith(
        "weft: error: refusing to serve the dashboard on 0.0.0.0:8570 without --http-tokens"), p.stderr
    p = _weft("up", "--data-dir", str(tmp_path / "up"), "--http", "0.0.0.0:8570")  # refused before any daemon starts
    assert p.returncode != 0 and "refusing to serve the dashboard on 0.0.0.0:8570" in p.stderr, p.stderr
    assert not (tmp_path / "up" / "logs").exists()


def test_beyond_loopback_tokens_travel_over_https_only(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("user t0k3n\n")
    p = _weft("coordinator", "--data-dir", str(tmp_path / "c"), "--http", "0.0.0.0:8570",
              "--http-tokens", str(tokens))
    assert p.returncode != 0
    assert p.stderr.strip().splitlines()[-1].startswith(
        "weft: error: refusing to serve the dashboard on 0.0.0.0:8570 without HTTPS"), p.stderr
    p = _weft("coordinator", "--data-dir", str(tmp_path / "c"), "--http", "127.0.0.1:8570",
              "--http-cert", str(tokens))
    assert p.returncode != 0 and "--http-cert and --http-key go together" in p.stderr, p.stderr


@pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl to make a test certificate")
def test_the_dashboard_serves_https_with_a_certificate(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key),
                    "-out", str(cert)], check=True, capture_output=True, timeout=60)
    port = free_ports(1)
    proc = subprocess.Popen([sys.executable, "-m", "weft", "coordinator", "--data-dir", str(tmp_path / "c"),
                             "--listen", "tcp://127.0.0.1:0", "--no-beacon", "--http", f"127.0.0.1:{port}",
                             "--http-cert", str(cert), "--http-key", str(key)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert "listening on" in proc.stdout.readline()
        ctx = ssl.create_default_context(cafile=str(cert))
        with urllib.request.urlopen(f"https://127.0.0.1:{port}/api/stats", context=ctx, timeout=10) as r:
            assert r.status == 200 and "jobs" in json.loads(r.read())
        with pytest.raises(OSError):  # no plain HTTP beside it
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/stats", timeout=10).read()
    finally:
        proc.terminate()
        proc.wait(20)


def test_with_a_tokens_file_every_request_needs_a_token(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    made = _weft("keys", "token", "--role", "user", "--file", str(tokens), "--json")
    assert made.returncode == 0, made.stderr
    token = json.loads(made.stdout)["token"]
    assert tokens.read_text() == f"user {token}\n" and tokens.stat().st_mode & 0o077 == 0
    port = free_ports(1)
    proc = subprocess.Popen([sys.executable, "-m", "weft", "coordinator", "--data-dir", str(tmp_path / "c"),
                             "--listen", "tcp://127.0.0.1:0", "--no-beacon", "--http", f"127.0.0.1:{port}",
                             "--http-tokens", str(tokens)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert "listening on" in proc.stdout.readline()
        base = f"http://127.0.0.1:{port}"
        status, body = http_get(base + "/api/stats")
        assert status == 401 and "token" in body
        assert http_get(base + "/api/stats", {"Authorization": "Bearer wrong"})[0] == 401
        status, body = http_get(base + "/api/stats", {"Authorization": f"Bearer {token}"})
        assert status == 200 and "jobs" in json.loads(body)
        # A browser: /login sets the cookie, then the pages and the API take it.
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(f"GET /login?token={token} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            head = b""
            while b"\r\n\r\n" not in head:
                head += s.recv(4096)
        cookie = next(line.split(":", 1)[1].split(";")[0].strip() for line in head.decode().splitlines()
                      if line.lower().startswith("set-cookie:"))
        assert http_get(base + "/api/nodes", {"Cookie": cookie})[0] == 200
        assert http_get(base + "/login?token=wrong")[0] == 401
    finally:
        proc.terminate()
        proc.wait(20)
