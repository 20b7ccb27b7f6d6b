"""The chaos soak (marker `soak`): one run of the scenario, judged by several checks.

`soak_run` (session scope) starts a cluster of separate processes (a
coordinator with `--replicas 2`, 3 compute nodes of 2 slots, 3 storage
nodes, storage-2 on a small tmpfs), runs a seeded random DAG of
`WEFT_SOAK_JOBS` jobs (default 1000, the CI short mode; the full run is
10000) while tests/soak/chaos.py strikes six faults in turn, collects
everything the checks need, stops the cluster and hands back a `SoakResult`.
Each check in test_soak.py is then one assertion over that result, so one
failing check does not hide the others.

The terminal summary prints the per-fault table (no `-s` needed);
`WEFT_SOAK_REPORT=path` also writes its rows as JSON lines.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pytest
from faults.conftest import _table, log_errors, node_call, stop_cluster, storage_copies
from faults.dag import read_runlog

from weft.actors.client import Client
from weft.bus.errors import BusError
from weft.localcluster.cluster import LocalCluster

from .accounting import (
    EXEC_BEFORE,
    EXEC_SLACK,
    Window,
    attempt_verdicts,
    baseline_stall,
    executing_recovery,
    finish_gaps,
    longest_stall,
    rerun_verdicts,
)
from .chaos import REPAIR_TRACK, TMPFS_MIB_PER_1000_JOBS, Chaos, mount_tmpfs, unmount, watch
from .dag import SoakDag, make_soak_dag
from helpers import wait_for

SOAK_DIR = Path(__file__).resolve().parent
REPLICAS = 2
SLOTS = 2
# Pacing: the DAG's own work is about this long on 6 slots, so six faults
# (each a few seconds, with recovery between) all land mid-run.
TARGET_SECONDS = 75.0
# After the DAG is done, repair gets this long to bring every object back to
# its replica count (the goal: 30 s after a storage kill).
REPAIR_WAIT = 30.0


def soak_size() -> tuple[int, int]:
    n = int(os.environ.get("WEFT_SOAK_JOBS", "1000"))
    if n < 50:
        raise pytest.UsageError(f"WEFT_SOAK_JOBS={n}: the soak needs at least 50 jobs for six faults")
    seed = int(os.environ.get("WEFT_SOAK_SEED", str(random.randrange(1 << 30))))
    return n, seed


# -- the report ----------------------------------------------------------------------


@dataclass
class FaultRow:
    fault: str
    victim: str
    at: float | None  # seconds after the submit
    down: float | None  # strike -> end (restarted and ready, SIGCONT, space freed)
    in_flight: int  # jobs running at the strike (compute faults: on the victim), queued on a node included
    recovery: float | None  # strike -> every in-flight job succeeded
    stall: float | None  # longest interval with no job finishing, overlapping the fault
    reruns: int  # executions beyond the first, begun after this strike and before the next
    notes: str = ""
    executing: int = 0  # of the in-flight jobs, those whose execution had begun (run log; accounting.py)
    exec_recovery: float | None = None  # strike -> every executing job succeeded
    repaired: float | None = None  # storage kill: strike -> the coordinator counts 0 under-replicated again


@dataclass
class SoakResult:
    seed: int
    jobs: int
    callables: int
    wall: float  # submit -> every job terminal (or the deadline)
    done: bool
    lost: list[str] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)
    copies: int = 0  # finished copies of the DAG's outputs read from storage nodes
    under_replicated: list[str] = field(default_factory=list)
    extra_runs: int = 0
    needless: list[str] = field(default_factory=list)
    attempts_above: list[str] = field(default_factory=list)
    attempts_zero: list[str] = field(default_factory=list)
    attempt_notes: list[str] = field(default_factory=list)  # the first jobs above: their attempts
    pause_notes: list[str] = field(default_factory=list)  # a slow storage pause: its slowest jobs
    baseline_stall: float = 0.0
    faults: list[FaultRow] = field(default_factory=list)
    fault_errors: list[str] = field(default_factory=list)
    exited: list[str] = field(default_factory=list)  # daemons not alive at the end
    log_errors: list[str] = field(default_factory=list)
    skipped: str | None = None  # why the disk-full fault did not run
    stats: dict[str, Any] = field(default_factory=dict)

    def where(self) -> str:
        return f"[seed {self.seed}, {self.jobs} jobs; reproduce: WEFT_SOAK_SEED={self.seed} WEFT_SOAK_JOBS={self.jobs} python -m pytest -m soak tests/soak]"

    def fault_table(self) -> list[str]:
        head = ("fault", "victim", "at s", "down s", "in flight", "recovery s", "executing", "exec recovery s",
                "stall s", "reruns", "notes")
        f1 = lambda v: "-" if v is None else f"{v:.1f}"  # noqa: E731
        rows = [head, *((r.fault, r.victim, f1(r.at), f1(r.down), str(r.in_flight), f1(r.recovery), str(r.executing),
                         f1(r.exec_recovery), f1(r.stall), str(r.reruns), r.notes) for r in self.faults)]
        rows.append(("(no fault)", "-", "-", "-", "-", "-", "-", "-", f"{self.baseline_stall:.1f}", "-",
                     "longest stall outside every fault"))
        return _table(rows)

    def summary_table(self) -> list[str]:
        head = ("seed", "jobs (callables)", "wall s", "lost", "wrong bytes", "copies checked",
                "under-replicated", "extra runs (unexplained)", "attempts > runs", "attempts 0")
        return _table([head, (
            str(self.seed), f"{self.jobs} ({self.callables})", f"{self.wall:.0f}", str(len(self.lost)),
            str(len(self.wrong)), str(self.copies), str(len(self.under_replicated)),
            f"{self.extra_runs} ({len(self.needless)})", str(len(self.attempts_above)), str(len(self.attempts_zero)),
        )])


_RESULT = pytest.StashKey[SoakResult]()


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    r = config.stash.get(_RESULT, None)
    if r is None:
        return
    tr = terminalreporter
    tr.section("weft chaos soak")
    for line in (
        "at: strike, seconds after the submit; down: strike until the daemon was back and ready (SIGCONT, space"
        " freed); in flight: jobs running at the strike (compute faults: on the victim; tasks queued on a node"
        " count);",
        "recovery: strike until every in-flight job succeeded; executing: the in-flight jobs whose execution had"
        " begun from 5 s before it to 1.5 s after it (run log); exec recovery: strike until all of those succeeded;",
        "stall: longest interval with no job finishing, cluster-wide, that overlaps the fault (strike until its end"
        " or recovery); reruns: executions begun after the strike.",
    ):
        tr.write_line(line)
    for line in r.fault_table():
        tr.write_line(line)
    tr.write_line("")
    for line in r.summary_table():
        tr.write_line(line)
    if r.skipped:
        tr.write_line(f"disk full: not run: {r.skipped}")


def _write_report(r: SoakResult) -> None:
    path = os.environ.get("WEFT_SOAK_REPORT")
    if not path:
        return
    with open(path, "a") as f:
        for row in r.faults:
            f.write(json.dumps({"kind": "fault", "seed": r.seed, "jobs": r.jobs, **asdict(row)}) + "\n")
        summary = {k: (len(v) if isinstance(v, list) else v) for k, v in asdict(r).items() if k not in ("faults", "stats")}
        f.write(json.dumps({"kind": "summary", **summary}) + "\n")


# -- the run -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def soak_run(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> Iterator[SoakResult]:
    n, seed = soak_size()
    root = tmp_path_factory.mktemp("soak")
    cluster = LocalCluster(root / "cluster", compute=3, storage=3, slots=SLOTS, log_level="info",
                           coordinator_args=["--replicas", str(REPLICAS)], import_path=[SOAK_DIR])
    tmpfs = cluster.data_dir / "storage-2"
    skipped = mount_tmpfs(tmpfs, TMPFS_MIB_PER_1000_JOBS * max(1, -(-n // 1000)))
    try:
        cluster.start(timeout=60.0)
        try:
            result = _run(cluster, root / "executions.log", n, seed, None if skipped else tmpfs, skipped)
        finally:
            stop_cluster(cluster)
    finally:
        if not skipped:
            unmount(tmpfs)
    pytestconfig.stash[_RESULT] = result
    _write_report(result)
    yield result


def _attempt_lists(cluster: LocalCluster, jobs: list[str], t0: float) -> list[str]:
    """Each job's attempts as the coordinator keeps them (node, times after
    the submit, outcome, cause): which fault charged the attempt that never ran."""
    f1 = lambda v: "-" if v is None else f"{v - t0:.2f}"  # noqa: E731
    with Client(cluster.endpoint, timeout=5.0, retry_for=30.0) as client:
        views = client.status(jobs, attempts=True)
    return [f"  {v['job']} attempt {a.get('n')} on {a.get('node')} {f1(a.get('started'))}..{f1(a.get('ended'))}s: "
            f"{a.get('outcome')} {a.get('code') or ''} {a.get('detail') or ''}"
            for v in views for a in v.get("attempt_list") or ()]


def _run(cluster: LocalCluster, runlog: Path, n: int, seed: int, tmpfs: Path | None, skipped: str | None) -> SoakResult:
    # Mean job sleep 0.4 * max_sleep (80% of jobs sleep, uniformly): about
    # TARGET_SECONDS of sleeping on 3 x SLOTS slots, at most 1.5 s a job.
    max_sleep = min(1.5, TARGET_SECONDS * 3 * SLOTS / (0.4 * n))
    dag = make_soak_dag(seed, n, str(runlog), max_sleep)
    chaos = Chaos(cluster, tmpfs, skipped)
    deadline = time.time() + 180.0 + 0.3 * n  # every loop is bounded: 480 s for 1000 jobs
    with Client(cluster.endpoint, timeout=5.0, retry_for=90.0) as client:
        client.submit_specs(dag.specs)
        w = watch(client, chaos, dag.ids, deadline)
        _settle(cluster, client)
        r = SoakResult(seed=seed, jobs=n, callables=dag.kinds.count("callable"),
                       wall=(w.t_done or time.time()) - w.t_submit, done=w.t_done is not None, skipped=skipped)
        states = {s["job"]: s for s in w.final}
        r.lost, wrong_client = _client_reads(client, dag, states)
        r.stats = client.stats()
    r.under_replicated = _wait_replicas(cluster, dag, states)
    r.copies, wrong_copies = _check_copies(cluster, dag)
    r.wrong = wrong_client + wrong_copies

    runs = read_runlog(str(runlog))
    by_job = {dag.ids[i]: runs.get(dag.tag(i), []) for i in range(n)}
    windows = [Window(f.name, f.strike, f.end, compute=f.node is not None) for f in chaos.faults if f.strike is not None and f.end is not None]
    r.extra_runs, per_fault, r.needless = rerun_verdicts(by_job, w.seen_running, w.first_done, windows)
    attempts = {j: s.get("attempts", 0) for j, s in states.items() if s["state"] == "succeeded"}
    r.attempts_above, r.attempts_zero = attempt_verdicts(attempts, {j: len(t) for j, t in by_job.items()})
    if r.attempts_above:
        above = [j for j, a in attempts.items() if a > len(by_job.get(j, ()))]
        r.attempt_notes = _attempt_lists(cluster, above[:5], w.t_submit)

    gaps = finish_gaps([s["finished"] for s in w.final if s["state"] == "succeeded" and "finished" in s], w.t_submit)
    spans = []
    for f in chaos.faults:
        row = FaultRow(f.name, f.victim, None, None, len(f.in_flight), None, None,
                       per_fault.get(f.name, 0), "; ".join(f.notes))
        if f.strike is None:
            row.notes = "not struck: the DAG was done first"
            r.fault_errors.append(f"{f.name} never struck")
        else:
            end = f.end if f.end is not None else f.strike
            hi = max(end, f.recovered or end)
            spans.append((f.strike, hi))
            row.at, row.down = f.strike - w.t_submit, end - f.strike
            row.recovery = None if f.recovered is None else f.recovered - f.strike
            row.executing, row.exec_recovery = executing_recovery(f.in_flight, by_job, w.first_done, f.strike)
            row.stall = longest_stall(gaps, f.strike, hi)
        if f.error:
            r.fault_errors.append(f"{f.name}: {f.error}")
        if f.name == "storage kill" and f.strike is not None:
            row.repaired = None if f.repaired is None else f.repaired - f.strike
            repaired = (f"0 again {row.repaired:.1f}s after the strike" if row.repaired is not None
                        else f"not 0 again within {REPAIR_TRACK:.0f}s")
            row.notes = "; ".join(filter(None, [row.notes, f"under-replicated peak {f.under_peak}, {repaired}"]))
        if f.name == "storage pause" and row.exec_recovery is not None and row.exec_recovery > 4.0:
            # The slowest jobs it caught, with their attempts: what held them.
            caught = [j for j in f.in_flight
                      if any(f.strike - EXEC_BEFORE <= t <= f.strike + EXEC_SLACK for t in by_job.get(j, ()))]
            slow = sorted(caught, key=lambda j: -w.first_done.get(j, 0.0))[:3]
            r.pause_notes = [f"  {j}: runs at {[round(t - f.strike, 2) for t in by_job.get(j, ())]}s after the strike, "
                             f"done at {w.first_done.get(j, 0.0) - f.strike:.2f}s" for j in slow]
            r.pause_notes += _attempt_lists(cluster, slow, f.strike)
        if f.name == "disk full" and f.strike is not None:
            row.notes += f"; {_count_logged(cluster, '[no-space]')} writes refused [no-space]"
        r.faults.append(row)
    r.baseline_stall = baseline_stall(gaps, spans)
    r.exited = [f"{p.role} {p.node_id or ''} exited with {p.popen.poll()}" for p in cluster.procs if not p.alive()]
    r.log_errors = log_errors(cluster)
    return r


def _count_logged(cluster: LocalCluster, text: str) -> int:
    return sum(f.read_text(errors="replace").count(text) for f in (cluster.data_dir / "logs").glob("*.log"))


def _settle(cluster: LocalCluster, client: Client, timeout: float = 30.0) -> None:
    """Until the coordinator's ready nodes are the live ones: outputs are read
    through it, and right after a fault it may still point at a stopped node."""
    def ok() -> bool:
        live = {p.node_id for p in cluster.computes + cluster.storages if p.alive()}
        return {x["node"] for x in client.nodes() if x.get("ready")} == live

    try:
        wait_for(ok, timeout, "coordinator sees exactly the live nodes", interval=0.2)
    except AssertionError:
        pass  # the reads below say what is missing


def _client_reads(client: Client, dag: SoakDag, states: dict[str, dict[str, Any]]) -> tuple[list[str], list[str]]:
    lost, wrong = [], []
    for i, jid in enumerate(dag.ids):
        st = states.get(jid, {})
        if st.get("state") != "succeeded":
            lost.append(f"job {i} ({jid}, {dag.kinds[i]}) is {st.get('state')}: {st.get('cause')}")
            continue
        try:
            data = client.get(dag.outputs[i])
        except BusError as e:
            lost.append(f"output of job {i} ({dag.outputs[i]}) unreadable: {e}")
            continue
        if data != dag.expected[i]:
            wrong.append(f"job {i} ({dag.outputs[i]}) via the client: {len(data)} bytes {data[:34]!r},"
                         f" expected {len(dag.expected[i])} {dag.expected[i][:34]!r}")
    return lost, wrong


def _live_storages(cluster: LocalCluster) -> list[str]:
    return [p.endpoint for p in cluster.storages if p.alive() and p.endpoint]


def _wait_replicas(cluster: LocalCluster, dag: SoakDag, states: dict[str, dict[str, Any]]) -> list[str]:
    """Outputs of succeeded jobs with fewer than REPLICAS finished copies on
    the live storage nodes, once repair has had REPAIR_WAIT seconds."""
    wanted = {dag.outputs[i] for i, j in enumerate(dag.ids) if states.get(j, {}).get("state") == "succeeded"}
    short: list[str] = []
    deadline = time.monotonic() + REPAIR_WAIT
    while True:
        count: dict[str, int] = {}
        for ep in _live_storages(cluster):
            for info in node_call(ep, "list", {"prefix": ""})["objects"]:
                if info["state"] == "finished" and info["name"] in wanted:
                    count[info["name"]] = count.get(info["name"], 0) + 1
        short = sorted(f"{o}: {count.get(o, 0)} copies" for o in wanted if count.get(o, 0) < REPLICAS)
        if not short or time.monotonic() > deadline:
            return short
        time.sleep(1.0)


def _check_copies(cluster: LocalCluster, dag: SoakDag) -> tuple[int, list[str]]:
    """Every finished copy of every output on every live storage node, byte for byte."""
    expected = dict(zip(dag.outputs, dag.expected, strict=True))
    copies, wrong = 0, []
    for ep, objs in storage_copies(_live_storages(cluster), timeout=300.0).items():
        for name, info in objs.items():
            if name in expected and info["state"] == "finished":
                copies += 1
                if info["data"] != expected[name]:
                    wrong.append(f"copy of {name} on {ep}: {info['size']} bytes {info['data'][:34]!r},"
                                 f" expected {expected[name][:34]!r}")
    return copies, wrong
