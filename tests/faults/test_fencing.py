"""Fencing: a node or coordinator that was given up on cannot write late.

* SIGSTOP compute-0 while it runs jobs, past the heartbeat timeout: the
  coordinator gives its jobs to compute-1 under new fencing tokens (their
  outputs re-created empty under the new token). SIGCONT compute-0: its
  commands have finished meanwhile and it tries to store their outputs with
  the old token. Storage refuses (`fenced` while the rerun is still running,
  `immutable` once the rerun finished), compute-0 reports the attempt
  failed-soft, and the coordinator ignores the late result. Every output is
  right and exists once.
* A coordinator whose epoch was overtaken (a newer one talked to the nodes)
  can no longer create, start or delete anything.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from typing import Any

import pytest

from weft.actors.client import Client
from weft.actors.model import JobSpec
from weft.localcluster.cluster import LocalCluster

from .conftest import (
    FaultReport,
    KillRun,
    live_storage_endpoints,
    log_problems,
    node_call,
    storage_copies,
    wait_until,
)
from .dag import LARGE, SMALL, _script, expected_output

HEARTBEAT = ["--heartbeat-timeout", "2"]
SLEEP = "3"


def sleeping_jobs(seed: int) -> tuple[list[JobSpec], list[bytes]]:
    """Two jobs that sleep 3 s (one prints 1.5 MiB: streamed in chunks) and
    one that reads both."""
    specs, expected = [], []
    for i, size in enumerate((SMALL, LARGE)):
        tag = f"stop{seed}-{i}"
        specs.append(JobSpec(command=["sh", "-c", _script(tag, size, SLEEP)], outputs=["stdout"]))
        expected.append(expected_output(tag, [], size))
    tag = f"stop{seed}-2"
    refs = {f"d{k}": f"{s.job_id()}/stdout" for k, s in enumerate(specs)}
    specs.append(JobSpec(command=["sh", "-c", _script(tag, SMALL, "")], refs=refs, outputs=["stdout"]))
    expected.append(expected_output(tag, expected[:2], SMALL))
    return specs, expected


def run_sigstop(make_cluster: Callable[..., LocalCluster], report: FaultReport, seed: int, resume: str,
                full: bool = False) -> None:
    k = f"-m faults -k '{seed}-{resume}'" if full else "-k 'test_sigstopped_compute_cannot_write_late and not full'"
    where = f"[SIGSTOP seed {seed}, SIGCONT {resume}; reproduce: pytest tests/faults/test_fencing.py {k}]"
    # Only compute-0 at first, so both sleeping jobs run there; compute-1
    # joins idle, so the moved jobs start again at once.
    cluster = make_cluster(compute=1, storage=2, slots=2, coordinator_args=HEARTBEAT)
    specs, expected = sleeping_jobs(seed)
    ids = [s.job_id() for s in specs]
    c0 = cluster.computes[0]
    with Client(cluster.endpoint, timeout=5.0, retry_for=30.0) as client:
        client.submit_specs(specs)

        def both_running() -> dict[str, Any] | None:
            inv = node_call(c0.endpoint, "list")
            tasks = {t["job"]: t for t in inv["tasks"] if t["job"] in ids[:2] and t["state"] == "running"}
            return inv if len(tasks) == 2 else None

        inv = wait_until(both_running, 20, f"both sleeping jobs running on compute-0 {where}")
        old_tokens = {t["job"]: t["token"] for t in inv["tasks"] if t["job"] in ids[:2]}
        since = inv["next"]
        cluster.add_compute()
        cluster.wait_nodes(2, 2)

        c0.signal(signal.SIGSTOP)
        t_stop = time.monotonic()

        def moved() -> bool:
            return all(s.get("node") not in (None, c0.node_id) and s["attempts"] >= 2
                       for s in client.status(ids[:2]))

        wait_until(moved, 15, f"jobs moved off the stopped compute-0 {where}")
        if resume == "after-rerun-finished":
            wait_until(lambda: all(s["state"] == "succeeded" for s in client.status(ids[:2])), 20,
                       f"reruns finished {where}")
        c0.signal(signal.SIGCONT)

        recovery = None

        def all_done() -> bool:
            nonlocal recovery
            sts = client.status(ids)
            if recovery is None and all(s["state"] == "succeeded" for s in sts[:2]):
                recovery = time.monotonic() - t_stop
            return all(s["state"] in ("succeeded", "failed", "cancelled") for s in sts)

        wait_until(all_done, 60, f"all jobs done {where}", interval=0.1)
        total = time.monotonic() - t_stop

        # What compute-0 did with its old attempts once it woke up.
        late: dict[str, dict[str, Any]] = {}

        def late_results() -> bool:
            nonlocal since
            r = node_call(c0.endpoint, "poll", {"since": since, "timeout": 1.0})
            assert not r["resync"], f"compute-0 restarted? {where}"
            for _seq, kind, t in r["events"]:
                if kind == "task" and t["job"] in old_tokens and t["state"] == "done":
                    late[t["job"]] = t
            since = r["next"]
            return len(late) == len(old_tokens)

        wait_until(late_results, 30, f"compute-0 reports its old attempts done {where}")
        statuses = {s["job"]: s for s in client.status(ids)}
        stats = client.stats()
        outputs = {f"{jid}/stdout": client.get(f"{jid}/stdout") for jid in ids}
        copies = storage_copies(live_storage_endpoints(cluster))

    problems = [f"{where} logs: {log_problems(cluster)}"]
    for jid in ids:
        assert statuses[jid]["state"] == "succeeded", (statuses[jid], *problems)
    for jid, t in late.items():
        assert t["outcome"] == "failed-soft", (f"late attempt of {jid} (token {t['token']}) was not refused", t, *problems)
        # The refusal's code travels as the report's own field, not in the cause.
        assert t.get("code") in ("fenced", "immutable"), (t, *problems)
        assert statuses[jid]["attempts"] == 2, (statuses[jid], *problems)
    wrong = []
    for i, jid in enumerate(ids):
        name = f"{jid}/stdout"
        if outputs[name] != expected[i]:
            wrong.append(f"{name} via client: {outputs[name][:40]!r}")
        held = [(ep, objs[name]) for ep, objs in copies.items() if name in objs]
        assert len(held) == 1, (f"{name} is on {len(held)} storage nodes (replicas 1)", held, *problems)
        ep, info = held[0]
        assert info["state"] == "finished", (info, *problems)
        if info["data"] != expected[i]:
            wrong.append(f"{name} on {ep}: {info['data'][:40]!r}")
        if jid in old_tokens:
            assert info["token"] > old_tokens[jid], (f"{name} was written by the fenced attempt", info, *problems)
    assert not wrong, (wrong, *problems)
    # The late results were ignored: one accepted success per job.
    assert stats["succeeded"] == len(ids), (stats, *problems)
    assert stats["soft_failures"] >= len(old_tokens), (stats, *problems)
    report.add(KillRun(
        fault=f"compute SIGSTOP>{HEARTBEAT[1]}s, SIGCONT {resume}", seed=seed, jobs=len(ids), lost=0,
        rerun=stats["dispatched"] - len(ids), lineage=stats["lineage_reruns"], wrong=len(wrong),
        recovery=recovery, total=total,
        notes="; ".join(sorted({t.get("cause", "")[:80] for t in late.values()})),
    ))


def test_sigstopped_compute_cannot_write_late(make_cluster: Callable[..., LocalCluster], fault_report: FaultReport) -> None:
    run_sigstop(make_cluster, fault_report, seed=1, resume="while-rerun-runs")


@pytest.mark.faults
@pytest.mark.parametrize("resume", ["while-rerun-runs", "after-rerun-finished"])
@pytest.mark.parametrize("seed", [2, 3])
def test_sigstopped_compute_cannot_write_late_full(
    make_cluster: Callable[..., LocalCluster], fault_report: FaultReport, seed: int, resume: str
) -> None:
    run_sigstop(make_cluster, fault_report, seed=seed, resume=resume, full=True)


def test_overtaken_coordinator_acts_no_more(make_cluster: Callable[..., LocalCluster]) -> None:
    """Once a newer epoch reached the nodes, this coordinator changes nothing on them."""
    cluster = make_cluster(compute=1, storage=1, slots=2, coordinator_args=HEARTBEAT)
    compute, storage = cluster.computes[0], cluster.storages[0]
    with Client(cluster.endpoint, timeout=5.0, retry_for=30.0) as client:
        before = client.submit(["sh", "-c", "echo before"])
        assert before.result(timeout=30) == b"before\n"
        epoch = client.stats()["epoch"]
        # What a newer coordinator's first ping does to every node.
        for p in (compute, storage):
            assert node_call(p.endpoint, "ping", {"epoch": epoch + 1})["epoch"] == epoch + 1
        job = client.submit(["sh", "-c", "echo after"])
        log = cluster.data_dir / "logs" / "coordinator.log"
        wait_until(lambda: "a newer coordinator took over" in log.read_text(), 10, "the coordinator sees it is fenced")
        # A positive signal instead of a pause: the job sits ready to run (the
        # coordinator has it and would dispatch it now if it still did), and
        # the dispatch count stays where it was while it sits there.
        dispatched = client.stats()["dispatched"]
        wait_until(lambda: client.status([job])[0]["state"] == "runnable", 10, "the job waits, ready to run")
        assert client.stats()["dispatched"] == dispatched
        st = client.status([job])[0]
        tasks = node_call(compute.endpoint, "list")["tasks"]
        objects = node_call(storage.endpoint, "list", {"prefix": job.job})["objects"]
        assert st["state"] != "succeeded", st
        assert not [t for t in tasks if t["job"] == job.job], tasks
        assert not objects, objects
        # The earlier job's output is untouched.
        assert client.get(before) == b"before\n"
