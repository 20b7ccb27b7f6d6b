"""Dispatch capacity: how many jobs a second one coordinator can start.

    python -m weft.bench.dispatch [--jobs N] [--nodes 100] [--slots 4] [--json FILE]

A real coordinator and one real storage node (a local cluster with no compute
node) and `nodes` simulated compute nodes, all in one other process
(`FakeCompute`): each is a `weft.runtime.node.Node` of role compute with its
own ROUTER socket on 127.0.0.1, saying hello to the coordinator and speaking
the real protocol records (`protocol/tasks.py`). A fake node answers every
`start_many` at once, as a compute node does (each task pending), and
reports each task done in the same moment (its `task` event), its empty
output held by the coordinator and written nowhere, as a compute node
reports a no-op's b"" result; it answers `withdraw` with nothing queued.
So nothing runs and nothing is written: what is left is the coordinator's own work per job (submit aside): the dispatch
round, the `start_many`, the `done` news, success, its journal, the
janitor's deletes, over real sockets.

Measured: `jobs` no-op callables are submitted while the cluster is paused
(`weft pause`); the clock runs from `resume` to the coordinator's answer that
every one of them succeeded (one `wait` call): jobs per second. The fake
nodes' process and the coordinator share the machine's cores (and on a
loaded machine, everything else), so this is a floor on what the coordinator
alone could do; the coordinator's CPU time per job over the same interval
(user + system, from /proc) is reported beside it, and 1e6 / that is what one
core given to the coordinator alone would dispatch.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

from weft.protocol.enums import EventKind, Outcome, TaskState
from weft.protocol.probe import Probe, ProbeReply
from weft.protocol.tasks import (
    DeleteTasks,
    DeleteTasksReply,
    Refused,
    StartMany,
    StartManyReply,
    TaskInventory,
    TaskRef,
    TaskReport,
    Withdraw,
)
from weft.runtime.node import Node, NodeConfig

NODES = 100
SLOTS = 4


class FakeCompute(Node):
    """A compute node whose every task is done the moment it is started."""

    role = "compute"

    def __init__(self, config: NodeConfig, *, slots: int) -> None:
        self.slots = slots
        self.tasks: dict[str, TaskReport] = {}  # done tasks until the janitor deletes them
        super().__init__(config)

    def register(self) -> None:
        add = self.server.add
        add("start_many", self._op_start_many)
        add("list", self._op_list, bypass=True)
        add("delete", self._op_delete)
        add("result", self._op_result, bypass=True)
        add("cancel", self._op_result)
        add("probe", self._op_probe)
        add("withdraw", self._op_withdraw)  # work stealing, as a compute node answers it

    def describe(self) -> dict[str, Any]:
        return {"slots": self.slots, "busy": 0, "tasks": len(self.tasks)}

    def _op_start_many(self, body: Any, ctx: Any) -> dict[str, Any]:
        self.fence(body)
        now = time.time()
        answers: list[TaskReport | Refused] = []
        append = self.events.append
        for item in StartMany.from_wire(body).tasks:
            if type(item) is Refused:
                answers.append(item)
                continue
            # A no-op's b"" result, as a compute node reports it: written
            # nowhere, held by the coordinator (Transfers._hold_empty).
            stored = {out: [None, 0, b""] for out in item.spec.outputs}
            done = TaskReport(item.job, TaskState.DONE, item.token, Outcome.SUCCESS, exit=0,
                              stored=stored, started=now, finished=now)
            self.tasks[item.job] = done
            append(EventKind.TASK, done.to_wire(), urgent=True)
            # Answered as a compute node answers a start (its task just
            # begun: job, state, token); the end comes in the task event.
            answers.append(TaskReport(item.job, TaskState.PENDING, item.token))
        return StartManyReply(answers).to_wire()

    def _op_list(self, body: Any, ctx: Any) -> dict[str, Any]:
        return TaskInventory(list(self.tasks.values()), self.events.next_seq, self.events.incarnation,
                             self.slots, 0).to_wire()

    def _op_delete(self, body: Any, ctx: Any) -> dict[str, Any]:
        self.fence(body)
        deleted = [j for j in DeleteTasks.from_wire(body).jobs if self.tasks.pop(j, None) is not None]
        return DeleteTasksReply(deleted, []).to_wire()

    def _op_result(self, body: Any, ctx: Any) -> dict[str, Any]:
        ref = TaskRef.from_wire(body)
        task = self.tasks.get(ref.job)
        if task is None:
            from weft.bus.errors import BusError

            raise BusError(f"no task for job {ref.job!r} on {self.node_id}", code="missing")
        return task.to_wire()

    def _op_withdraw(self, body: Any, ctx: Any) -> dict[str, Any]:
        """Give back queued tasks: a fake node has none (each is done the
        moment it starts), so its answer is a compute node's with an empty line."""
        self.fence(body)
        Withdraw.from_wire(body)
        return {"jobs": []}

    def _op_probe(self, body: Any, ctx: Any) -> dict[str, Any]:
        return ProbeReply(list(Probe.from_wire(body).modules), []).to_wire()


