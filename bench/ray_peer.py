"""Ray's side of `weft bench`: the same workloads on a local Ray.

The shared cluster is `ray.init(num_cpus=<weft's slots>)` (2): one node, two
CPUs, each task asking for one, like weft's two compute nodes of one slot.
No dashboard, Ray's logs at ERROR and none forwarded to the driver. The task
functions are the very ones weft and Dask run (`weft.bench.workloads`), made
remote with `ray.remote(fn)`; Ray pickles them by reference, so the workers
import them as weft's do. Every `.remote()` call is a new task (Ray has no
cache of results), so the tags only keep the inputs alike across systems.

What is measured, where it differs from weft's side:

    chain          `noop.remote(prev=<previous ObjectRef>)` 500 times, then
                   `ray.get` of the last: Ray resolves the reference on the
                   worker, as weft's following does.
    fanout         `reduce_count.remote(i0=r0, ..., i1999=r1999)`.
    commands       a task calling `subprocess.run(["true"])`, as for Dask.
    handoff        `consume.remote(make_bytes.remote(size))`: the 10 MiB value
                   stays in the node's shared-memory object store and the
                   consumer reads it from there (one node: no transfer).
    handoff-cross  a second local cluster of two Ray nodes of one CPU each
                   (`ray.cluster_utils.Cluster`: two raylets, two object
                   stores), producers and consumers pinned to different nodes
                   with `NodeAffinitySchedulingStrategy(soft=False)`, so every
                   value crosses between object stores. Custom resources on
                   one node would only pin worker processes that share one
                   object store, which is not a crossing.
    submit         `ray.init(num_cpus=0)` in a fresh driver process: nothing
                   can run; the time for 100,000 `.remote()` calls to return. Ray's submission is
                   local: the driver owns its tasks and asks the raylet for
                   worker leases, so "accepted" means held by the driver, not
                   by a central scheduler as for weft and Dask.
    memory         for the same reason, the driver process's RSS growth for
                   tasks, per task (its list of ObjectRefs included). A fresh
                   process each run: one that had held and freed 100,000
                   tasks reuses that memory (measured: 6.0, 0.81, 0.38 KiB
                   per task in three runs in one process).
    startup        `ray.init(num_cpus=2)` until the first task's result is back.

Importing this module does not import Ray; `available()` says whether it is
installed.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from . import workloads as W
from .peerside import INSTALL_HINT, PeerSide, installed  # noqa: F401  (INSTALL_HINT: for the CLI)
from .workloads import WorkloadError, _remaining


def available() -> bool:
    return installed("ray")


def _env() -> None:
    # Quiet, local and self-contained: no usage stats prompt, no dashboard
    # deps probed, nothing forwarded from the workers' logs.
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    for name in ("ray", "ray.worker", "ray._private"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _init(num_cpus: int, **kw: Any) -> None:
    import ray

    ray.init(num_cpus=num_cpus, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False,
             configure_logging=True, **kw)


def node_of(mark: str) -> str:
    """The Ray node in a `ray-<node>-pid-<pid>` mark (workloads._node_mark)."""
    return mark.split("-pid-")[0]


def cross_pairs(results: list[Any], *, by_node: bool) -> int:
    """Pairs whose producer and consumer ran on different Ray nodes (by_node)
    or in different worker processes."""
    n = 0
    for r in results:
        parts = (r.decode() if isinstance(r, bytes) else str(r)).split()
        if len(parts) != 3:
            continue
        a, b = (node_of(parts[1]), node_of(parts[2])) if by_node else (parts[1], parts[2])
        n += a != b
    return n


class RaySide(PeerSide):
    name = "ray"

    def __init__(self, num_cpus: int = 2) -> None:
        _env()
        self.num_cpus = num_cpus
        self.up = False
        self.two_nodes: Any = None  # ray.cluster_utils.Cluster, for handoff-cross
        self.node_ids: list[str] = []
        self.fns: dict[str, Any] = {}
        self.notes: dict[str, str] = {}
        self.note_values: dict[str, list[str]] = {}

    # -- the shared cluster -----------------------------------------------------------
    def _remote(self) -> None:
        import ray

        self.fns = {name: ray.remote(getattr(W, name))
                    for name in ("noop", "reduce_count", "make_bytes", "consume", "run_true")}

    def open(self, timeout: float = 60.0) -> None:
        import ray

        _init(self.num_cpus)
        self.up = True
        self._remote()
        # Start both workers and import the task functions in them before
        # anything is timed (two tasks that each hold a CPU for a moment).
        warm = ray.remote(_warm)
        ray.get([warm.remote(0.2) for _ in range(self.num_cpus)], timeout=timeout)

    def close(self) -> None:
        import ray

        try:
            if self.up:
                ray.shutdown()
        finally:
            self.up = False
            if self.two_nodes is not None:
                try:
                    self.two_nodes.shutdown()
                finally:
                    self.two_nodes = None
                    self.node_ids = []

    def _get(self, refs: list[Any], deadline: float, what: str) -> list[Any]:
        import ray
        from ray.exceptions import GetTimeoutError, RayError

        try:
            return ray.get(refs, timeout=_remaining(deadline, what))
        except GetTimeoutError:
            ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
            raise WorkloadError(f"{what}: {len(refs) - len(ready)} of {len(refs)} tasks unfinished "
                                "after the deadline") from None
        except RayError as e:
            raise WorkloadError(f"{what}: {' '.join(str(e).split())[:300]}") from None

    def _throughput(self, n: int, tag: str, deadline: float) -> float:
        noop = self.fns["noop"]
        t0 = time.perf_counter()
        refs = [noop.remote(f"{tag}-{i}") for i in range(n)]
        self._get(refs, deadline, f"{n} no-op tasks")
        return n / (time.perf_counter() - t0)

    def _chain(self, n: int, tag: str, deadline: float) -> float:
        noop = self.fns["noop"]
        t0 = time.perf_counter()
        r = noop.remote(x=tag)
        for _ in range(n - 1):
            r = noop.remote(prev=r)
        self._get([r], deadline, f"a chain of {n}")
        return (time.perf_counter() - t0) / n * 1000.0

    def _fanout(self, n: int, tag: str, deadline: float) -> float:
        noop, reduce_count = self.fns["noop"], self.fns["reduce_count"]
        t0 = time.perf_counter()
        refs = [noop.remote(f"{tag}-{i}") for i in range(n)]
        reducer = reduce_count.remote(**{f"i{i}": r for i, r in enumerate(refs)})
        got = self._get([reducer], deadline, f"a fan-out of {n}")[0]
        elapsed = time.perf_counter() - t0
        if got != str(n).encode():
            raise WorkloadError(f"the reducer counted {got!r} inputs, expected {n}")
        return elapsed

    def _commands(self, n: int, tag: str, deadline: float) -> float:
        run_true = self.fns["run_true"]
        t0 = time.perf_counter()
        refs = [run_true.remote(f"{tag}-{i}") for i in range(n)]
        self._get(refs, deadline, f"{n} `true` commands")
        return n / (time.perf_counter() - t0)

    def _handoff(self, pairs: int, size: int, tag: str, deadline: float) -> float:
        make_bytes, consume = self.fns["make_bytes"], self.fns["consume"]
        t0 = time.perf_counter()
        consumers = [consume.remote(make_bytes.remote(size, f"{tag}-{i}")) for i in range(pairs)]
        results = self._get(consumers, deadline, f"{pairs} producer/consumer pairs")
        elapsed = time.perf_counter() - t0
        W.check_lengths(results, size)
        self.notes["handoff"] = ("one node, one shared-memory object store: pairs whose producer and consumer "
                                 "ran in different worker processes")
        self.note_values.setdefault("handoff", []).append(f"{cross_pairs(results, by_node=False)}/{pairs}")
        return pairs * size / elapsed / 1e6

    def _two_nodes(self, deadline: float) -> list[str]:
        """Replace the one-node Ray with two local nodes of one CPU each."""
        import ray
        from ray.cluster_utils import Cluster

        if self.two_nodes is not None:
            return self.node_ids
        if self.up:
            ray.shutdown()
            self.up = False
        half = max(1, self.num_cpus // 2)
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": half, "include_dashboard": False})
        self.two_nodes = cluster
        cluster.add_node(num_cpus=half)
        ray.init(address=cluster.address, logging_level=logging.ERROR, log_to_driver=False, configure_logging=True)
        self.up = True
        cluster.wait_for_nodes(timeout=_remaining(deadline, "starting two Ray nodes"))
        self._remote()
        self.node_ids = sorted(n["NodeID"] for n in ray.nodes() if n.get("Alive"))
        if len(self.node_ids) != 2:
            raise WorkloadError(f"a local Ray cluster of two nodes came up with {len(self.node_ids)}")
        warm = ray.remote(_warm)
        self._get([warm.options(scheduling_strategy=self._on(n)).remote(0.2) for n in self.node_ids],
                  deadline, "warming two Ray nodes")
        return self.node_ids

    @staticmethod
    def _on(node_id: str) -> Any:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        return NodeAffinitySchedulingStrategy(node_id, soft=False)

    def _handoff_cross(self, pairs: int, size: int, tag: str, deadline: float) -> float:
        a, b = self._two_nodes(deadline)
        make_bytes, consume = self.fns["make_bytes"], self.fns["consume"]
        t0 = time.perf_counter()
        consumers = []
        for i in range(pairs):
            src, dst = (a, b) if i % 2 == 0 else (b, a)
            p = make_bytes.options(scheduling_strategy=self._on(src)).remote(size, f"{tag}-{i}")
            consumers.append(consume.options(scheduling_strategy=self._on(dst)).remote(p))
            del p
        results = self._get(consumers, deadline, f"{pairs} producer/consumer pairs on two Ray nodes")
        elapsed = time.perf_counter() - t0
        W.check_lengths(results, size)
        crossed = cross_pairs(results, by_node=True)
        if crossed != pairs:
            raise WorkloadError(f"only {crossed} of {pairs} pinned pairs ran on different Ray nodes")
        self.notes["handoff-cross"] = ("two local Ray nodes (two object stores), every pair pinned across "
                                       "them (NodeAffinitySchedulingStrategy): pairs that crossed")
        self.note_values.setdefault("handoff-cross", []).append(f"{crossed}/{pairs}")
        return pairs * size / elapsed / 1e6

    # -- submit + memory ----------------------------------------------------------------
    def queue(self, n: int, tag: str, timeout: float) -> dict[str, float]:
        """In a fresh driver process each time: the driver holds the tasks, and
        a process that already held (and freed) them would reuse that memory."""
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_queue_child, args=(n, tag, child), daemon=True)
        proc.start()
        child.close()
        try:
            if not parent.poll(timeout):
                raise WorkloadError(f"submitting {n} tasks: out of time")
            got = parent.recv()
        except EOFError:
            raise WorkloadError(f"the Ray driver process exited with code {proc.exitcode}") from None
        finally:
            proc.join(30)
            if proc.is_alive():
                proc.kill()
                proc.join(5)
        if "error" in got:
            raise WorkloadError(got["error"])
        self.notes["submit"] = ("Ray: .remote() calls returned, in a fresh driver process with "
                                "ray.init(num_cpus=0) (the driver owns its tasks; nothing central holds them)")
        self.notes["memory"] = "Ray: that driver process's RSS growth (the owner of its tasks)"
        return got

    # -- startup ------------------------------------------------------------------------
    def startup(self, timeout: float) -> float:
        import ray

        t0 = time.perf_counter()
        _init(self.num_cpus)
        try:
            ray.get(ray.remote(W.noop).remote("startup"), timeout=timeout)
            elapsed = time.perf_counter() - t0
        finally:
            ray.shutdown()
        return elapsed


def _queue_child(n: int, tag: str, conn: Any) -> None:
    """RaySide.queue's driver: submit `n` tasks nothing can run; send the figures."""
    import psutil
    import ray

    _env()
    try:
        _init(0)
        noop = ray.remote(W.noop)
        driver = psutil.Process()
        warm = [noop.remote(f"{tag}-warm-{i}") for i in range(W.QUEUE_WARMUP)]
        before = driver.memory_info().rss
        t0 = time.perf_counter()
        refs = [noop.remote(f"{tag}-{i}") for i in range(n)]
        elapsed = time.perf_counter() - t0
        after = driver.memory_info().rss
        if len(refs) + len(warm) != n + W.QUEUE_WARMUP:
            raise WorkloadError(f"submitted {n} tasks, got {len(refs)} references")
        conn.send({"submit": n / elapsed, "memory": (after - before) / 1024 / n})
    except Exception as e:
        conn.send({"error": " ".join(str(e).split())[:300] or type(e).__name__})
    finally:
        conn.close()
        ray.shutdown()


def _warm(seconds: float) -> bool:
    import weft.bench.workloads  # noqa: F401

    time.sleep(seconds)
    return True
