"""kill -9 one role while a random DAG runs; every job must still succeed, byte-correct.

Each run: a cluster of subprocesses (coordinator, 2 compute nodes of 2 slots,
2 storage nodes, short timeouts: `--heartbeat-timeout 2 --storage-grace 2`),
a seeded random DAG (tests/faults/dag.py), a seeded random moment 0.2-2 s
after the submit, then SIGKILL of:

* `compute`: compute-0; seeded, it stays dead (half the runs), or comes back
  on its data dir, on its old endpoint (adopting the tasks its task log says
  finished) or on a new one, 0-3 s later;
* `storage-r1`: storage-0 with one replica per output; it comes back on its
  data dir 0.5-4 s later (before or after the 2 s grace period, so lineage
  reruns happen in some runs and not in others);
* `storage-r2`: storage-0 with `--replicas 2`; it never comes back: the other
  replica must be enough;
* `coordinator`: restarted 0-1 s later on its data dir and endpoint; the
  client rides it out by retrying.

Then: every job succeeded, every output reads back (through the client)
exactly as computed in Python, and every copy of every output on every live
storage node is right too; no job ran again that the fault did not
interrupt (`needless_reruns`), and recovery and kill->done stayed within the
bounds of `RECOVERY_BOUND` and `DONE_BOUND` (docs/reliability.md cites them).

Fast subset (runs in CI): one seeded run of each kind on a 60-job DAG.
Full suite: `pytest -m faults` (200-job DAGs; 20 compute runs, 5 of each
storage kind, 10 coordinator runs) prints the table at the end.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from weft.actors.client import Client
from weft.bus.errors import BusError
from weft.localcluster.cluster import LocalCluster

from .conftest import (
    FaultReport,
    KillRun,
    kill,
    live_storage_endpoints,
    log_errors,
    log_problems,
    storage_copies,
    stuck_report,
    wait_until,
)
from .dag import Dag, make_dag, read_runlog

BASE_ARGS = ["--heartbeat-timeout", "2", "--storage-grace", "2"]
FAST_JOBS = 40
FULL_JOBS = 200
TERMINAL = ("succeeded", "failed", "cancelled")

FAULTS: dict[str, list[str]] = {
    "compute": BASE_ARGS,
    "storage-r1": BASE_ARGS,
    "storage-r2": [*BASE_ARGS, "--replicas", "2"],
    "coordinator": BASE_ARGS,
}
FULL_RUNS = {"compute": 20, "storage-r1": 5, "storage-r2": 5, "coordinator": 10}

# Bounds, in seconds from the kill, per fault. They are about 3-5x the worst run
# measured on the 2-core machine (docs/reliability.md: recovery max compute
# 4.5, storage-r1 6.2, storage-r2 6.4, coordinator 4.0; kill->done max 15.6
# with 200 jobs), so a loaded machine passes and a recovery several times
# slower than designed (a call timeout waited out, a missed loss) does not.
# recovery: every job the fault interrupted has succeeded again. It includes
# the 2 s heartbeat timeout, the restart delay (storage-r1: up to 4 s) and
# the interrupted jobs' own run time.
RECOVERY_BOUND = {"compute": 15.0, "storage-r1": 20.0, "storage-r2": 20.0, "coordinator": 15.0}
# kill->done: the whole DAG (at most 200 jobs of up to 0.1 s) has finished
# (measured max: compute 6.0, storage-r1 6.2, storage-r2 15.6, coordinator 6.0).
DONE_BOUND = {"compute": 30.0, "storage-r1": 30.0, "storage-r2": 45.0, "coordinator": 30.0}
# A job may run again only if the fault interrupted it: its first execution
# began before the kill, or before the cluster could know of the loss (the
# 2 s heartbeat timeout, compute-0 restarting up to 3 s later on its old
# endpoint and taking dispatches that were sent to the dead one, slack).
RERUN_WINDOW = 8.0
MAX_EXECUTIONS = 3  # per job: one, a rerun for the fault, one more for a lost output


def repro(fault: str, seed: int, n: int) -> str:
    if n == FAST_JOBS:
        return f"pytest tests/faults/test_kills.py -k 'test_kill_fast and {fault}]'"
    return f"pytest -m faults tests/faults/test_kills.py -k 'test_kill_full and {fault}-{seed}]'"


class Injector:
    """Kills the role; restarts it (if the run says so) from a thread, so the
    recovery clock keeps running while it does."""

    def __init__(self, cluster: LocalCluster, fault: str, rng: random.Random) -> None:
        self.cluster = cluster
        self.fault = fault
        self.rng = rng
        self.notes: list[str] = []
        self.error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def victim_node(self) -> str | None:
        """The node whose running jobs the fault interrupts (None: all running jobs)."""
        return self.cluster.computes[0].node_id if self.fault == "compute" else None

    def strike(self) -> None:
        c, rng = self.cluster, self.rng
        if self.fault == "compute":
            victim = c.computes[0]
            kill(victim)
            mode = rng.choice(["stays dead", "stays dead", "same endpoint", "new endpoint"])
            delay = rng.uniform(0.0, 3.0)
            self.notes.append(f"compute-0 {mode}" + ("" if mode == "stays dead" else f" after {delay:.1f}s"))
            if mode != "stays dead":
                args = ["--listen", victim.endpoint] if mode == "same endpoint" else []
                self._later(delay, lambda: self._restart_compute(args))
        elif self.fault.startswith("storage"):
            victim = c.storages[0]
            kill(victim)
            if self.fault == "storage-r1":
                same = rng.random() < 0.5
                delay = rng.uniform(0.5, 4.0)
                self.notes.append(f"storage-0 back after {delay:.1f}s on {'its old' if same else 'a new'} endpoint")
                self._later(delay, lambda: self._restart_storage(victim.endpoint if same else None))
            else:
                self.notes.append("storage-0 stays dead")
        elif self.fault == "coordinator":
            kill(c.coordinator)
            delay = rng.uniform(0.0, 1.0)
            time.sleep(delay)
            c.start_coordinator()
            self.notes.append(f"coordinator back after {delay:.1f}s")
        else:
            raise ValueError(self.fault)

    def _later(self, delay: float, fn: Callable[[], Any]) -> None:
        def run() -> None:
            try:
                time.sleep(delay)
                fn()
            except BaseException as e:  # surfaced by join()
                self.error = e

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def _restart_compute(self, args: list[str]) -> None:
        c = self.cluster
        saved, c.compute_args = c.compute_args, args
        try:
            c.add_compute(index=0)
        finally:
            c.compute_args = saved

    def _restart_storage(self, endpoint: str | None) -> None:
        # add_storage has no --listen; its node args end with the coordinator
        # endpoint, so a --listen appended by hand is the last word.
        c = self.cluster
        if endpoint is None:
            c.add_storage(index=0)
            return
        from weft.localcluster.cluster import Proc

        args = ["storage", "--data-dir", str(c.data_dir / "storage-0"), "--node-id", "storage-0",
                "--no-beacon", "--coordinator", c.endpoint, "--listen", endpoint]
        p = Proc("storage", args, c.data_dir / "logs" / "storage-0.log", c.env)
        p.wait_ready(20)
        c.storages[0] = p

    def join(self, timeout: float = 30.0) -> None:
        if self._thread is not None:
            self._thread.join(timeout)
        if self.error is not None:
            raise self.error


def check_outputs(client: Client, cluster: LocalCluster, dag: Dag, states: dict[str, str]) -> tuple[list[str], list[str], list[str]]:
    """(lost, wrong, notes): lost = jobs not succeeded or outputs unreadable."""
    lost, wrong, notes = [], [], []
    expected = {dag.output(i): dag.expected[i] for i in range(len(dag))}
    for i, jid in enumerate(dag.ids):
        if states.get(jid) != "succeeded":
            lost.append(f"job {i} ({jid}) is {states.get(jid)}")
            continue
        try:
            data = client.get(dag.output(i))
        except BusError as e:
            lost.append(f"output of job {i} ({jid}) unreadable: {e}")
            continue
        if data != dag.expected[i]:
            wrong.append(f"job {i} ({jid}) via client: {len(data)} bytes {data[:40]!r}, expected {len(dag.expected[i])} {dag.expected[i][:40]!r}")
    leftovers = 0
    for ep, objs in storage_copies(live_storage_endpoints(cluster)).items():
        for name, info in objs.items():
            if name not in expected:
                continue
            if info["state"] != "finished":
                leftovers += 1
                continue
            if info["data"] != expected[name]:
                wrong.append(f"copy of {name} on {ep}: {info['size']} bytes {info['data'][:40]!r}, expected {expected[name][:40]!r}")
    if leftovers:
        notes.append(f"{leftovers} unfinished leftover objects")
    return lost, wrong, notes


def needless_reruns(dag: Dag, runlog: str, done_before: set[str], spared: set[str], t_kill: float,
                    lineage: int) -> tuple[int, list[str]]:
    """(executions beyond one per job, the reruns the fault does not explain).

    `t_kill` is wall-clock (the jobs stamp their starts with `date`). A job
    that had succeeded before the kill runs again only to remake an output
    lost with its storage node: the coordinator counts those (`lineage`).
    `spared`: jobs running at the kill where the fault did not strike (on
    the other compute node): they run once.
    """
    runs = read_runlog(runlog)
    extra, bad, remade = 0, [], 0
    for i, jid in enumerate(dag.ids):
        starts = runs.get(f"{dag.seed}-{i}", [])
        if not starts:
            bad.append(f"job {i} ({jid}) never ran")
            continue
        again = len(starts) - 1
        extra += again
        if not again:
            continue
        late = starts[0] - t_kill
        if len(starts) > MAX_EXECUTIONS:
            bad.append(f"job {i} ({jid}) ran {len(starts)} times")
        if jid in done_before:
            remade += again
        elif jid in spared:
            bad.append(f"job {i} ({jid}) was running on a node the fault spared and ran {len(starts)} times")
        elif late > RERUN_WINDOW:
            bad.append(f"job {i} ({jid}) first ran {late:.1f}s after the kill and ran {len(starts)} times")
    if remade > lineage:
        bad.append(f"{remade} runs of jobs that had succeeded before the kill, {lineage} lineage reruns")
    return extra, bad


def settle(cluster: LocalCluster, client: Client, timeout: float = 30.0) -> None:
    """Until the coordinator's ready nodes are exactly the live ones.

    Outputs are read through the coordinator (`locate`): right after its
    restart it knows no storage node yet, and right after a storage node
    died it still points at it until the heartbeat timeout.
    """
    def ok() -> bool:
        live = {p.node_id for p in cluster.computes + cluster.storages if p.alive()}
        ready = {n["node"] for n in client.nodes() if n.get("ready")}
        return ready == live

    wait_until(ok, timeout, "coordinator sees exactly the live nodes")


def run_kill(make_cluster: Callable[..., LocalCluster], report: FaultReport, fault: str, seed: int, n: int) -> None:
    cluster = make_cluster(compute=2, storage=2, slots=2, coordinator_args=FAULTS[fault])
    runlog = cluster.data_dir / "executions.log"
    dag = make_dag(seed, n, runlog=str(runlog))
    rng = random.Random(f"{fault}-{seed}")
    budget = 120.0 if n <= FAST_JOBS else 300.0
    where = f"[fault {fault}, seed {seed}, {n} jobs; reproduce: {repro(fault, seed, n)}]"
    injector = Injector(cluster, fault, rng)
    with Client(cluster.endpoint, timeout=5.0, retry_for=60.0) as client:
        client.submit_specs(dag.specs)
        # The kill lands at a seeded moment 0.2-2 s after the submit, or
        # earlier once a seeded 20-60% of the jobs are done: always mid-run.
        delay, fraction = rng.uniform(0.2, 2.0), rng.uniform(0.2, 0.6)
        t_submit = time.monotonic()
        while True:
            sts = client.status(dag.ids)
            if (time.monotonic() - t_submit >= delay
                    or sum(s["state"] == "succeeded" for s in sts) >= fraction * n):
                break
            time.sleep(0.02)
        victim = injector.victim_node()
        running = [s for s in sts if s["state"] == "running"]
        interrupted = {s["job"] for s in running if victim is None or s.get("node") == victim}
        done_before = {s["job"] for s in sts if s["state"] == "succeeded"}
        spared = {s["job"] for s in running if victim is not None and s.get("node") != victim}
        t_kill, t_kill_wall = time.monotonic(), time.time()
        injector.strike()

        recovery = None
        deadline = t_kill + budget
        states: dict[str, str] = {}
        while True:
            states = {s["job"]: s["state"] for s in client.status(dag.ids)}
            now = time.monotonic()
            if recovery is None and all(states[j] == "succeeded" for j in interrupted):
                recovery = now - t_kill
            if all(s in TERMINAL for s in states.values()):
                break
            if now > deadline:
                counts: dict[str, int] = {}
                for s in states.values():
                    counts[s] = counts.get(s, 0) + 1
                stuck = [s["job"] for s in client.status(dag.ids) if s["state"] not in TERMINAL][:5]
                raise AssertionError(
                    f"jobs not done {budget:g}s after the kill: {counts} {where}; "
                    f"notes: {injector.notes}; stats: {client.stats()}; logs: {log_problems(cluster)}\n"
                    f"stuck: {stuck_report(cluster, client, stuck)}"
                )
            time.sleep(0.1)
        total = time.monotonic() - t_kill
        injector.join()
        settle(cluster, client)
        after = client.stats()
        lost, wrong, notes = check_outputs(client, cluster, dag, states)
        # Why each lost job failed, for the message (not counted again).
        causes = [f"{s['job']}: {s.get('cause')}" for s in client.status(dag.ids) if s["state"] == "failed"]
    # Reruns: executions beyond one per job, counted by the jobs themselves
    # (the coordinator's counters restart with it). A job that finished in
    # an earlier run of the coordinator and was adopted is not run again.
    rerun, needless = needless_reruns(dag, str(runlog), done_before, spared, t_kill_wall, after["lineage_reruns"])
    row = KillRun(
        fault=fault, seed=seed, jobs=n, lost=len(lost), rerun=rerun,
        lineage=after["lineage_reruns"], wrong=len(wrong), recovery=recovery, total=total,
        notes="; ".join(injector.notes + notes),
    )
    report.add(row)
    errors = log_errors(cluster)
    assert not lost and not wrong and not errors, (
        f"{len(lost)} lost, {len(wrong)} wrong, {len(errors)} errors logged {where}; notes: {row.notes}\n"
        + "\n".join((lost + wrong)[:10] + causes[:5] + errors[:10]) + f"\nstats: {after}\nlogs: {log_problems(cluster)}"
    )
    assert not needless, f"reruns the fault does not explain {where}; notes: {row.notes}\n" + "\n".join(needless[:10])
    assert recovery is not None and recovery <= RECOVERY_BOUND[fault], (
        f"recovery {recovery}s, bound {RECOVERY_BOUND[fault]:g}s {where}; notes: {row.notes}")
    assert total <= DONE_BOUND[fault], f"kill->done {total:.1f}s, bound {DONE_BOUND[fault]:g}s {where}; notes: {row.notes}"


@pytest.mark.parametrize("fault", list(FAULTS))
def test_kill_fast(make_cluster: Callable[..., LocalCluster], fault_report: FaultReport, fault: str) -> None:
    run_kill(make_cluster, fault_report, fault, seed=1, n=FAST_JOBS)


@pytest.mark.faults
@pytest.mark.parametrize(
    "fault,seed",
    [pytest.param(f, s, id=f"{f}-{s}") for f, runs in FULL_RUNS.items() for s in range(100, 100 + runs)],
)
def test_kill_full(make_cluster: Callable[..., LocalCluster], fault_report: FaultReport, fault: str, seed: int) -> None:
    run_kill(make_cluster, fault_report, fault, seed=seed, n=FULL_JOBS)


def test_get_reads_another_replica_when_one_storage_node_died(make_cluster: Callable[..., LocalCluster]) -> None:
    cluster = make_cluster(compute=1, storage=2, slots=2, coordinator_args=["--replicas", "2"])
    with Client(cluster.endpoint, timeout=5.0, retry_for=10.0) as client:
        job = client.submit(["sh", "-c", "echo replicated"])
        assert job.result(timeout=30) == b"replicated\n"
        name = job.key
        wait_until(lambda: all(name in objs and objs[name]["state"] == "finished"
                               for objs in storage_copies(live_storage_endpoints(cluster), prefix=job.job).values()),
                   10, "both replicas finished")
        where = client.locate(name)["storage"]
        victim = next(p for p in cluster.storages if p.endpoint == where)
        kill(victim)
        # The other replica holds the bytes, whether or not the 2 s heartbeat
        # has declared the dead node lost yet.
        assert client.get(name) == b"replicated\n"


def test_compute_death_is_seen_when_a_storage_node_has_its_id(make_cluster: Callable[..., LocalCluster]) -> None:
    """A compute node sharing its node id with a live storage node dies: its
    job is requeued (not failed, not left running) and succeeds on another."""
    from weft.localcluster.cluster import Proc

    cluster = make_cluster(compute=0, storage=1, slots=1, coordinator_args=["--heartbeat-timeout", "2"])
    twin = cluster.storages[0].node_id
    d = cluster.data_dir
    compute = Proc("compute", ["compute", "--data-dir", str(d / "compute-twin"), "--node-id", twin, "--no-beacon",
                               "--coordinator", cluster.endpoint, "--slots", "1"], d / "logs" / "compute-twin.log",
                   cluster.env)
    compute.wait_ready(20)
    # The first execution leaves a mark and hangs; the rerun finds the mark and prints.
    mark = d / "twin-ran"
    script = f"if [ -e {mark} ]; then echo twin-rerun-ok; else touch {mark}; sleep 30; fi"
    with Client(cluster.endpoint, timeout=5.0, retry_for=10.0) as client:
        job = client.submit(["sh", "-c", script])
        wait_until(lambda: client.status([job])[0]["state"] == "running" and mark.exists(), 20, "job running")
        kill(compute)
        # Lost after the 2 s heartbeat timeout: the job goes back to the queue
        # (no compute node is left to take it, so it stays there).
        st = wait_until(lambda: (s := client.status([job])[0])["state"] != "running" and s, 10,
                        "the dead node's job leaves `running`")
        assert st["state"] == "waiting" or st["state"] == "runnable", st
        assert "node" not in st or st["node"] != twin, st
        assert not compute.alive()
        cluster.add_compute()
        st = client.wait([job], timeout=30)[0]
        assert st["state"] == "succeeded", st
        assert st["attempts"] == 2, st
        assert client.get(job) == b"twin-rerun-ok\n"


def test_storage_back_within_grace_costs_no_rerun(make_cluster: Callable[..., LocalCluster]) -> None:
    cluster = make_cluster(compute=1, storage=1, slots=2,
                           coordinator_args=["--heartbeat-timeout", "2", "--storage-grace", "3"])
    with Client(cluster.endpoint, timeout=5.0, retry_for=30.0) as client:
        a = client.submit(["sh", "-c", "echo made-once"])
        assert a.result(timeout=30) == b"made-once\n"
        kill(cluster.storages[0])
        wait_until(lambda: not [n for n in client.nodes() if n["role"] == "storage"], 10, "storage declared lost")
        # Something needs the object now; the node comes back well within the grace period.
        b = client.submit(["sh", "-c", "cat $WEFT_INPUTS/a"], a=a)
        cluster.add_storage(index=0)
        st = client.wait([b], timeout=40)[0]
        assert st["state"] == "succeeded", st
        assert client.get(b) == b"made-once\n"
        assert client.stats()["lineage_reruns"] == 0


def test_lost_storage_node_is_remade_by_lineage(make_cluster: Callable[..., LocalCluster]) -> None:
    """A storage node that never comes back: past the grace period, the
    producers of what is still needed run again, recursively."""
    cluster = make_cluster(compute=1, storage=1, slots=2,
                           coordinator_args=["--heartbeat-timeout", "2", "--storage-grace", "1"])
    with Client(cluster.endpoint, timeout=5.0, retry_for=30.0) as client:
        a = client.submit(["sh", "-c", "echo lineage-a"])
        b = client.submit(["sh", "-c", "tr a-z A-Z < $WEFT_INPUTS/a"], a=a)
        assert b.result(timeout=30) == b"LINEAGE-A\n"
        # Both outputs live only on storage-0; a second node takes over.
        cluster.add_storage()
        wait_until(lambda: len([n for n in client.nodes() if n["role"] == "storage"]) == 2, 10, "second storage")
        kill(cluster.storages[0])
        wait_until(lambda: len([n for n in client.nodes() if n["role"] == "storage"]) == 1, 10, "storage-0 lost")
        c = client.submit(["sh", "-c", "rev < $WEFT_INPUTS/b"], b=b)
        st = client.wait([c], timeout=60)[0]
        assert st["state"] == "succeeded", st
        assert client.get(c) == b"A-EGAENIL\n"
        # b needed a, which was lost too: both ran again, once each.
        assert client.stats()["lineage_reruns"] == 2
        assert client.get(a) == b"lineage-a\n" and client.get(b) == b"LINEAGE-A\n"


def test_needless_reruns_are_told_from_those_the_fault_caused(tmp_path) -> None:
    """The rerun bound of run_kill, on a hand-written run log (no cluster):
    no real fault has been seen to rerun a job needlessly, so this is where
    the check itself is shown to fail."""
    dag = make_dag(5, 5, runlog=str(tmp_path / "unused"))
    log = tmp_path / "runs.log"
    kill = 1000.0

    def check(lines: list[tuple[int, float]], done_before: set[int] = frozenset(), spared: set[int] = frozenset(),
              lineage: int = 0) -> tuple[int, list[str]]:
        log.write_text("".join(f"5-{i} {t}\n" for i, t in lines))
        return needless_reruns(dag, str(log), {dag.ids[i] for i in done_before}, {dag.ids[i] for i in spared},
                               kill, lineage)

    once = [(i, kill - 5 + i) for i in range(5)]
    assert check(once) == (0, [])
    # Job 4 was running at the kill and ran again: the fault's doing.
    assert check([*once, (4, kill + 3)]) == (1, [])
    # Job 0 had succeeded before the kill: only a lineage rerun may repeat it.
    extra, bad = check([*once, (0, kill + 3)], done_before={0})
    assert extra == 1 and len(bad) == 1 and "succeeded before the kill" in bad[0]
    assert check([*once, (0, kill + 3)], done_before={0}, lineage=1) == (1, [])
    # Job 3 was running on the node the fault spared.
    assert "spared" in check([*once, (3, kill + 1)], spared={3})[1][0]
    # Job 2 first ran long after the kill, then again.
    late = [*once[:2], (2, kill + RERUN_WINDOW + 5), (2, kill + RERUN_WINDOW + 9), *once[3:]]
    assert "after the kill" in check(late)[1][0]
    # Too many runs, and a job that never ran.
    assert "ran 4 times" in check([*once, (4, kill + 1), (4, kill + 2), (4, kill + 3)])[1][0]
    assert "never ran" in check(once[:4])[1][0]