def serve_fakes(coordinator: str, nodes: int, slots: int, conn: Any = None) -> None:
    """Run `nodes` fake compute nodes until killed (the child process's body)."""
    from weft.runtime.memory import keep_freed_memory

    keep_freed_memory()

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            for i in range(nodes):
                cfg = NodeConfig(listen="tcp://127.0.0.1:0", node_id=f"fake-compute-{i}", beacon=False,
                                 coordinator=coordinator)
                await nursery.start(FakeCompute(cfg, slots=slots).run)
            if conn is not None:
                conn.send("ready")
                conn.close()

    trio.run(main)


class FakeNodes:
    """The fake compute nodes in a child process of their own."""

    def __init__(self, coordinator: str, nodes: int, slots: int, timeout: float) -> None:
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        self.proc = ctx.Process(target=serve_fakes, args=(coordinator, nodes, slots, child),
                                daemon=True)
        self.proc.start()
        child.close()
        try:
            if not parent.poll(timeout):
                raise RuntimeError(f"{nodes} fake compute nodes did not start within {timeout:g}s")
            parent.recv()
        except EOFError:
            self.stop()
            raise RuntimeError(f"the fake compute nodes' process exited with code {self.proc.exitcode}") from None
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        self.proc.kill()
        self.proc.join(10)


def measure(jobs: int, *, nodes: int = NODES, slots: int = SLOTS, timeout: float = 300.0,
            tag: str | None = None) -> dict[str, Any]:
    """Jobs per second one coordinator dispatches to `nodes` fake compute nodes."""
    import psutil

    from weft.actors.client import Client
    from weft.localcluster.cluster import LocalCluster

    tag = tag or f"dispatch-{time.time_ns():x}"
    deadline = time.monotonic() + timeout
    with tempfile.TemporaryDirectory(prefix="weft-bench-dispatch-") as tmp, \
            LocalCluster(Path(tmp), compute=0, storage=1) as cluster:
        fakes = FakeNodes(cluster.endpoint, nodes, slots,
                          timeout=max(1.0, deadline - time.monotonic()))
        try:
            cluster.wait_nodes(nodes, 1, timeout=max(1.0, min(60.0, deadline - time.monotonic())))
            with Client(cluster.endpoint, timeout=30.0, retry_for=10.0) as c:
                # A warm-up round, so that first-use costs (connections, code
                # paths, the journal) are not charged to the measured jobs.
                warm = c.map("weft.bench.workloads:noop", [f"{tag}-warm-{i}" for i in range(nodes * slots)], key="x")
                c.wait(warm, timeout=max(1.0, deadline - time.monotonic()))
                c.pause()
                futures = c.submit_specs([c.spec("weft.bench.workloads:noop", x=f"{tag}-{i}") for i in range(jobs)],
                                         batch=20_000)
                coordinator = psutil.Process(cluster.coordinator.pid)
                cpu0 = sum(coordinator.cpu_times()[:2])
                t0 = time.perf_counter()
                c.resume()
                statuses = c.wait(futures, timeout=max(1.0, deadline - time.monotonic()))
                elapsed = time.perf_counter() - t0
                cpu = sum(coordinator.cpu_times()[:2]) - cpu0
        finally:
            fakes.stop()
    bad = [s for s in statuses if s.get("final", s)["state"] != "succeeded"]
    if bad:
        st = bad[0].get("final", bad[0])
        raise RuntimeError(f"{len(bad)} of {jobs} jobs did not succeed: job {st['job']} {st['state']}")
    return {"jobs": jobs, "nodes": nodes, "slots": slots, "seconds": round(elapsed, 3),
            "jobs_per_s": jobs / elapsed, "coordinator_cpu_us_per_job": round(cpu / jobs * 1e6, 1)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m weft.bench.dispatch", description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=20_000, help="jobs to dispatch (default 20,000)")
    ap.add_argument("--nodes", type=int, default=NODES, help=f"simulated compute nodes (default {NODES})")
    ap.add_argument("--slots", type=int, default=SLOTS, help=f"slots per simulated node (default {SLOTS})")
    ap.add_argument("--json", dest="json_path", help="write the figures here")
    args = ap.parse_args(argv)
    for name in ("jobs", "nodes", "slots"):
        if getattr(args, name) < 1:
            ap.error(f"--{name} must be at least 1")
    r = measure(args.jobs, nodes=args.nodes, slots=args.slots)
    print(f"dispatch: {r['jobs']:,} jobs to {r['nodes']} simulated nodes x {r['slots']} slots in "
          f"{r['seconds']:.2f} s: {r['jobs_per_s']:,.0f} jobs/s; the coordinator's CPU "
          f"{r['coordinator_cpu_us_per_job']:.0f} us a job")
    if args.json_path:
        from .machine import write_report

        write_report(args.json_path, result=r)
    return 0


if __name__ == "__main__":
    sys.exit(main())
