"""Each role's own Prometheus families, read at scrape time from what the role already keeps.

Duck-typed on the node's attributes (no import of weft.actors: the runtime
sits below the roles). The coordinator's families come from one pass over its
jobs per scrape, as `weft stats` makes; histograms of dispatch latency and
runtime are fed in that pass from the timestamps every job already carries,
for the jobs that started or finished since the pass before.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

# A start time comes from the compute node's report, applied a moment
# later: a job is looked at again for this long after the last scrape, and
# a set of the ids already counted in that window keeps it from counting
# twice (short: the set costs per job ending within it).
SLACK = 5.0
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
RUNTIME_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 1800, 3600, 4 * 3600, 24 * 3600)
_COUNT = re.compile(r"count\((\d+)")

# The coordinator's own counters (CoordinatorState.stats): exposed as weft_<name>_total.
_COORDINATOR_COUNTERS = {
    "dispatched": ("jobs_dispatched", "Tasks sent to compute nodes (each attempt, prefetched ones too)."),
    "retries": ("job_retries", "Attempts retried after a job's own failure (--retries)."),
    "soft_failures": ("job_soft_failures", "Attempts retried after an infrastructure failure."),
    "delegations": ("job_delegations", "Jobs that handed their output to another job."),
    "lineage_reruns": ("lineage_reruns", "Jobs run again to remake a lost output."),
    "busy_starts": ("busy_starts", "Starts a compute node answered busy."),
    "not_started": ("not_started", "Dispatched tasks a compute node never started."),
    "pending_timeouts": ("pending_timeouts", "Jobs failed for waiting longer than their pending timeout."),
    "exit_submits": ("exit_submits", "Flows submitted by jobs' on-exit rules."),
}


class _Seen:
    """Which jobs' timestamp was counted already.

    A pass looks at jobs whose timestamp is past `since` (the pass before,
    less SLACK); of those it counts the ones not in `ids`, and remembers for
    the next pass every one whose timestamp is past the next `since`: only
    those can be looked at twice. The first pass counts every job known.
    """

    def __init__(self) -> None:
        self.since = float("-inf")
        self.ids: set[str] = set()
        self.next: set[str] = set()

    def fresh(self, job_id: str, ts: float, horizon: float) -> bool:
        if ts > horizon:
            self.next.add(job_id)
        return job_id not in self.ids

    def turn(self, horizon: float) -> None:
        self.ids, self.next = self.next, set()
        self.since = horizon


class CoordinatorCollector:
    def __init__(self, node: Any) -> None:
        self.node = node
        self.latency = Histogram("weft_dispatch_latency_seconds",
                                 "From submit to start of a job's (last) attempt.",
                                 buckets=LATENCY_BUCKETS, registry=None)
        self.runtime = Histogram("weft_job_runtime_seconds", "From start to end of a finished job's last attempt.",
                                 buckets=RUNTIME_BUCKETS, registry=None)
        self.failures: dict[str, int] = {}
        self._started = _Seen()
        self._finished = _Seen()

    def collect(self) -> Iterator[Metric]:
        node = self.node
        graph, state = node.graph, node.state
        now = time.time()
        horizon = now - SLACK
        by_state: dict[str, int] = {}
        started, finished, failures = self._started, self._finished, self.failures
        oldest = None
        s_since, f_since = started.since, finished.since
        for j in graph.jobs.values():
            shown = j.shown_state
            by_state[shown] = by_state.get(shown, 0) + 1
            if (shown == "waiting" or shown == "runnable") and (oldest is None or j.submitted < oldest):
                oldest = j.submitted
            # Inline comparisons first: most jobs started and ended long before the last scrape.
            st, fin = j.started, j.finished
            if st is not None and st > s_since and started.fresh(j.id, st, horizon):
                self.latency.observe(max(0.0, st - j.submitted))
            if fin is not None and fin > f_since and finished.fresh(j.id, fin, horizon):
                if st is not None:
                    self.runtime.observe(max(0.0, fin - st))
                if j.code is not None:
                    failures[j.code] = failures.get(j.code, 0) + 1
        started.turn(horizon)
        finished.turn(horizon)

        jobs = GaugeMetricFamily("weft_jobs", "Jobs the coordinator knows, by state.", labels=["state"])
        for s, n in sorted(by_state.items()):
            jobs.add_metric([str(s)], n)
        yield jobs
        m = _COUNT.match(repr(graph._seq))  # the next sequence number: survives restarts (replay bumps it)
        yield CounterMetricFamily("weft_jobs_submitted", "Jobs submitted (sequence numbers handed out).",
                                  value=int(m.group(1)) - 1 if m else len(graph.jobs))
        stats = state.stats
        done = CounterMetricFamily("weft_jobs_completed", "Jobs ended, by outcome.", labels=["outcome"])
        done.add_metric(["succeeded"], stats.get("succeeded", 0))
        done.add_metric(["failed"], stats.get("failed", 0))
        yield done
        for key, (name, doc) in _COORDINATOR_COUNTERS.items():
            if key in stats:
                yield CounterMetricFamily(f"weft_{name}", doc, value=max(0, stats[key]))
        fam = CounterMetricFamily("weft_job_failures", "Jobs seen failed or cancelled by this process, by code.",
                                  labels=["code"])
        for code, n in sorted(failures.items()):
            fam.add_metric([str(code)], n)
        yield fam
        yield GaugeMetricFamily("weft_queue_depth", "Jobs runnable now and waiting for a slot.",
                                value=graph.runnable_count)
        yield GaugeMetricFamily("weft_queue_longest_wait_seconds", "Age of the oldest job not started yet.",
                                value=max(0.0, now - oldest) if oldest is not None else 0.0)
        yield GaugeMetricFamily("weft_objects", "Objects the coordinator knows.", value=len(graph.objects))
        yield from self.latency.collect()
        yield from self.runtime.collect()
        yield from _nodes(state, now)
        for k, v in state.repair.stats().items():
            kind = CounterMetricFamily if k in ("repair_copied", "repair_failed", "repair_trimmed") else GaugeMetricFamily
            yield kind(f"weft_{k}", f"Repair: {k.replace('_', ' ')}.", value=v)


def _nodes(state: Any, now: float) -> Iterator[Metric]:
    slots = GaugeMetricFamily("weft_node_slots", "Slots of each compute node.", labels=["node"])
    busy = GaugeMetricFamily("weft_node_slots_busy", "Slots in use on each compute node.", labels=["node"])
    objects = GaugeMetricFamily("weft_node_objects", "Objects on each storage node.", labels=["node"])
    free = GaugeMetricFamily("weft_node_free_bytes", "Free disk space of each storage node.", labels=["node"])
    ready = GaugeMetricFamily("weft_node_ready", "1 while a node is known and its news is followed.",
                              labels=["node", "role"])
    quiet = GaugeMetricFamily("weft_node_last_heard_seconds", "Seconds since each node was last heard from.",
                              labels=["node", "role"])
    memory = GaugeMetricFamily("weft_node_memory_bytes", "Memory each compute node offers (when it says).",
                               labels=["node"])
    memory_used = GaugeMetricFamily("weft_node_memory_used_bytes", "Memory the jobs placed on each compute node "
                                    "asked for.", labels=["node"])
    drained = GaugeMetricFamily("weft_node_drained", "1 while a node is drained (takes no new work).",
                                labels=["node", "role"])
    for c in state.computes.values():
        slots.add_metric([c.node], c.slots)
        busy.add_metric([c.node], len(c.running))
        v = c.view()  # its memory as `weft nodes` shows it (placement's own accounting)
        if v.get("memory") is not None:
            memory.add_metric([c.node], v["memory"])
        if v.get("memory_used") is not None:
            memory_used.add_metric([c.node], v["memory_used"])
    for s in state.storages.values():
        objects.add_metric([s.node], s.objects)
        free.add_metric([s.node], s.free_bytes)
    for n in (*state.computes.values(), *state.storages.values()):
        ready.add_metric([n.node, str(n.role)], 1 if n.ready else 0)
        drained.add_metric([n.node, str(n.role)], 1 if getattr(n, "drained", False) else 0)
        quiet.add_metric([n.node, str(n.role)], max(0.0, now - n.last_seen))
    yield from (slots, busy, memory, memory_used, objects, free, ready, quiet, drained)


class ComputeCollector:
    def __init__(self, node: Any) -> None:
        self.node = node

    def collect(self) -> Iterator[Metric]:
        import psutil

        d = self.node.describe()
        yield GaugeMetricFamily("weft_compute_slots", "Tasks this node runs at once.", value=d["slots"])
        yield GaugeMetricFamily("weft_compute_slots_busy", "Slots in use.", value=d["busy"])
        yield GaugeMetricFamily("weft_compute_tasks", "Tasks held (running, queued or ended, not yet deleted).",
                                value=d["tasks"])
        yield GaugeMetricFamily("weft_compute_unfinished", "Tasks running or queued.", value=d["unfinished"])
        mem = psutil.virtual_memory()
        yield GaugeMetricFamily("weft_compute_memory_used_bytes", "Memory in use on this node's host.",
                                value=mem.total - mem.available)
        yield GaugeMetricFamily("weft_compute_memory_total_bytes", "Memory of this node's host.", value=mem.total)


class StorageCollector:
    def __init__(self, node: Any) -> None:
        self.node = node
        self.commit = Histogram("weft_storage_commit_seconds",
                                "Group commits: one SQLite transaction plus the fsync of each finished file.",
                                buckets=LATENCY_BUCKETS, registry=None)
        commits = getattr(node, "commits", None)
        if commits is not None and hasattr(commits, "_flush"):
            # Timed once per group commit (not per write): wraps the flush the node handed its GroupCommit.
            commits._flush = _timed(commits._flush, self.commit.observe)

    def collect(self) -> Iterator[Metric]:
        d = self.node.describe()
        usage = d["usage"]
        yield GaugeMetricFamily("weft_storage_objects", "Objects held.", value=usage["objects"])
        yield GaugeMetricFamily("weft_storage_bytes", "Bytes of object content held.", value=usage["bytes"])
        yield GaugeMetricFamily("weft_storage_free_bytes", "Free space on the data directory's disk.",
                                value=usage["free"])
        yield GaugeMetricFamily("weft_storage_writes", "Object writes waiting for their flush.", value=d["writing"])
        yield CounterMetricFamily("weft_storage_fd_puts", "Objects put with their bytes passed as a memory file "
                                  "by a compute node on this host (not sent on the bus).", value=d["fd_puts"])
        yield from self.commit.collect()


def _timed(flush: Callable[[], Any], observe: Callable[[float], None]) -> Callable[[], Any]:
    async def timed() -> None:
        t = time.perf_counter()
        try:
            result = flush()
            if hasattr(result, "__await__"):
                await result
        finally:
            observe(time.perf_counter() - t)

    return timed


def role_collector(node: Any) -> Any:
    return {"coordinator": CoordinatorCollector, "compute": ComputeCollector,
            "storage": StorageCollector}.get(node.role, lambda n: None)(node)
