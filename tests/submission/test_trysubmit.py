"""Try-submit, `weft events` and time windows on a real cluster (one compute
node of 2 slots): what can start now starts and the rest is rejected with an
estimate of what still fits; job ends stream with their parameters; a job
outside its time window waits with its next start in its status; `--block`
holds a command until its file exists."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

from cluster.conftest import REPO, Weft, wait_for, weft_argv

from weft.actors.client import Client
from weft.actors.model import JobSpec


def ok(p) -> str:
    assert p.returncode == 0, f"exit {p.returncode}: {p.stderr.strip()}"
    return p.stdout


def flow(tmp_path: Path, go: Path, n: int) -> Path:
    hold = f'while [ ! -f "{go}" ]; do sleep 0.05; done; echo $0'
    f = tmp_path / "flow.toml"
    f.write_text("".join(f'[jobs.j{i}]\ncommand = ["sh", "-c", {json.dumps(hold)}, "try{i}"]\n\n' for i in range(n)))
    return f


def test_try_submit_starts_what_fits_and_rejects_the_rest(weft: Weft, client: Client, tmp_path: Path) -> None:
    go = tmp_path / "go"
    p = weft("submit", "--file", str(flow(tmp_path, go, 3)), "--no-queue", "--json")
    assert p.returncode == 1, p.stderr  # something was rejected
    r = json.loads(p.stdout)
    assert len(r["started"]) == 2 and len(r["rejected"]) == 1, r
    assert r["slots"] == {"tiny": 0, "small": 0, "medium": 0, "large": 0}
    assert client.status(r["rejected"])[0]["state"] == "cancelled"  # not kept queued
    # The Python client's form, while both slots are still taken.
    again = client.submit_batch([JobSpec(command=["echo", "later"])], queue=False)
    assert again["started"] == [] and len(again["rejected"]) == 1
    go.touch()
    assert [s["state"] for s in client.wait(r["started"], timeout=30)] == ["succeeded", "succeeded"]
    ends = [json.loads(line) for line in ok(weft("events", "--json")).splitlines()]
    by_job = {e["job"]: e for e in ends}
    assert all(by_job[j]["state"] == "succeeded" for j in r["started"])
    assert by_job[r["rejected"][0]]["state"] == "cancelled"
    # The last end leaves a slot free at least (the other may still be being counted).
    assert max(by_job[j]["slots"]["tiny"] for j in r["started"]) >= 1
    free = client.submit_batch([JobSpec(command=["echo", "now"])], queue=False)
    assert len(free["started"]) == 1 and free["rejected"] == []


def test_events_follow_streams_ends_with_parameters(weft: Weft, client: Client, cluster) -> None:
    env = {**os.environ, "WEFT_COORDINATOR": cluster.endpoint}
    proc = subprocess.Popen([*weft_argv(), "events", "--follow", "--json"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=REPO, env=env)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout], daemon=True).start()
    try:
        spec = JobSpec(command=["sh", "-c", "exit 3"], params={"TARGET": "x86", "N": 4})
        job = client.submit_specs([spec])[0].job
        deadline = time.monotonic() + 30
        seen = None
        while seen is None and time.monotonic() < deadline:
            try:
                e = json.loads(lines.get(timeout=1))
            except queue.Empty:
                continue
            if e["job"] == job:
                seen = e
        assert seen is not None, f"no end of {job} streamed"
        assert seen["state"] == "failed" and seen["parameters"] == {"TARGET": "x86", "N": 4}
        assert seen["code"] == "exit-status" and set(seen["slots"]) == {"tiny", "small", "medium", "large"}
    finally:
        proc.terminate()
        proc.wait(10)


def test_a_closed_window_keeps_a_job_waiting_with_its_next_start(weft: Weft, client: Client) -> None:
    # A one-minute window two hours ahead, in the coordinator's (this machine's) time.
    start = (datetime.now().astimezone() + timedelta(hours=2)).replace(second=0, microsecond=0)
    end = start + timedelta(minutes=1)
    window = f"{start:%H:%M}-{end:%H:%M}"
    job = ok(weft("submit", "--allow", window, "--", "echo", "window")).strip()
    wait_for(lambda: client.status([job])[0].get("next_start"), 20, "a next start in its status")
    st = json.loads(ok(weft("status", job, "--json")))
    assert st["state"] == "waiting" and st["next_start"] == start.timestamp()
    assert st["windows"] == [f"allow {window}"]
    assert f"next_start {start:%Y-%m-%d %H:%M}" in " ".join(ok(weft("status", job)).split())
    p = weft("submit", "--deny", "Mon-Fry", "--", "true")
    assert p.returncode == 2 and p.stderr.strip() == \
        "weft: error: invalid --deny 'Mon-Fry': unknown day 'Fry' (Mon, Tue, ... Sun)"


def test_block_starts_the_command_once_its_file_exists(weft: Weft, client: Client, tmp_path: Path) -> None:
    flag = tmp_path / "ready"
    job = ok(weft("submit", "--block", str(flag), "--", "sh", "-c", 'cat "$0"', str(flag))).strip()
    got = wait_for(lambda: client.progress([job]).get(job), 20, "the wait in its progress")
    assert got == (0.0, f"waiting for {flag}")
    assert client.status([job])[0]["state"] == "running"
    flag.write_text("here\n")
    assert client.wait([job], timeout=30)[0]["state"] == "succeeded"
    assert client.get(f"{job}/stdout") == b"here\n"
