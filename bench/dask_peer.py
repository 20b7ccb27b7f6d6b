"""Dask's side of `weft bench`: the same workloads on dask.distributed.

The shared cluster is `LocalCluster(n_workers=2, threads_per_worker=1,
processes=True)`: two worker processes of one thread, like weft's two compute
nodes of one slot. The task functions are the very ones weft runs
(`weft.bench.workloads`), submitted with `pure=False` so that every task is new.

What is measured, where it differs from weft's side:

    chain     `client.submit(noop, prev=<previous future>)` 500 times, then the
              last result.
    fanout    `client.submit(reduce_count, i0=f0, ..., i1999=f1999)`.
    commands  a task calling `subprocess.run(["true"])` (there are no command
              jobs in Dask).
    handoff   `client.submit(consume, <producer future>)`, placed by Dask's
              scheduler (which prefers the worker holding the input). Dask
              keeps results in worker memory; weft writes them to a storage
              node and reads them back from it.
    handoff-cross  each producer is pinned to one worker and its consumer to
              the other (`workers=`, `allow_other_workers=False`),
              alternating, so every pair crosses processes.
    submit    a scheduler with no workers, run as its own process (`python -m
              distributed.cli.dask_scheduler`), so that its RSS can be measured
              on its own like weft's coordinator: `client.map` of 100,000 tasks,
              timed until the scheduler holds all of them (polled with
              `run_on_scheduler`). weft's time is until the coordinator has
              acknowledged them, which it does only after its journal commit.
    memory    that scheduler process's RSS growth for those tasks, per task.
    startup   `LocalCluster(...)` plus a `Client` that has seen both workers.

Importing this module does not import Dask; `available()` says whether it is
installed.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from . import workloads as W
from .peerside import INSTALL_HINT, PeerSide, installed  # noqa: F401  (INSTALL_HINT: for the CLI)
from .workloads import WorkloadError, _remaining


def available() -> bool:
    return installed("dask", "distributed")


def _quiet() -> None:
    for name in ("distributed", "dask", "tornado", "bokeh"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _local_cluster(n_workers: int) -> Any:
    from distributed import LocalCluster

    return LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                        dashboard_address=None, silence_logs=logging.ERROR)


class DaskSide(PeerSide):
    name = "dask"

    def __init__(self, n_workers: int = 2) -> None:
        _quiet()
        self.n_workers = n_workers
        self.cluster: Any = None
        self.client: Any = None
        self.workers: list[str] = []
        self.notes: dict[str, str] = {}
        self.note_values: dict[str, list[str]] = {}

    # -- the shared cluster -----------------------------------------------------------
    def open(self, timeout: float = 60.0) -> None:
        from distributed import Client

        self.cluster = _local_cluster(self.n_workers)
        self.client = Client(self.cluster, timeout=f"{timeout}s")
        self.client.wait_for_workers(self.n_workers, timeout=timeout)
        self.workers = sorted(self.client.scheduler_info()["workers"])
        # Every worker imports the task functions before anything is timed.
        self.client.run(_import_workloads)

    def close(self) -> None:
        try:
            if self.client is not None:
                self.client.close(timeout=10)
        finally:
            self.client = None
            if self.cluster is not None:
                try:
                    self.cluster.close(timeout=20)
                finally:
                    self.cluster = None

    def _gather(self, futures: list[Any], deadline: float, what: str) -> list[Any]:
        from distributed import wait

        try:
            wait(futures, timeout=_remaining(deadline, what))
        except TimeoutError:
            left = sum(not f.done() for f in futures)
            raise WorkloadError(f"{what}: {left} of {len(futures)} tasks unfinished after the deadline") from None
        bad = [f for f in futures if f.status != "finished"]
        if bad:
            raise WorkloadError(f"{what}: task {bad[0].key} {bad[0].status}: {bad[0].exception()!r}")
        return self.client.gather(futures)

    def _throughput(self, n: int, tag: str, deadline: float) -> float:
        t0 = time.perf_counter()
        futures = self.client.map(W.noop, [f"{tag}-{i}" for i in range(n)], pure=False)
        self._gather(futures, deadline, f"{n} no-op tasks")
        return n / (time.perf_counter() - t0)

    def _chain(self, n: int, tag: str, deadline: float) -> float:
        c = self.client
        t0 = time.perf_counter()
        f = c.submit(W.noop, x=tag, pure=False)
        for _ in range(n - 1):
            f = c.submit(W.noop, prev=f, pure=False)
        self._gather([f], deadline, f"a chain of {n}")
        return (time.perf_counter() - t0) / n * 1000.0

    def _fanout(self, n: int, tag: str, deadline: float) -> float:
        c = self.client
        t0 = time.perf_counter()
        futures = c.map(W.noop, [f"{tag}-{i}" for i in range(n)], pure=False)
        reducer = c.submit(W.reduce_count, pure=False, **{f"i{i}": f for i, f in enumerate(futures)})
        got = self._gather([reducer], deadline, f"a fan-out of {n}")[0]
        elapsed = time.perf_counter() - t0
        if got != str(n).encode():
            raise WorkloadError(f"the reducer counted {got!r} inputs, expected {n}")
        return elapsed

    def _commands(self, n: int, tag: str, deadline: float) -> float:
        t0 = time.perf_counter()
        futures = self.client.map(W.run_true, [f"{tag}-{i}" for i in range(n)], pure=False)
        self._gather(futures, deadline, f"{n} `true` commands")
        return n / (time.perf_counter() - t0)

    def _handoff(self, pairs: int, size: int, tag: str, deadline: float) -> float:
        c = self.client
        t0 = time.perf_counter()
        consumers = []
        for i in range(pairs):
            p = c.submit(W.make_bytes, size, f"{tag}-{i}", pure=False)
            consumers.append(c.submit(W.consume, p, pure=False))
            del p  # only the consumers hold the producers' results
        results = self._gather(consumers, deadline, f"{pairs} producer/consumer pairs")
        elapsed = time.perf_counter() - t0
        W.check_lengths(results, size)
        self.notes["handoff"] = "pairs whose producer and consumer ran on different workers (placed by Dask)"
        self.note_values.setdefault("handoff", []).append(f"{W.cross_node_pairs(results)}/{pairs}")
        return pairs * size / elapsed / 1e6

    def _handoff_cross(self, pairs: int, size: int, tag: str, deadline: float) -> float:
        c = self.client
        a, b = self.workers[0], self.workers[-1]
        t0 = time.perf_counter()
        consumers = []
        for i in range(pairs):
            src, dst = (a, b) if i % 2 == 0 else (b, a)
            p = c.submit(W.make_bytes, size, f"{tag}-{i}", pure=False, workers=[src], allow_other_workers=False)
            consumers.append(c.submit(W.consume, p, pure=False, workers=[dst], allow_other_workers=False))
            del p
        results = self._gather(consumers, deadline, f"{pairs} pinned producer/consumer pairs")
        elapsed = time.perf_counter() - t0
        W.check_lengths(results, size)
        self.notes["handoff-cross"] = "pairs whose producer and consumer ran on different workers (pinned)"
        self.note_values.setdefault("handoff-cross", []).append(f"{W.cross_node_pairs(results)}/{pairs}")
        return pairs * size / elapsed / 1e6

    # -- submit + memory ----------------------------------------------------------------
    def queue(self, n: int, tag: str, timeout: float) -> dict[str, float]:
        import psutil
        from distributed import Client

        deadline = time.monotonic() + timeout
        with tempfile.TemporaryDirectory(prefix="weft-bench-dask-") as tmp:
            sched_file = Path(tmp) / "scheduler.json"
            log = open(Path(tmp) / "scheduler.log", "wb")
            root = str(Path(__file__).resolve().parent.parent)
            env = dict(os.environ)
            env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
            proc = subprocess.Popen(
                [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0",
                 "--no-dashboard", "--scheduler-file", str(sched_file), "--idle-timeout", "300s"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
            )
            try:
                while not sched_file.exists() or not sched_file.stat().st_size:
                    if proc.poll() is not None:
                        raise WorkloadError(f"the Dask scheduler exited with code {proc.returncode}")
                    _remaining(deadline, "starting the Dask scheduler")
                    time.sleep(0.05)
                time.sleep(0.1)  # the file is written in one go, but be sure it is complete
                scheduler = psutil.Process(proc.pid)
                with Client(scheduler_file=str(sched_file), timeout="30s") as c:
                    warm = c.map(W.noop, [f"{tag}-warm-{i}" for i in range(W.QUEUE_WARMUP)], pure=False)
                    self._until_held(c, W.QUEUE_WARMUP, deadline)
                    before = scheduler.memory_info().rss
                    t0 = time.perf_counter()
                    futures = c.map(W.noop, [f"{tag}-{i}" for i in range(n)], pure=False)
                    self._until_held(c, W.QUEUE_WARMUP + n, deadline)
                    elapsed = time.perf_counter() - t0
                    after = scheduler.memory_info().rss
                    c.cancel(futures + warm)
            finally:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
                log.close()
        return {"submit": n / elapsed, "memory": (after - before) / 1024 / n}

    @staticmethod
    def _until_held(c: Any, n: int, deadline: float) -> None:
        while True:
            held = c.run_on_scheduler(W.scheduler_task_count)
            if held >= n:
                return
            if time.monotonic() > deadline:
                raise WorkloadError(f"the Dask scheduler holds {held} of {n} tasks after the deadline")
            time.sleep(0.02)

    # -- startup ------------------------------------------------------------------------
    def startup(self, timeout: float) -> float:
        from distributed import Client

        t0 = time.perf_counter()
        cluster = _local_cluster(self.n_workers)
        try:
            with Client(cluster, timeout=f"{timeout}s") as c:
                c.wait_for_workers(self.n_workers, timeout=timeout)
                c.submit(W.noop, "startup", pure=False).result(timeout=timeout)
                elapsed = time.perf_counter() - t0
        finally:
            cluster.close(timeout=20)
        return elapsed


def _import_workloads() -> bool:
    import weft.bench.workloads  # noqa: F401

    return True
