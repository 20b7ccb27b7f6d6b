"""The `weft bench` workloads: what each one measures, its sizes, and weft's side.

Task functions
    `noop`, `reduce_count`, `make_bytes`, `consume` and `run_true` are run by the
    workers of *both* systems: weft imports them as `weft.bench.workloads:<name>`,
    Dask pickles them by reference. So this module imports only the standard
    library when it is loaded; weft's client and cluster are imported inside
    `WeftSide`.

Workloads (full size; `--smoke` sizes in `SIZES["smoke"]`)
    throughput  5,000 independent no-op callables submitted at once, until all
                have finished: tasks/s.
    chain       500 no-op callables, each reading the previous one's output,
                submitted at once: total time / 500, ms per hop.
    roundtrip   the transport's floor, for `chain`: one raw pyzmq DEALER ->
                ROUTER round trip of a small msgpack map over tcp://127.0.0.1
                to another process (bench/bus_pingpong.py), mean of 5,000
                after a warm-up; system `pyzmq`, measured before any cluster.
    fanout      2,000 independent no-op callables and one reducer that reads
                all 2,000 outputs (inputs i0..i1999): seconds to the reducer's
                result.
    commands    1,000 command jobs running `true` (weft: a command job with the
                default `stdout` output; Dask: a task calling
                subprocess.run(["true"])): jobs/s.
    handoff     100 producer/consumer pairs; the producer returns 10 MiB, the
                consumer reads it and returns its length: MB/s, where MB is
                10**6 bytes and the bytes are pairs x size over the wall time
                from submit to the last consumer.
    submit      100,000 jobs submitted while no compute node has a free slot
                (weft: a cluster with 0 compute nodes; Dask: a scheduler with
                0 workers): jobs accepted per second.
    memory      the coordinator's (Dask: the scheduler's) RSS growth for those
                100,000 queued jobs: KiB per job.
    responsive  the p99 latency (ms) of `stats` calls made back to back while
                100,000 jobs are submitted (bench/responsive.py, which also
                runs alone: `python -m weft.bench.responsive`); weft only.
    dispatch    one coordinator dispatching 20,000 no-op jobs to 100
                simulated compute nodes of 4 slots that answer at once
                (bench/dispatch.py): jobs/s; weft only.
    startup     a cluster of 2 compute nodes (1 slot each) and 2 storage nodes
                from nothing to its first task's result, a no-op callable
                (Dask: LocalCluster(n_workers=2, threads_per_worker=1,
                processes=True), a Client that sees both workers, and a
                no-op's result; Ray: ray.init and a no-op's result): seconds.

Every run gets a `tag` that is unique per bench run and per repetition, and
every job carries it (directly or through its inputs), so weft's build cache
(same spec = same job id = cached result) never turns a repetition into a
no-op. Every measurement takes a deadline: a stuck run raises WorkloadError
instead of hanging.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MiB = 1 << 20

# -- the workloads ------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    name: str
    unit: str
    better: str  # "higher" or "lower"
    what: str


WORKLOADS: dict[str, Workload] = {w.name: w for w in [
    Workload("throughput", "tasks/s", "higher", "independent no-op callables, all submitted at once"),
    Workload("chain", "ms/hop", "lower", "no-op callables, each reading the previous one's output"),
    Workload("roundtrip", "ms", "lower", "one raw pyzmq DEALER/ROUTER round trip (system pyzmq; next to chain)"),
    Workload("fanout", "s", "lower", "independent callables and one reducer reading all their outputs"),
    Workload("commands", "jobs/s", "higher", "command jobs running `true`"),
    Workload("handoff", "MB/s", "higher", "producer/consumer pairs, placed as each system likes"),
    Workload("handoff-cross", "MB/s", "higher", "producer/consumer pairs pinned to different nodes"),
    Workload("submit", "jobs/s", "higher", "jobs accepted while no compute slot is free"),
    Workload("memory", "KiB/job", "lower", "coordinator (scheduler) RSS growth per queued job"),
    Workload("startup", "s", "lower", "a 2 compute + 2 storage cluster from nothing to a first task's result"),
    Workload("responsive", "ms", "lower", "p99 of `stats` calls during a 100,000-job submit (weft only)"),
    Workload("dispatch", "jobs/s", "higher", "one coordinator starting jobs on 100 simulated compute nodes (weft only)"),
]}
# Measured by weft only (bench/responsive.py, bench/dispatch.py): the peers show n/a.
WEFT_ONLY = ("responsive", "dispatch")
# Measured on the transport alone, once per bench run, before any cluster
# starts: the system is `pyzmq`, and the table prints it next to `chain`.
TRANSPORT = ("roundtrip",)
TRANSPORT_SYSTEM = "pyzmq"

# Run on the shared 2 x 1-slot cluster, one after another.
CLUSTER_WORKLOADS = ("throughput", "chain", "fanout", "commands", "handoff", "handoff-cross")
# Measured together, on a cluster of their own where nothing can run.
QUEUE_WORKLOADS = ("submit", "memory")

SIZES: dict[str, dict[str, dict[str, int]]] = {
    "full": {
        "throughput": {"n": 5000},
        "chain": {"n": 500},
        "roundtrip": {"n": 5000},
        "fanout": {"n": 2000},
        "commands": {"n": 1000},
        "handoff": {"pairs": 100, "size": 10 * MiB},
        "handoff-cross": {"pairs": 100, "size": 10 * MiB},
        "queue": {"n": 100_000},
        "startup": {},
        "responsive": {"n": 100_000},
        "dispatch": {"n": 20_000, "nodes": 100, "slots": 4},
    },
    "smoke": {
        "throughput": {"n": 500},
        "chain": {"n": 50},
        "roundtrip": {"n": 500},
        "fanout": {"n": 200},
        "commands": {"n": 100},
        "handoff": {"pairs": 10, "size": 1 * MiB},
        "handoff-cross": {"pairs": 10, "size": 1 * MiB},
        "queue": {"n": 10_000},
        "startup": {},
        "responsive": {"n": 10_000},
        "dispatch": {"n": 2_000, "nodes": 100, "slots": 4},
    },
}

# Seconds one run of a workload may take before it fails (the queue and startup
# entries cover one measurement of submit+memory, one start).
TIMEOUTS: dict[str, dict[str, float]] = {
    "full": {"throughput": 300, "chain": 300, "roundtrip": 60, "fanout": 300, "commands": 300,
             "handoff": 300, "handoff-cross": 300, "queue": 300, "startup": 60, "responsive": 300,
             "dispatch": 300},
    "smoke": {"throughput": 30, "chain": 30, "roundtrip": 30, "fanout": 30, "commands": 30,
              "handoff": 30, "handoff-cross": 60, "queue": 30, "startup": 30, "responsive": 60,
              "dispatch": 60},
}

# Queued before the memory baseline is taken, so that first-use allocations
# (code paths, journal, connection buffers) are not charged to the measured jobs.
QUEUE_WARMUP = 200


class WorkloadError(Exception):
    """One run of a workload failed or did not finish in time."""


class NotMeasured(Exception):
    """A system cannot run this workload yet (shown n/a with the reason, not a failure)."""


# -- task functions (run by the workers of both systems) ------------------------------


def noop(*args: Any, **kwargs: Any) -> bytes:
    return b""


def reduce_count(*args: Any, **kwargs: Any) -> bytes:
    """How many inputs it was given (positional for Dask, named for weft)."""
    return str(len(args) + len(kwargs)).encode()


_BLOCK: bytes | None = None


def _block() -> bytes:
    global _BLOCK
    if _BLOCK is None:
        _BLOCK = random.Random(0x5EED).randbytes(MiB)
    return _BLOCK


MARK = 64  # bytes at the start of a `make_bytes` payload naming the node that made it


def _node_mark() -> str:
    """Which node runs this task: Ray's node and worker process, Dask's worker
    address, or for weft the compute node process (the parent of its warm
    worker processes)."""
    if "ray" in sys.modules:
        try:
            import ray

            if ray.is_initialized():
                return f"ray-{ray.get_runtime_context().get_node_id()[:16]}-pid-{os.getpid()}"
        except Exception:
            pass
    if "distributed" in sys.modules:
        try:
            from distributed import get_worker

            return get_worker().address
        except (ImportError, ValueError):
            pass
    return f"weft-compute-pid-{os.getppid()}"


def make_bytes(nbytes: str | bytes | int = MiB, x: Any = None) -> bytes:
    """`nbytes` bytes of incompressible data; the first 64 name the node that made them.

    Not `size`: weft's `Client.spec` may take `size` as a placement keyword
    (the scheduling work), so an input of that name would not reach us.

    A random 1 MiB block repeated (neither system compresses by default, and
    repeats 1 MiB apart are beyond any fast compressor's window anyway).
    `x` only makes the job unique.
    """
    n = int(nbytes)
    mark = _node_mark().encode()[:MARK].ljust(MARK)
    if n <= MARK:
        return mark[:n]
    # One copy of the value, as a producer that has its bytes would make:
    # the pieces are views of the block, joined once (repeating, slicing and
    # prepending it took four copies of 10 MiB, a fifth of a handoff's CPU
    # on every system).
    block = memoryview(_block())
    size = len(block)
    parts: list[Any] = [mark]
    at = MARK
    while at < n:  # n / 1 MiB + 1 pieces at most
        start = at % size
        end = min(size, start + n - at)
        parts.append(block[start:end])
        at += end - start
    return b"".join(parts)


def consume(data: bytes | str) -> str:
    """`<length> <producer node> <consumer node>`."""
    if isinstance(data, str):
        data = data.encode()
    producer = bytes(data[:MARK]).decode(errors="replace").strip() if len(data) >= MARK else "?"
    return f"{len(data)} {producer or '?'} {_node_mark()}"


def handoff_specs(c: Any, pairs: int, size: int, tag: str, nodes: list[str] | None = None) -> list[Any]:
    """Producer, consumer, producer, ... specs of `pairs` handoffs of `size`
    bytes; with two `nodes`, pair i's producer pinned to one and its
    consumer to the other, alternating (handoff-cross)."""
    from weft.actors.client import ObjectRef

    specs = []
    for i in range(pairs):
        src, dst = (nodes[i % 2], nodes[1 - i % 2]) if nodes else (None, None)
        p = c.spec("weft.bench.workloads:make_bytes", nbytes=str(size), x=f"{tag}-{i}", node=src)
        specs += [p, c.spec("weft.bench.workloads:consume", data=ObjectRef(f"{p.job_id()}/result"), node=dst)]
    return specs


def run_true(*args: Any, **kwargs: Any) -> int:
    return subprocess.run(["true"], check=True).returncode


def scheduler_task_count(dask_scheduler: Any = None) -> int:
    """For Dask's `Client.run_on_scheduler`: how many tasks the scheduler holds."""
    return len(dask_scheduler.tasks)


def cross_node_pairs(results: list[bytes | str]) -> int:
    """How many `consume` results name different producer and consumer nodes."""
    n = 0
    for r in results:
        parts = (r.decode() if isinstance(r, bytes) else str(r)).split()
        if len(parts) == 3 and parts[1] != parts[2]:
            n += 1
    return n


def check_lengths(results: list[bytes | str], size: int) -> None:
    for r in results:
        text = r.decode() if isinstance(r, bytes) else str(r)
        if not text.split() or text.split()[0] != str(size):
            raise WorkloadError(f"a consumer read {text.split()[0] if text.split() else 'nothing'} bytes, expected {size}")


# -- weft's side ----------------------------------------------------------------------


def can_pin(client: Any) -> bool:
    """Whether this weft's client can pin a job to a compute node (`spec(..., node=)`)."""
    import inspect

    try:
        return "node" in inspect.signature(client.spec).parameters
    except (TypeError, ValueError):
        return False


def value_cache_counts(cluster: Any) -> tuple[int, int]:
    """(values consumers took from their own compute node's memory, bytes
    compute nodes served to consumers on other nodes) so far, over the
    cluster's compute nodes; (0, 0) where nodes keep no value cache."""
    import trio

    from weft.bus.peers import connect

    async def ask() -> tuple[int, int]:
        hits = lent = 0
        for proc in cluster.computes:
            with trio.move_on_after(10):
                async with connect(proc.endpoint, "bench") as peer:
                    view = (await peer.call("info")).get("value_cache") or {}
                    hits += view.get("hits", 0)
                    lent += view.get("lent", 0)
        return hits, lent

    return trio.run(ask)


def _remaining(deadline: float, what: str) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise WorkloadError(f"{what}: out of time")
    return left


class WeftSide:
    """weft's measurements. `open()` starts the shared cluster for CLUSTER_WORKLOADS;
    `queue()` and `startup()` start clusters of their own. Every cluster lives in
    a fresh temporary directory and is stopped before its method returns."""

    name = "weft"

    def __init__(self, *, compute: int = 2, storage: int = 2, slots: int = 1) -> None:
        self.compute = compute
        self.storage = storage
        self.slots = slots
        self.cluster: Any = None
        self.client: Any = None
        self._tmp: tempfile.TemporaryDirectory | None = None
        # Per workload: what a note says, and its value for each run.
        self.notes: dict[str, str] = {}
        self.note_values: dict[str, list[str]] = {}

    # -- clusters ---------------------------------------------------------------------
    @staticmethod
    def _new_cluster(root: Path, **kw: Any) -> Any:
        from weft.localcluster.cluster import LocalCluster

        return LocalCluster(root, **kw)

    @staticmethod
    def stop_cluster(cluster: Any) -> None:
        """Stop it even if a second Ctrl-C arrives while stopping."""
        if cluster is None:
            return
        try:
            cluster.stop(grace=5.0)
        except BaseException:
            import signal

            for p in cluster.procs:
                p.signal(signal.SIGKILL)
            raise

    def open(self, timeout: float = 60.0) -> None:
        from weft.actors.client import Client

        self._tmp = tempfile.TemporaryDirectory(prefix="weft-bench-")
        self.cluster = self._new_cluster(Path(self._tmp.name), compute=self.compute,
                                         storage=self.storage, slots=self.slots)
        self.cluster.start(timeout)
        self.client = Client(self.cluster.endpoint, timeout=10.0, retry_for=10.0)
        # Every warm worker imports this module before anything is timed.
        warm = self.client.map("weft.bench.workloads:consume", [f"warm-{os.getpid()}-{time.time()}-{i}" for i in range(8)],
                               key="data")
        self._wait_ok(warm, time.monotonic() + timeout, "warm-up")

    def close(self) -> None:
        try:
            if self.client is not None:
                self.client.close()
        finally:
            self.client = None
            try:
                self.stop_cluster(self.cluster)
            finally:
                self.cluster = None
                if self._tmp is not None:
                    self._tmp.cleanup()
                    self._tmp = None

    def reset(self) -> None:
        """After a failed run: a fresh cluster, so nothing stuck carries over."""
        self.close()
        self.open()

    # -- helpers ----------------------------------------------------------------------
    def _wait_ok(self, futures: list[Any], deadline: float, what: str) -> None:
        try:
            statuses = self.client.wait(futures, timeout=_remaining(deadline, what))
        except TimeoutError as e:
            raise WorkloadError(f"{what}: {e}") from None
        for st in statuses:
            final = st.get("final", st)
            if final["state"] != "succeeded":
                raise WorkloadError(f"{what}: job {st['job']} {final['state']}: "
                                    f"{final.get('cause') or final.get('outcome')}")

    def _result(self, future: Any, deadline: float, what: str) -> bytes:
        from weft.actors.client import JobFailed

        try:
            return future.result(timeout=_remaining(deadline, what))
        except TimeoutError as e:
            raise WorkloadError(f"{what}: {e}") from None
        except JobFailed as e:
            raise WorkloadError(f"{what}: {e}") from None

    # -- the shared-cluster workloads -------------------------------------------------
    def run(self, workload: str, params: dict[str, int], tag: str, timeout: float) -> float:
        deadline = time.monotonic() + timeout
        return getattr(self, f"_{workload.replace('-', '_')}")(tag=tag, deadline=deadline, **params)

    def _throughput(self, n: int, tag: str, deadline: float) -> float:
        t0 = time.perf_counter()
        futures = self.client.map("weft.bench.workloads:noop", [f"{tag}-{i}" for i in range(n)], key="x")
        self._wait_ok(futures, deadline, f"{n} no-op jobs")
        return n / (time.perf_counter() - t0)

    def _chain(self, n: int, tag: str, deadline: float) -> float:
        from weft.actors.client import ObjectRef

        c = self.client
        t0 = time.perf_counter()
        # Built locally (a job id is the hash of its spec), so the whole chain is
        # one submit and weft resolves the dependencies.
        specs = [c.spec("weft.bench.workloads:noop", x=tag)]
        for _ in range(n - 1):
            specs.append(c.spec("weft.bench.workloads:noop", prev=ObjectRef(f"{specs[-1].job_id()}/result")))
        futures = c.submit_specs(specs, batch=len(specs))
        self._result(futures[-1], deadline, f"a chain of {n}")
        return (time.perf_counter() - t0) / n * 1000.0

    def _fanout(self, n: int, tag: str, deadline: float) -> float:
        from weft.actors.client import ObjectRef

        c = self.client
        t0 = time.perf_counter()
        specs = [c.spec("weft.bench.workloads:noop", x=f"{tag}-{i}") for i in range(n)]
        refs = {f"i{i}": ObjectRef(f"{s.job_id()}/result") for i, s in enumerate(specs)}
        specs.append(c.spec("weft.bench.workloads:reduce_count", **refs))
        futures = c.submit_specs(specs, batch=len(specs))
        got = self._result(futures[-1], deadline, f"a fan-out of {n}")
        elapsed = time.perf_counter() - t0
        if got != str(n).encode():
            raise WorkloadError(f"the reducer counted {got!r} inputs, expected {n}")
        return elapsed

    def _commands(self, n: int, tag: str, deadline: float) -> float:
        c = self.client
        t0 = time.perf_counter()
        futures = c.submit_specs([c.spec(["true"], x=f"{tag}-{i}") for i in range(n)])
        self._wait_ok(futures, deadline, f"{n} `true` commands")
        return n / (time.perf_counter() - t0)

    def _handoff(self, pairs: int, size: int, tag: str, deadline: float) -> float:
        c = self.client
        followed_before = c.stats().get("followed", 0)
        cached_before = value_cache_counts(self.cluster)
        t0 = time.perf_counter()
        specs = handoff_specs(c, pairs, size, tag)
        futures = c.submit_specs(specs, batch=len(specs))
        consumers = futures[1::2]
        self._wait_ok(consumers, deadline, f"{pairs} producer/consumer pairs")
        elapsed = time.perf_counter() - t0
        results = [self._result(f, deadline, "reading a consumer's result") for f in consumers]
        check_lengths(results, size)
        followed = c.stats().get("followed", 0) - followed_before
        hits, lent = (b - a for a, b in zip(cached_before, value_cache_counts(self.cluster), strict=True))
        self.notes["handoff"] = (
            "every producer's bytes are stored on a storage node (another process); a consumer takes them "
            "from its compute node's memory if it runs where they were made (\"local\": its value cache, or "
            "it followed its producer), else from the producing node's memory (\"remote\") or from storage. "
            "Pairs whose producer and consumer ran on different compute nodes (placed as weft likes; "
            "\"cross\"), consumers that followed, local and remote reads")
        self.note_values.setdefault("handoff", []).append(
            f"{cross_node_pairs(results)} cross, {followed} followed, {hits} local, "
            f"{round(lent / size)} remote of {pairs}")
        return pairs * size / elapsed / 1e6

    def _handoff_cross(self, pairs: int, size: int, tag: str, deadline: float) -> float:
        c = self.client
        if not can_pin(c):
            raise NotMeasured("not measured: needs node pinning (a `node=` pin in job specs)")
        if self.compute < 2:
            raise NotMeasured("not measured: needs two compute nodes")
        nodes = [self.cluster.node_name("compute", i) for i in range(2)]
        cached_before = value_cache_counts(self.cluster)
        t0 = time.perf_counter()
        specs = handoff_specs(c, pairs, size, tag, nodes)
        futures = c.submit_specs(specs, batch=len(specs))
        consumers = futures[1::2]
        self._wait_ok(consumers, deadline, f"{pairs} pinned producer/consumer pairs")
        elapsed = time.perf_counter() - t0
        results = [self._result(f, deadline, "reading a consumer's result") for f in consumers]
        check_lengths(results, size)
        crossed = cross_node_pairs(results)
        if crossed != pairs:
            raise WorkloadError(f"only {crossed} of {pairs} pinned pairs ran on different compute nodes")
        _hits, lent = (b - a for a, b in zip(cached_before, value_cache_counts(self.cluster), strict=True))
        self.notes["handoff-cross"] = ("pairs pinned to different compute nodes (`node=`) that crossed, and "
                                       "consumers that read the value from the producing node's memory")
        self.note_values.setdefault("handoff-cross", []).append(f"{crossed}/{pairs}, {round(lent / size)} remote")
        return pairs * size / elapsed / 1e6

    # -- submit + memory ----------------------------------------------------------------
    def queue(self, n: int, tag: str, timeout: float) -> dict[str, float]:
        """Submit `n` jobs to a cluster with no compute node: accepted/s and the
        coordinator's RSS growth per job (KiB)."""
        import psutil

        from weft.actors.client import Client

        deadline = time.monotonic() + timeout
        with tempfile.TemporaryDirectory(prefix="weft-bench-queue-") as tmp:
            cluster = self._new_cluster(Path(tmp), compute=0, storage=self.storage)
            try:
                cluster.start(min(60.0, _remaining(deadline, "starting the cluster")))
                coordinator = psutil.Process(cluster.coordinator.pid)
                with Client(cluster.endpoint, timeout=10.0, retry_for=10.0) as c:
                    c.map("weft.bench.workloads:noop", [f"{tag}-warm-{i}" for i in range(QUEUE_WARMUP)], key="x")
                    before = coordinator.memory_info().rss
                    items = [f"{tag}-{i}" for i in range(n)]
                    t0 = time.perf_counter()
                    futures = c.map("weft.bench.workloads:noop", items, key="x")
                    elapsed = time.perf_counter() - t0
                    after = coordinator.memory_info().rss
                    _remaining(deadline, f"submitting {n} jobs")
                    if len(futures) != n or any(f.cached for f in futures[:10]):
                        raise WorkloadError(f"submitted {n} jobs, the coordinator accepted {len(futures)} as new")
            finally:
                self.stop_cluster(cluster)
        return {"submit": n / elapsed, "memory": (after - before) / 1024 / n}

    # -- responsive ---------------------------------------------------------------------
    def responsive(self, n: int, tag: str, timeout: float) -> float:
        """p99 of `stats` latency (ms) during an `n`-job submit."""
        from .responsive import measure

        try:
            r = measure(n, timeout=timeout, tag=tag)
        except RuntimeError as e:
            raise WorkloadError(str(e)) from None
        self.notes["responsive"] = "stats p50 ms"
        self.note_values.setdefault("responsive", []).append(f"{r['stats_p50_ms']:.1f}")
        return r["stats_p99_ms"]

    # -- dispatch -----------------------------------------------------------------------
    def dispatch(self, n: int, nodes: int, slots: int, tag: str, timeout: float) -> float:
        """Jobs/s one coordinator dispatches to simulated compute nodes."""
        from .dispatch import measure

        try:
            r = measure(n, nodes=nodes, slots=slots, timeout=timeout, tag=tag)
        except RuntimeError as e:
            raise WorkloadError(str(e)) from None
        self.notes["dispatch"] = (f"{n:,} jobs to {nodes} simulated nodes x {slots} slots: seconds, "
                                  "and the coordinator's CPU per job")
        self.note_values.setdefault("dispatch", []).append(
            f"{r['seconds']:.2f} s {r['coordinator_cpu_us_per_job']:.0f} us")
        return r["jobs_per_s"]

    # -- startup ------------------------------------------------------------------------
    def startup(self, timeout: float) -> float:
        with tempfile.TemporaryDirectory(prefix="weft-bench-up-") as tmp:
            cluster = self._new_cluster(Path(tmp), compute=self.compute, storage=self.storage, slots=self.slots)
            try:
                from weft.actors.client import Client

                t0 = time.perf_counter()
                deadline = time.monotonic() + timeout
                cluster.start(timeout)
                with Client(cluster.endpoint, timeout=10.0, retry_for=10.0) as c:
                    self._result(c.submit("weft.bench.workloads:noop", x=f"startup-{t0}"), deadline, "the first task")
                return time.perf_counter() - t0
            finally:
                self.stop_cluster(cluster)
