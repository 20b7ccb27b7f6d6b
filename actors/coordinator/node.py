"""The coordinator: finds nodes, owns the job graph, schedules, follows delegations.

It calls compute and storage; they never call it (news comes back through
their event queues, which it long-polls, one poller per node). The hot path
per scheduling round is: pop the most-needed runnable jobs, mark them running
(the running table changes before any message leaves), then one `create_many`
per storage node and one `start_many` per compute node for the whole round.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import trio

from weft.actors.groupcommit import GroupCommit
from weft.actors.model import (
    JobSpec,
    SpecError,
    check_job_id,
    delegation_from_wire,
    split_object_name,
)
from weft.bus.beacon import BeaconListener, PeerInfo
from weft.bus.endpoint import check_endpoint
from weft.bus.errors import BusError, CallTimeout, RemoteError
from weft.bus.heartbeat import Liveness
from weft.bus.rpc import CallContext, PeerClosed
from weft.runtime.node import Node, NodeConfig

from .graph import CANCELLED, FAILED, RUNNABLE, RUNNING, SUCCEEDED, WAITING, Graph, Job
from .journal import Journal, parse_handed
from .nodes import ComputeRef, NodeRef, StorageRef, pick_storage

log = logging.getLogger("weft.coordinator")

_NET_ERRORS = (CallTimeout, PeerClosed, RemoteError, trio.ClosedResourceError)
MAX_SOFT_FAILURES = 5
# Small objects' bytes (from storage events) are kept to pass inline to the
# jobs that read them, up to this many bytes in all.
INLINE_CACHE_BYTES = 64 << 20


def _bad(message: str) -> BusError:
    return BusError(message, code="bad-request")


class _Waiter:
    """One `wait` call: how many of its jobs are unfinished, and its wake-up."""

    __slots__ = ("remaining", "event", "ids")

    def __init__(self) -> None:
        self.remaining = 0
        self.event = trio.Event()
        self.ids: list[str] = []


class CoordinatorNode(Node):
    role = "coordinator"

    def __init__(
        self,
        config: NodeConfig,
        *,
        heartbeat_interval: float | None = None,
        heartbeat_timeout: float = 5.0,
        poll_timeout: float = 10.0,
        replicas: int = 1,
        storage_grace: float = 30.0,
        prefetch: int = 8,
        follow_ahead: int = 2,
    ) -> None:
        if config.data_dir is None:
            raise ValueError("a coordinator needs a data directory")
        self.data_dir = Path(config.data_dir).resolve()
        super().__init__(config)
        self.graph = Graph()
        self.journal = Journal(self.data_dir / "journal.sqlite")
        self.commits = GroupCommit(self.journal.commit, what="job journal", delay=0.01)
        self.computes: dict[str, ComputeRef] = {}
        self.storages: dict[str, StorageRef] = {}
        self.poll_timeout = poll_timeout
        if replicas < 1:
            raise ValueError("replicas must be at least 1")
        self.replicas = replicas
        self.storage_grace = storage_grace
        self.prefetch = prefetch
        # Jobs per slot a compute node may hold started ahead of their input,
        # waiting for the task there that makes it (0: none; see _pick_followers).
        self.follow_ahead = follow_ahead
        # Storage nodes lost, and since when: their objects wait out the grace
        # period in case the node comes back with them.
        self._lost_storages: dict[str, float] = {}
        self._lost_objects: set[str] = set()
        self._inline_bytes = 0
        # Jobs whose task succeeded but whose outputs storage has not yet
        # announced finished: they succeed when the last one is (a reader told
        # "succeeded" must find the bytes).
        self._awaiting: dict[str, set[str]] = {}
        # Paranoid Pirate: ping after a third of the timeout, at most every second.
        interval = heartbeat_interval or min(1.0, heartbeat_timeout / 3)
        self.liveness = Liveness(interval=interval, timeout=heartbeat_timeout, on_lost=self._node_lost)
        self.epoch = int(self.journal.get_meta("epoch", 0)) + 1
        self.journal.set_meta("epoch", self.epoch)
        # Fencing tokens grow across restarts: epoch in the high bits.
        self._tokens = itertools.count((self.epoch << 32) + 1)
        self.fenced = False
        self._wake = trio.Event()
        self._watchers: dict[str, list[_Waiter]] = {}
        self._to_delete: dict[str, list[str]] = defaultdict(list)
        self.started_at = time.time()
        self.stats = {
            "dispatched": 0, "succeeded": 0, "failed": 0, "soft_failures": 0, "delegations": 0,
            "lineage_reruns": 0, "followed": 0, "unmet": 0,
        }
        self._replay()

    # -- setup ---------------------------------------------------------------------
    def register(self) -> None:
        add = self.server.add
        add("hello", self._op_hello, bypass=True)
        add("submit", self._op_submit)
        add("status", self._op_status, bypass=True)
        add("wait", self._op_wait, bypass=True)
        add("locate", self._op_locate, bypass=True)
        add("cancel", self._op_cancel)
        add("nodes", self._op_nodes, bypass=True)
        add("stats", self._op_stats, bypass=True)

    def describe(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "jobs": len(self.graph.jobs)}

    async def main(self, nursery: trio.Nursery) -> None:
        nursery.start_soon(self.commits.run)
        nursery.start_soon(self.liveness.run)
        nursery.start_soon(self._scheduler)
        nursery.start_soon(self._janitor)
        nursery.start_soon(self._lineage)
        cfg = self.config
        if cfg.beacon and not cfg.coordinator:
            listener = BeaconListener(
                cluster=cfg.cluster, port=cfg.beacon_port, bind=self.beacon_bind, ignore_node=self.node_id,
                on_found=self._beacon_found, expiry=max(5.0, cfg.beacon_interval * 5),
            )
            nursery.start_soon(listener.run)

    async def shutdown(self) -> None:
        self.journal.close()

    def _replay(self) -> None:
        g = self.graph
        unfinished = []
        last_seq = 0
        for jid, seq, wire, state, outcome, cause, submitted, finished, delegate, parent, attempts in self.journal.replay():
            try:
                spec = JobSpec.from_wire(wire)
            except SpecError as e:
                log.error("journal row %s has a bad spec, skipped: %s", jid, e)
                continue
            job = g.add_job(jid, spec, now=submitted, seq=seq)
            job.state, job.outcome, job.cause, job.finished = state, outcome, cause, finished
            job.handed = parse_handed(delegate)
            job.delegate = job.handed[1].split("/", 1)[0] if job.handed else None
            job.parent, job.attempts = parent, attempts
            last_seq = seq
            if state not in (SUCCEEDED, FAILED, CANCELLED):
                job.state = WAITING
                unfinished.append(job)
        g.bump_seq(last_seq)
        # Delegated outputs point at the objects standing for them again.
        for job in g.jobs.values():
            if job.handed:
                output, target = job.handed
                g.delegate(f"{job.id}/{output}", target)
        for job in unfinished:
            g.link_inputs(job)
        if g.jobs:
            log.info("replayed %d jobs from the journal (%d unfinished)", len(g.jobs), len(unfinished))
        # Give running tasks a moment to be re-adopted from compute inventories
        # before anything is started twice.
        self._settle_until = time.monotonic() + (3.0 if unfinished else 0.0)

    # -- discovery -------------------------------------------------------------------
    def _beacon_found(self, peer: PeerInfo) -> None:
        self._meet(peer.role, peer.node, peer.endpoint, None)

    def _op_hello(self, body: Any, ctx: CallContext) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise _bad("hello needs a map body")
        role, node, endpoint = body.get("role"), body.get("node"), body.get("endpoint")
        if role not in ("compute", "storage") or not isinstance(node, str) or not isinstance(endpoint, str):
            raise _bad("hello needs role (compute|storage), node and endpoint")
        check_endpoint(endpoint, f"hello endpoint of {role} {node!r}")
        inc = body.get("inc") if isinstance(body.get("inc"), str) else None
        self._meet(role, node, endpoint, inc)
        return {"epoch": self.epoch}

    def _meet(self, role: str, node: str, endpoint: str, inc: str | None) -> None:
        table: dict[str, Any] = self.computes if role == "compute" else self.storages
        if role not in ("compute", "storage"):
            return
        ref = table.get(node)
        if ref is not None and ref.endpoint == endpoint and (inc is None or ref.inc is None or inc == ref.inc):
            ref.last_seen = time.time()
            self.liveness.seen(f"{role}/{node}")
            return
        fresh = ComputeRef(node, endpoint) if role == "compute" else StorageRef(node, endpoint)
        if ref is not None:
            log.info("%s %s is back (%s)", role, node, endpoint)
            if ref.endpoint == endpoint:
                # Restarted in place: its new inventory tells what became of
                # the tasks we gave it (finished ones are adopted, not rerun).
                if ref.scope is not None:
                    ref.scope.cancel()
                if isinstance(ref, ComputeRef):
                    fresh.assigned = ref.assigned
                self.peers.drop(ref.endpoint)
            else:
                self._forget(ref, "moved")
        ref = fresh
        table[node] = ref
        self._lost_storages.pop(node, None)
        log.info("met %s %s at %s", role, node, endpoint)
        peer = self.peers.get(endpoint)
        # Keyed by role too: a compute and a storage node may share an id.
        self.liveness.watch(f"{role}/{node}", lambda: peer.call("ping", {"epoch": self.epoch}, timeout=self.liveness.interval * 2))
        self.nursery.start_soon(self._track, ref)

    def _node_lost(self, key: str) -> None:
        role, _, node = key.partition("/")
        ref = (self.computes if role == "compute" else self.storages).get(node)
        if ref is not None:
            log.warning("%s %s lost", ref.role, node)
            self._forget(ref, "lost")

    def _forget(self, ref: NodeRef, why: str) -> None:
        if ref.scope is not None:
            ref.scope.cancel()
        ref.ready = False
        if isinstance(ref, ComputeRef):
            self.computes.pop(ref.node, None)
            for jid in list(ref.assigned):
                job = self.graph.jobs.get(jid)
                if job is not None and job.state == RUNNING and job.node == ref.node:
                    self._soft_failure(job, f"compute node {ref.node} {why}")
            ref.running.clear()
            ref.assigned.clear()
        else:
            self.storages.pop(ref.node, None)
            self._lost_storages[ref.node] = time.monotonic()
            lost = 0
            for obj in self.graph.objects.values():
                if ref.node in obj.locs:
                    obj.locs.remove(ref.node)
                    if not obj.locs and obj.state == "finished":
                        obj.state = "lost"
                        obj.lost_at = time.monotonic()
                        self._lost_objects.add(obj.name)
                        lost += 1
            if lost:
                log.warning("%d objects were only on storage %s; waiting %gs for it to come back",
                            lost, ref.node, self.storage_grace)
            for jid in list(self._awaiting):
                job = self.graph.jobs.get(jid)
                placement = job.placement if job is not None else None
                if job is None or not placement or ref.node not in placement:
                    continue
                if not any(n in self.storages for n in placement):
                    # Its outputs were acknowledged only by the node we lost.
                    del self._awaiting[jid]
                    self._soft_failure(job, f"storage node {ref.node} was lost before its outputs were announced")
        self.liveness.unwatch(f"{ref.role}/{ref.node}")
        self.peers.drop(ref.endpoint)
        self._drain()

    async def _track(self, ref: NodeRef) -> None:
        """Take the node's inventory, then follow its events; re-inventory on resync."""
        with trio.CancelScope() as scope:
            ref.scope = scope
            peer = self.peers.get(ref.endpoint)
            backoff = 0.1
            while True:
                try:
                    inv = await peer.call("list", {}, timeout=30)
                    ref.inc = inv.get("inc")
                    since = inv.get("next", 0)
                    scavenge: list[str] = []
                    if isinstance(ref, ComputeRef):
                        self._reconcile_compute(ref, inv)
                    else:
                        await self._storage_usage(ref)
                        scavenge = self._reconcile_storage(ref, inv)
                    # Ready in the same step as the inventory is applied: a
                    # scheduler pass in between would find the node's objects
                    # with no live copy and declare them lost.
                    ref.ready = True
                    if scavenge:
                        await self._scavenge(ref, scavenge)
                    ref.last_seen = time.time()
                    self._kick()
                    backoff = 0.1
                    while True:
                        # Woken by urgent events only: a task's end, an object
                        # finished by a writer that does not report it itself.
                        # The rest (task steps, objects a task's `done` reports)
                        # ride along: one wake-up per job, not one per step.
                        r = await peer.call(
                            "poll", {"since": since, "timeout": self.poll_timeout, "inc": ref.inc, "wake": "urgent"},
                            timeout=self.poll_timeout + 5,
                        )
                        self.liveness.seen(f"{ref.role}/{ref.node}")
                        if r.get("resync"):
                            log.info("%s %s: resync", ref.role, ref.node)
                            break
                        events = r.get("events") or []
                        if events:
                            if isinstance(ref, ComputeRef):
                                self._compute_events(ref, events)
                            else:
                                self._storage_events(ref, events)
                        since = r.get("next", since)
                except _NET_ERRORS as e:
                    self._check_fenced(e)
                    log.debug("%s %s: %s", ref.role, ref.node, e)
                    await trio.sleep(backoff)
                    backoff = min(backoff * 2, 2.0)

    # -- compute news -----------------------------------------------------------------
    def _reconcile_compute(self, ref: ComputeRef, inv: dict[str, Any]) -> None:
        ref.slots = int(inv.get("slots", 0))
        seen = set()
        finished = []
        for t in inv.get("tasks", []):
            jid = t.get("job")
            job = self.graph.jobs.get(jid)
            if job is None:
                continue
            seen.add(jid)
            if t.get("state") == "done":
                finished.append(t)
            elif not job.done and t.get("token", 0) >= job.token:
                # A task we did not know was running (e.g. after our restart): adopt it.
                if job.state == RUNNABLE:
                    self.graph.runnable_count -= 1
                job.state, job.node, job.token = RUNNING, ref.node, t.get("token", 0)
                job.started = job.started or t.get("started") or time.time()
                ref.assign(jid)
                if t.get("state") == "storing":
                    ref.running.discard(jid)
        for jid in list(ref.assigned):
            if jid not in seen:
                job = self.graph.jobs.get(jid)
                ref.unassign(jid)
                if job is not None and job.state == RUNNING and job.node == ref.node:
                    self._soft_failure(job, f"task vanished from compute node {ref.node}")
        if finished:
            self._compute_events(ref, [[0, "task", t] for t in finished])
        self._drain()

    def _compute_events(self, ref: ComputeRef, events: list) -> None:
        freed = False
        for _seq, kind, t in events:
            if kind != "task" or not isinstance(t, dict):
                continue
            state = t.get("state")
            jid = t.get("job")
            if state == "storing":
                # The task gave its slot back; its outputs are on their way.
                if jid in ref.running:
                    ref.running.discard(jid)
                    freed = True
                continue
            if state != "done":
                continue
            job = self.graph.jobs.get(jid)
            if jid in ref.running:
                freed = True
            ref.unassign(jid)
            if ref.following and t.get("outcome") == "success":
                # Its followers start now (if it failed, they end unmet).
                now = time.time()
                for fid in ref.producer_done(jid):
                    follower = self.graph.jobs.get(fid)
                    if follower is not None and follower.ahead:
                        follower.ahead = False
                        follower.started = now
            self._to_delete[ref.node].append(jid)
            if job is not None and job.state == RUNNABLE and t.get("token") == job.token and t.get("outcome") == "success":
                # The node we gave up on finished it after all, and nothing
                # started it again yet: adopt the result instead of rerunning.
                self.graph.runnable_count -= 1
                job.state, job.node = RUNNING, ref.node
            if job is None or job.state != RUNNING or job.node != ref.node or t.get("token") != job.token:
                continue  # a late result of an attempt we gave up on
            outcome = t.get("outcome")
            cause = t.get("cause")
            if outcome == "success":
                stored = t.get("stored")
                if isinstance(stored, dict):
                    self._stored_outputs(job, stored)
                delegation = t.get("delegation")
                if delegation is not None:
                    self._delegate(job, delegation)
                pending = {
                    n for n in job.outputs()
                    if (o := self.graph.objects.get(n)) is None or o.state not in ("finished", "delegated")
                }
                if pending:
                    self._awaiting[job.id] = pending
                else:
                    self.graph.succeed(job)
                    self.stats["succeeded"] += 1
            elif outcome == "failed-soft" and t.get("unmet"):
                # Started ahead of an input whose producer did not make it:
                # not this job's attempt that failed. It waits for the input.
                self.stats["unmet"] += 1
                job.ahead = False
                self._soft_failure(job, cause or "input not made", counted=False)
            elif outcome == "failed-soft":
                self._soft_failure(job, cause or "failed soft")
            else:
                state = CANCELLED if outcome == "cancelled" else FAILED
                self.stats["failed"] += len(
                    self.graph.fail(job, cause or outcome or "failed", outcome=outcome or "failed-hard", state=state)
                )
        self._drain()
        if freed:
            self._kick()

    def _outputs_finished(self, job: Job) -> bool:
        objects = self.graph.objects
        return all((o := objects.get(n)) is not None and o.state == "finished" for n in job.outputs())

    def _stored_outputs(self, job: Job, stored: dict) -> None:
        """Outputs the task reports finished (storage acknowledged them durable
        before the task ended): the same news as storage's `finished` events,
        which for these objects are quiet and arrive later."""
        scavenge: list[str] = []
        for output, entry in stored.items():
            if not (isinstance(output, str) and isinstance(entry, list) and len(entry) == 3):
                continue
            node, size, data = entry
            ref = self.storages.get(node) if isinstance(node, str) else None
            if ref is None or not isinstance(size, int):
                continue  # storage's own event will tell
            info: dict[str, Any] = {"name": f"{job.id}/{output}", "state": "finished", "size": size}
            if isinstance(data, bytes) and len(data) == size:
                info["data"] = data
            self._apply_object(ref, info, scavenge)

    def _soft_failure(self, job: Job, cause: str, *, counted: bool = True) -> None:
        """Infrastructure failed the job: run it again (it is needed: it was submitted)."""
        if counted:
            self.stats["soft_failures"] += 1
        else:
            job.excused += 1
        if job.node and job.node in self.computes:
            self.computes[job.node].unassign(job.id)
        if "[no-space]" in cause:
            # Out of disk there: put nothing more on it for a while, and place
            # this job's outputs elsewhere.
            until = time.monotonic() + 30.0
            for node_id in job.placement or ():
                if node_id in self.storages:
                    self.storages[node_id].full_until = until
            job.placement = None
        if job.attempts - job.excused >= MAX_SOFT_FAILURES:
            self.graph.fail(job, f"gave up after {job.attempts} attempts; last: {cause}", outcome="failed-soft")
        else:
            log.info("job %s failed soft (%s); queued again", job.id, cause)
            self.graph.requeue(job, cause)

    # -- delegation ------------------------------------------------------------------
    def _delegate(self, job: Job, delegation: dict[str, Any]) -> None:
        """`job` handed one output to a new job: create it and move the waiters."""
        try:
            spec, stream = delegation_from_wire(delegation)
            output = delegation.get("output") or job.spec.outputs[0]
        except (SpecError, IndexError) as e:
            self.graph.fail(job, f"invalid delegation: {e}")
            return
        if not spec.priority:
            spec.priority = job.priority
        new_id = spec.job_id()
        g = self.graph
        name = f"{job.id}/{output}"
        new = g.jobs.get(new_id)
        if new is None or new.state in (FAILED, CANCELLED):
            if new is None:
                new = g.add_job(new_id, spec)
                self.journal.stage_new(new)
            new.parent = job.id
            # The delegate's outputs live where the delegated object lives, so
            # storage resolves the chain locally.
            new.placement = job.placement
            try:
                g.check_inputs(spec)
            except SpecError as e:
                g.fail(new, str(e))
            else:
                new.state = WAITING
                new.demand = job.demand
                g.link_inputs(new)
                self.journal.stage(new)
        job.delegate = new_id
        job.handed = (output, f"{new_id}/{stream}")
        self.stats["delegations"] += 1
        g.delegate(name, f"{new_id}/{stream}")
        for node_id in job.placement or ():
            storage = self.storages.get(node_id)
            if storage is not None:
                self.nursery.start_soon(self._mark_delegated, storage, name, f"{new_id}/{stream}", job.token)

    async def _mark_delegated(self, storage: StorageRef, name: str, target: str, token: int) -> None:
        try:
            await self.peers.get(storage.endpoint).call(
                "delegate", {"name": name, "target": target, "token": token, "epoch": self.epoch}
            )
        except _NET_ERRORS as e:
            log.warning("could not mark %s delegated to %s on %s: %s", name, target, storage.node, e)

    # -- storage news ------------------------------------------------------------------
    async def _storage_usage(self, ref: StorageRef) -> None:
        try:
            usage = await self.peers.get(ref.endpoint).call("usage", {})
            ref.free_bytes = int(usage.get("free", 0))
        except _NET_ERRORS:
            pass

    def _reconcile_storage(self, ref: StorageRef, inv: dict[str, Any]) -> list[str]:
        """Apply a storage node's inventory; returns the partial objects to scavenge."""
        ref.objects = len(inv.get("objects", []))
        scavenge = []
        held = set()
        for info in inv.get("objects", []):
            if isinstance(info, dict):
                held.add(info.get("name"))
            self._apply_object(ref, info, scavenge)
        # What we thought it held but it no longer does (it restarted and lost
        # unflushed work, or someone deleted it) is gone from there.
        for obj in self.graph.objects.values():
            if ref.node in obj.locs and obj.name not in held:
                obj.locs.remove(ref.node)
                if not obj.locs and obj.state == "finished":
                    obj.state = "lost"
                    obj.lost_at = 0.0  # the node is back without it: no point waiting
                    self._lost_objects.add(obj.name)
        return scavenge

    def _apply_object(self, ref: StorageRef, info: dict[str, Any], scavenge: list[str]) -> None:
        g = self.graph
        name = info.get("name")
        state = info.get("state")
        if not isinstance(name, str):
            return
        try:
            split_object_name(name)
        except SpecError:
            return
        if state == "finished":
            data = info.get("data")
            if isinstance(data, bytes) and self._inline_bytes + len(data) <= INLINE_CACHE_BYTES:
                obj = g.objects.get(name)
                if obj is None or obj.data is None:
                    self._inline_bytes += len(data)
                    if obj is None:
                        obj = g.resolve(name)
                    obj.data = data
            if g.object_finished(name, ref.node, info.get("size")):
                self._kick()
            producer = g.objects[name].producer
            pending = self._awaiting.get(producer or "")
            if pending is not None:
                pending.discard(name)
                if not pending:
                    del self._awaiting[producer]
                    job = g.jobs.get(producer)
                    if job is not None and job.state == RUNNING:
                        g.succeed(job)
                        self.stats["succeeded"] += 1
            return
        obj = g.objects.get(name) or g.resolve(name)
        if state == "delegated":
            if obj.state == "finished":
                return  # finished is immutable: a stray delegation elsewhere cannot undo it
            obj.add_loc(ref.node)
            if obj.state != "delegated":
                g.delegate(name, info.get("target") or "")
            return
        if obj.state == "finished":
            return  # another replica is still arriving: the object is already there
        obj.state = state
        if state == "partial":
            producer = g.jobs.get(obj.producer) if obj.producer else None
            if producer is None or producer.state != RUNNING:
                scavenge.append(name)

    async def _scavenge(self, ref: StorageRef, names: list[str]) -> None:
        """Partial objects nobody is writing: delete them (a rerun re-creates them)."""
        log.info("scavenging %d partial objects on %s", len(names), ref.node)
        try:
            await self.peers.get(ref.endpoint).call("delete", {"names": names, "epoch": self.epoch})
        except _NET_ERRORS as e:
            log.warning("scavenging on %s failed: %s", ref.node, e)
        for n in names:
            obj = self.graph.objects.get(n)
            if obj is not None and obj.state != "finished":
                obj.state = "unknown"

    def _storage_events(self, ref: StorageRef, events: list) -> None:
        scavenge: list[str] = []
        for _seq, kind, info in events:
            if not isinstance(info, dict):
                continue
            if kind == "deleted":
                obj = self.graph.objects.get(info.get("name"))
                if obj is not None and ref.node in obj.locs:
                    obj.locs.remove(ref.node)
                    if not obj.locs and obj.state == "finished":
                        obj.state = "unknown"
                ref.objects -= 1
                continue
            if kind == "created":
                ref.objects += 1
            if kind == "partial":
                # Partial bytes from a producer we believe is running are normal.
                info = dict(info, state="partial")
            self._apply_object(ref, info, scavenge)
        if scavenge:
            self.nursery.start_soon(self._scavenge, ref, scavenge)

    # -- scheduling ----------------------------------------------------------------------
    def _kick(self) -> None:
        self._wake.set()

    def _check_fenced(self, e: Exception) -> None:
        if isinstance(e, RemoteError) and e.code == "fenced" and not self.fenced:
            self.fenced = True
            log.critical("a newer coordinator took over this cluster (%s); this one stops scheduling", e.message)

    def _drain(self) -> None:
        """Journal every job the graph changed and wake whoever waits on them."""
        changed, self.graph.changed = self.graph.changed, []
        if not changed:
            return
        journal = self.journal
        for job in changed:
            journal.stage(job)
            if job.done and job.id in self._watchers:
                self._job_finished(job)
        self.commits.mark()
        self._kick()

    def _job_finished(self, job: Job) -> None:
        final = self._final(job)
        for w in self._watchers.pop(job.id, ()):
            if final is not job and not final.done:
                # It handed its output to another job: wait for that one.
                self._watchers.setdefault(final.id, []).append(w)
                w.ids.append(final.id)
            else:
                w.remaining -= 1
                if w.remaining <= 0:
                    w.event.set()

    async def _scheduler(self) -> None:
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            delay = self._settle_until - time.monotonic()
            if delay > 0:
                await trio.sleep(delay)
            self._schedule_round()
            self._drain()

    def _schedule_round(self) -> None:
        if self.fenced:
            return
        batches: dict[str, list[tuple[Job, dict, dict | None]]] = defaultdict(list)
        self._pick_runnable(batches)
        if self.follow_ahead and not self.graph.runnable_count:
            self._pick_followers(batches)
        for node_id, items in batches.items():
            self.stats["dispatched"] += len(items)
            self.nursery.start_soon(self._dispatch, self.computes[node_id], items)

    def _pick_runnable(self, batches: dict[str, list]) -> None:
        g = self.graph
        ready = [c for c in self.computes.values() if c.ready]
        # Prefetch: with a deep queue, each node also gets `prefetch` tasks per
        # slot ahead, waiting in its FIFO, so a slot never idles for the round
        # trip to us. With a shallow queue nothing is sent ahead, so a job that
        # becomes the most needed a moment later still goes first.
        # Deep queues are also sent in batches: a node is topped up only once
        # half its ahead-queue drained, so one start_many (and one create_many
        # per storage node) carries several jobs instead of one per freed slot.
        deep = g.runnable_count >= max(16, 4 * sum(c.slots for c in ready))
        per_slot = 1 + (self.prefetch if deep else 0)
        room = {c.node: c.slots * per_slot - len(c.running) for c in ready}
        low_water = {c.node: max(1, c.slots * self.prefetch // 2) if deep else 1 for c in ready}
        computes = [c for c in ready if room[c.node] >= low_water[c.node]]
        if not computes or not g.runnable_count:
            return
        batch_placement: dict[str, list[str]] = {}
        deferred = []
        now = time.time()
        while computes:
            job = g.pop_runnable()
            if job is None:
                break
            if job.spec.outputs and self._outputs_finished(job):
                # Its outputs exist already (it finished before a crash made
                # us forget): nothing to run.
                g.succeed(job)
                continue
            inputs = self._input_locations(job)
            if inputs is None:
                continue  # it waits again, on the inputs that are not available
            node = max(computes, key=lambda c: room[c.node])
            if job.spec.outputs:
                # A batch's new outputs share the storage nodes of its first
                # job: one create_many per batch, not one per storage node.
                # Batches still spread (each picks the least loaded).
                shared = batch_placement.get(node.node) if not job.placement else None
                placement = shared if shared and self._still_placeable(shared) else self._place(job)
                if placement is None:
                    deferred.append(job)
                    break
                if shared is placement:
                    for n in placement:
                        self.storages[n].placed += 1
                else:
                    batch_placement.setdefault(node.node, placement)
                job.placement = placement
            self._mark_dispatched(job, node, started=now)
            node.assign(job.id)
            room[node.node] -= 1
            if room[node.node] <= 0:
                computes.remove(node)
            batches[node.node].append((job, inputs, None))
        for job in deferred:
            g.make_runnable(job)

    def _pick_followers(self, batches: dict[str, list]) -> None:
        """Start jobs ahead of their last input, on the node making it.

        With nothing runnable left (a chain, the tail of a fan-in), a waiting
        job whose every missing input is an output of one job running on a
        compute node is started there too: the node runs it the moment that
        producer's outputs are durable, with the bytes it still holds, and
        the hop through us (its `done`, our round, the start) leaves the
        critical path. Ray and Dask resolve dependencies on the worker the
        same way. Each node holds at most `follow_ahead` per slot, and such
        jobs may follow each other (a chain runs that far ahead of us).
        """
        g = self.graph
        for node in self.computes.values():
            budget = self.follow_ahead * node.slots - len(node.following) if node.ready else 0
            queue = list(node.assigned) if budget > 0 else []
            while queue and budget > 0:
                producer = g.jobs.get(queue.pop())
                if producer is None or producer.state != RUNNING or producer.node != node.node:
                    continue
                for name in producer.outputs():
                    obj = g.objects.get(name)
                    if obj is None or obj.state in ("finished", "delegated") or not obj.waiters:
                        continue
                    for wid in obj.waiters:
                        job = g.jobs.get(wid)
                        if budget <= 0 or job is None or job.state != WAITING:
                            continue
                        picked = self._follower_inputs(job, producer)
                        if picked is None:
                            continue
                        placement = self._place(job) if job.spec.outputs else None
                        if job.spec.outputs and placement is None:
                            return  # no storage to write to: nothing can go ahead
                        job.placement = placement
                        # Not started until its producer ends (see _compute_events).
                        self._mark_dispatched(job, node, started=None)
                        job.ahead = True
                        node.follow(job.id, producer.id)
                        batches[node.node].append((job, picked[0], picked[1]))
                        self.stats["followed"] += 1
                        budget -= 1
                        queue.append(job.id)

    def _mark_dispatched(self, job: Job, node: ComputeRef, *, started: float | None) -> None:
        """A new attempt of `job` on `node`, under a new fencing token."""
        job.state = RUNNING
        job.ahead = False
        job.node = node.node
        job.token = next(self._tokens)
        job.attempts += 1
        job.started = started

    @staticmethod
    def _where(endpoints: list[str]) -> str | list[str]:
        """The wire form of a location: one endpoint, or the list of the replicas'."""
        return endpoints[0] if len(endpoints) == 1 else endpoints

    def _finished_input(self, obj: Any, copies: list[StorageRef]) -> list:
        """[where, object] of a finished input, and its bytes when we hold them."""
        where = self._where([s.endpoint for s in copies])
        return [where, obj.name] if obj.data is None else [where, obj.name, obj.data]

    def _follower_inputs(self, job: Job, producer: Job) -> tuple[dict, dict] | None:
        """Inputs of `job` if `producer` makes every one that is missing, and
        the `after` map naming it for those; None if `job` cannot follow it."""
        inputs: dict[str, list] = {}
        after: dict[str, list] = {}
        for name, ref in job.spec.refs.items():
            obj = self.graph.resolve(ref)
            if obj.state == "finished":
                copies = self._live_locations(obj)
                if not copies:
                    return None
                inputs[name] = self._finished_input(obj, copies)
            elif obj.producer == producer.id and obj.state != "delegated" and producer.placement:
                endpoints = [self.storages[n].endpoint for n in producer.placement if n in self.storages]
                if len(endpoints) != len(producer.placement):
                    return None
                inputs[name] = [self._where(endpoints), obj.name]
                after[name] = [producer.id, producer.token]
            else:
                return None
        return (inputs, after) if after else None

    def _still_placeable(self, placement: list[str]) -> bool:
        now = time.monotonic()
        return all((s := self.storages.get(n)) is not None and s.ready and s.full_until <= now for n in placement)

    def _place(self, job: Job) -> list[str] | None:
        """Storage nodes for a job's outputs: its placement if still good, else new ones."""
        now = time.monotonic()
        live = [s for s in self.storages.values() if s.ready and s.full_until <= now]
        if job.placement:
            kept = [n for n in job.placement if n in self.storages and self.storages[n].full_until <= now]
            if len(kept) == len(job.placement):
                return job.placement
        chosen = []
        for _ in range(min(self.replicas, len(live))):
            s = pick_storage([c for c in live if c.node not in chosen])
            if s is None:
                break
            s.placed += 1
            chosen.append(s.node)
        return chosen or None

    def _live_locations(self, obj: Any) -> list[StorageRef]:
        out = []
        for node_id in obj.locs:
            s = self.storages.get(node_id)
            if s is not None and s.ready:
                out.append(s)
        return out

    def _live_location(self, obj: Any) -> StorageRef | None:
        copies = self._live_locations(obj)
        return copies[0] if copies else None

    def _input_locations(self, job: Job) -> dict[str, list[str]] | None:
        """Where to read each input: [storage endpoint, final object name].

        None if some input has no live copy: the job waits on it again (it
        comes back with its storage node, or lineage makes it anew).
        """
        out = {}
        missing = []
        for name, ref in job.spec.refs.items():
            obj = self.graph.resolve(ref)
            copies = self._live_locations(obj) if obj.state == "finished" else []
            if not copies:
                missing.append(obj)
                continue
            out[name] = self._finished_input(obj, copies)
        if missing:
            job.missing = 0
            for obj in missing:
                if obj.state == "finished":
                    obj.state = "lost"
                    obj.lost_at = obj.lost_at or time.monotonic()
                    self._lost_objects.add(obj.name)
                self.graph.wait_on(job, obj)
            return None
        return out

    async def _dispatch(self, node: ComputeRef, items: list[tuple[Job, dict, dict | None]]) -> None:
        """Start the jobs, one message per node.

        A first attempt's outputs are created by the task's first write (under
        its token); creating them here as well cost a storage message and a
        commit per dispatch and told nobody anything. A retry's creates must
        land before the start: they replace what the earlier attempt left,
        under the new attempt's token (the fence against it).
        """
        failed: dict[str, str] = {}
        # The attempt this dispatch is for. While we await storage and the
        # node, the job may fail soft and go elsewhere (its node was declared
        # lost, say): news about this dispatch must then leave it alone.
        tokens = {j.id: j.token for j, _, _ in items}

        def ours(job: Job | None) -> bool:
            return (job is not None and job.state == RUNNING and job.node == node.node
                    and job.token == tokens.get(job.id))

        retries = [j for j, _, _ in items if j.attempts > 1]
        if retries:
            await self._create_outputs(retries, True, failed)
        starts = []
        for job, inputs, after in items:
            if job.id in failed:
                continue
            if not ours(job):
                continue
            if job.attempts > 1 and job.spec.outputs and self._outputs_finished(job):
                # Every output was made by an earlier attempt: adopt, don't rerun.
                node.unassign(job.id)
                self._awaiting.pop(job.id, None)
                self.graph.succeed(job)
                self.stats["succeeded"] += 1
                continue
            endpoints = [self.storages[n].endpoint for n in job.placement or () if n in self.storages]
            if job.spec.outputs and len(endpoints) != len(job.placement or ()):
                failed[job.id] = f"a storage node for its outputs ({', '.join(job.placement)}) is gone"
                continue
            target = self._where(endpoints)
            start = {
                "job": job.id,
                "spec": job.spec.to_wire(),
                "inputs": inputs,
                "outputs": {o: target for o in job.spec.outputs},
                "token": job.token,
            }
            if after:
                start["after"] = after
            starts.append(start)
        if starts:
            try:
                r = await self.peers.get(node.endpoint).call("start_many", {"tasks": starts, "epoch": self.epoch})
                for t in r.get("tasks", []):
                    job = self.graph.jobs.get(t.get("job"))
                    if not ours(job):
                        continue
                    if "error" in t:
                        node.unassign(job.id)
                        self.graph.fail(job, f"compute node refused the job: {t['error'].get('message')}")
                    elif isinstance(t.get("token"), int) and t["token"] < job.token and t.get("state") != "done":
                        # The node still runs an earlier attempt of this job
                        # (it answers a start with the task it has): follow
                        # that one, or its end would be taken for a late
                        # result and the job would wait forever.
                        job.token = t["token"]
            except _NET_ERRORS as e:
                self._check_fenced(e)
                for s in starts:
                    failed[s["job"]] = f"starting on {node.node}: {e}"
        for jid, cause in failed.items():
            job = self.graph.jobs.get(jid)
            if ours(job):
                self._soft_failure(job, cause)
        self._drain()

    async def _create_outputs(self, jobs: list[Job], replace: bool, failed: dict[str, str]) -> None:
        """One create_many per storage node for the outputs of `jobs`."""
        by_storage: dict[str, list] = defaultdict(list)
        for job in jobs:
            for node_id in job.placement or ():
                for name in job.outputs():
                    by_storage[node_id].append([name, job.token])
        for storage_id, objs in by_storage.items():
            storage = self.storages.get(storage_id)
            owners = [j for j in jobs if storage_id in (j.placement or ())]
            if storage is None:
                for job in owners:
                    failed[job.id] = f"storage node {storage_id} is gone"
                continue
            try:
                r = await self.peers.get(storage.endpoint).call(
                    "create_many", {"items": objs, "replace": replace, "epoch": self.epoch}
                )
            except _NET_ERRORS as e:
                for job in owners:
                    failed[job.id] = f"creating outputs on {storage_id}: {e}"
                continue
            scavenge: list[str] = []
            for name, err in (r.get("errors") or {}).items():
                # "exists": the producer's first write got there first.
                if err.get("code") not in ("immutable", "exists"):
                    failed[name.split("/", 1)[0]] = f"creating {name}: {err.get('message')}"
                elif isinstance(err.get("info"), dict) and err["info"].get("state") == "finished":
                    # An earlier attempt finished it (its node died before
                    # saying so): the same news as storage's `finished` event.
                    self._apply_object(storage, err["info"], scavenge)

    async def _lineage(self) -> None:
        """Objects lost with their storage node past the grace period are made again."""
        while True:
            await trio.sleep(max(0.05, min(1.0, self.storage_grace / 4)))
            if self._lost_objects:
                self._regenerate_lost()

    def _regenerate_lost(self) -> None:
        g = self.graph
        deadline = time.monotonic() - self.storage_grace
        # A rerun job waits on its own lost inputs, which makes them needed:
        # repeat until nothing changes (lineage is recursive).
        progress = True
        while progress:
            progress = False
            for name in list(self._lost_objects):
                obj = g.objects.get(name)
                if obj is None or obj.state != "lost":
                    self._lost_objects.discard(name)
                    continue
                if not obj.waiters or (obj.lost_at or 0) > deadline:
                    continue  # nobody needs it (yet), or its node may still come back
                producer = g.jobs.get(obj.producer or "")
                if producer is None or producer.state in (FAILED, CANCELLED):
                    waiters, obj.waiters = obj.waiters, None
                    for wid in waiters:
                        w = g.jobs.get(wid)
                        if w is not None and not w.done:
                            g.fail(w, f"input {name} was lost with its storage node and no job can make it again")
                    self._lost_objects.discard(name)
                    progress = True
                elif producer.state == SUCCEEDED:
                    log.warning("output %s was lost with its storage node; running %s again", name, producer.id)
                    for out in producer.outputs():
                        self._lost_objects.discard(out)
                        o = g.objects.get(out)
                        if o is not None and o.state == "lost":
                            o.state = "unknown"
                    self.stats["lineage_reruns"] += 1
                    g.rerun(producer, f"output {name} was lost with its storage node")
                    progress = True
                else:
                    self._lost_objects.discard(name)  # already waiting or running: it will make it
        self._drain()

    async def _janitor(self) -> None:
        """Delete finished tasks' results on compute nodes, in batches."""
        while True:
            await trio.sleep(0.5)
            pending, self._to_delete = self._to_delete, defaultdict(list)
            for node_id, jobs in pending.items():
                ref = self.computes.get(node_id)
                if ref is None:
                    continue
                try:
                    await self.peers.get(ref.endpoint).call("delete", {"jobs": jobs, "epoch": self.epoch})
                except _NET_ERRORS as e:
                    log.debug("deleting task results on %s: %s", node_id, e)

    # -- user ops ------------------------------------------------------------------------
    async def _op_submit(self, body: Any, ctx: CallContext) -> dict[str, Any]:
        """{jobs: [spec wire...]} -> {jobs: [{job, state, outputs, cached}]}.

        All specs are validated before any is accepted; within one call a job
        may read the outputs of jobs listed before or after it.
        """
        if not isinstance(body, dict) or not isinstance(body.get("jobs"), list) or not body["jobs"]:
            raise _bad("submit needs 'jobs': a non-empty list of job specs")
        g = self.graph
        specs = []
        for i, wire in enumerate(body["jobs"]):
            try:
                spec = JobSpec.from_wire(wire)
            except SpecError as e:
                raise SpecError(f"job #{i + 1}: {e}") from None
            specs.append((spec.job_id(), spec))
        pending = {f"{jid}/{o}" for jid, spec in specs for o in spec.outputs}
        for i, (_, spec) in enumerate(specs):
            try:
                g.check_inputs(spec, pending)
            except SpecError as e:
                raise SpecError(f"job #{i + 1}: {e}") from None
        results = []
        new_jobs = []
        for jid, spec in specs:
            job = g.jobs.get(jid)
            cached = False
            if job is None:
                job = g.add_job(jid, spec)
                new_jobs.append(job)
                self.journal.stage_new(job)
            elif job.state in (FAILED, CANCELLED):
                # Resubmitting a failed job runs it again.
                job.state, job.outcome, job.cause, job.finished, job.attempts = WAITING, None, None, None, 0
                job.excused = 0
                job.priority = spec.priority
                new_jobs.append(job)
                self.journal.stage(job)
            else:
                cached = job.state == SUCCEEDED
                if spec.priority > job.priority:
                    job.priority = spec.priority
            results.append((job, cached))
        for job in new_jobs:
            g.link_inputs(job)
        self._drain()
        await self.commits.durable()
        self._kick()
        return {"jobs": [{"job": j.id, "state": j.state, "outputs": j.outputs(), "cached": c} for j, c in results]}

    def _jobs_arg(self, body: Any) -> list[str]:
        jobs = body.get("jobs") if isinstance(body, dict) else None
        if not isinstance(jobs, list) or not all(isinstance(j, str) for j in jobs):
            raise _bad("'jobs' must be a list of job ids")
        return jobs

    def _job(self, jid: str) -> Job:
        check_job_id(jid)
        job = self.graph.jobs.get(jid)
        if job is None:
            raise BusError(f"no job {jid!r}", code="missing")
        return job

    def _final(self, job: Job) -> Job:
        """Follow delegations: the job whose outcome decides this one's output."""
        hops = 0
        while job.delegate and job.state == SUCCEEDED and hops < 10_000:
            nxt = self.graph.jobs.get(job.delegate)
            if nxt is None:
                break
            job = nxt
            hops += 1
        return job

    def _view(self, job: Job, now: float) -> dict[str, Any]:
        d = job.summary(now)
        final = self._final(job)
        if final is not job:
            d["final"] = final.summary(now)
        return d

    def _op_status(self, body: Any, ctx: CallContext) -> dict[str, Any]:
        now = time.time()
        if isinstance(body, dict) and "jobs" in body:
            return {"jobs": [self._view(self._job(j), now) for j in self._jobs_arg(body)]}
        limit = body.get("limit", 1000) if isinstance(body, dict) else 1000
        if type(limit) is not int or limit < 0:
            raise _bad(f"'limit' must be a non-negative integer, got {limit!r}")
        jobs = sorted(self.graph.jobs.values(), key=lambda j: j.seq)[-limit:] if limit else []
        return {"jobs": [self._view(j, now) for j in jobs], "counts": self.graph.counts()}

    async def _op_wait(self, body: Any, ctx: CallContext) -> dict[str, Any]:
        """Wait until every job is finished (following delegations) or timeout."""
        jids = self._jobs_arg(body)
        timeout = body.get("timeout", 30.0)
        if not isinstance(timeout, int | float) or not 0 <= timeout <= 300:
            raise _bad("'timeout' must be 0..300 seconds")
        jobs = [self._job(j) for j in jids]
        w = _Waiter()
        for j in jobs:
            final = self._final(j)
            if not final.done:
                self._watchers.setdefault(final.id, []).append(w)
                w.ids.append(final.id)
                w.remaining += 1
        try:
            if w.remaining:
                with trio.move_on_after(timeout):
                    await w.event.wait()
        finally:
            for jid in w.ids:
                lst = self._watchers.get(jid)
                if lst and w in lst:
                    lst.remove(w)
                    if not lst:
                        del self._watchers[jid]
        now = time.time()
        return {"jobs": [self._view(j, now) for j in jobs], "done": all(self._final(j).done for j in jobs)}

    def _op_locate(self, body: Any, ctx: CallContext) -> dict[str, Any]:
        """Where an object's bytes are: {object} -> {name, state, storage endpoint}."""
        name = body.get("object") if isinstance(body, dict) else None
        split_object_name(name)
        if name not in self.graph.objects:
            raise BusError(f"no object {name!r}", code="missing")
        obj = self.graph.resolve(name)
        copies = [s.endpoint for s in self._live_locations(obj)]
        producer = self.graph.jobs.get(obj.producer or "")
        out = {
            "name": obj.name,
            "state": obj.state,
            "storage": copies[0] if copies else None,
            "copies": copies,
            "producer": producer.summary() if producer else None,
        }
        if obj.state == "finished" and obj.data is not None:
            out["data"] = obj.data  # small: the reader needs no second hop
        return out

    async def _op_cancel(self, body: Any, ctx: CallContext) -> dict[str, Any]:
        jids = self._jobs_arg(body)
        out = []
        for jid in jids:
            job = self._job(jid)
            if not job.done:
                node = self.computes.get(job.node or "") if job.state == RUNNING else None
                if node is not None:
                    node.unassign(job.id)
                    self.nursery.start_soon(self._cancel_task, node, job.id)
                self.graph.fail(job, "cancelled by user", outcome="cancelled", state=CANCELLED)
            out.append(job.summary())
        self._drain()
        await self.commits.durable()
        return {"jobs": out}

    async def _cancel_task(self, node: ComputeRef, jid: str) -> None:
        try:
            await self.peers.get(node.endpoint).call("cancel", {"job": jid, "epoch": self.epoch})
        except _NET_ERRORS as e:
            log.info("cancelling %s on %s: %s", jid, node.node, e)

    def _op_nodes(self, body: Any, ctx: CallContext) -> dict[str, Any]:
        nodes = [c.view() for c in self.computes.values()] + [s.view() for s in self.storages.values()]
        return {"nodes": nodes}

    def _op_stats(self, body: Any, ctx: CallContext) -> dict[str, Any]:
        g = self.graph
        waited = [time.time() - j.submitted for j in g.jobs.values() if j.state in (WAITING, RUNNABLE)]
        return {
            "jobs": g.counts(),
            "runnable": g.runnable_count,
            "objects": len(g.objects),
            "computes": len(self.computes),
            "storages": len(self.storages),
            "slots": sum(c.slots for c in self.computes.values()),
            "busy": sum(len(c.running) for c in self.computes.values()),
            "longest_wait": max(waited, default=0.0),
            "epoch": self.epoch,
            "uptime": time.time() - self.started_at,
            **self.stats,
        }
