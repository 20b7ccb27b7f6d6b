"""The coordinator's shell: wire messages in, effects out.

It calls compute and storage; they never call it (news comes back through
their event queues, which it long-polls, one poller per node). Every
decision is the state's (state.py): this module parses requests and news
into typed calls, and carries out the effects they return (effects.py).
The hot path per scheduling round is: the state pops the most-needed
runnable jobs and marks them running, then one `create_many` per storage
node (retries only) and one `start_many` per compute node for the round.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import trio

from weft.actors.groupcommit import GroupCommit
from weft.actors.model import JobSpec, SpecError, check_job_id, split_object_name
from weft.bus.beacon import BeaconListener, PeerInfo
from weft.bus.endpoint import check_endpoint
from weft.bus.errors import BusError, CallTimeout, RemoteError
from weft.bus.heartbeat import Liveness
from weft.bus.rpc import CallContext, PeerClosed
from weft.runtime.node import Node, NodeConfig

from . import news
from .effects import (
    Dispatch,
    DropPeer,
    Effect,
    JournalWrite,
    Kick,
    Scavenge,
    Send,
    StopPoller,
    Track,
    Waiter,
    Wake,
)
from .graph import RUNNABLE, WAITING, Job
from .journal import Journal
from .nodes import ComputeRef, NodeRef, StorageRef
from .replay import replay
from .state import CoordinatorState
from .views import job_detail

log = logging.getLogger("weft.coordinator")

_NET_ERRORS = (CallTimeout, PeerClosed, RemoteError, trio.ClosedResourceError)


def _bad(message: str) -> BusError:
    return BusError(message, code="bad-request")


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
        if replicas < 1:
            raise ValueError("replicas must be at least 1")
        self.journal = Journal(self.data_dir / "journal.sqlite")
        self.commits = GroupCommit(self.journal.commit, what="job journal", delay=0.01)
        self.poll_timeout = poll_timeout
        # Paranoid Pirate: ping after a third of the timeout, at most every second.
        interval = heartbeat_interval or min(1.0, heartbeat_timeout / 3)
        self.liveness = Liveness(interval=interval, timeout=heartbeat_timeout, on_lost=self._node_lost)
        self.epoch = int(self.journal.get_meta("epoch", 0)) + 1
        self.journal.set_meta("epoch", self.epoch)
        self.state = CoordinatorState(
            epoch=self.epoch, replicas=replicas, storage_grace=storage_grace,
            prefetch=prefetch, follow_ahead=follow_ahead,
        )
        self.graph = self.state.graph
        # Hook for placement (issue 15, owned by the planner): avoid storage nodes pinged and not answering.
        self.state.planner.slow = lambda s: self.liveness.unanswered(f"storage/{s.node}")
        self._wake = trio.Event()
        self.started_at = time.time()
        replay(self.journal, self.state)

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

    # -- carrying out effects ------------------------------------------------------------
    def _run(self, effects: list[Effect]) -> None:
        for e in effects:
            t = type(e)
            if t is JournalWrite:
                journal = self.journal
                for job in e.new:
                    journal.stage_new(job)
                for job in e.changed:
                    journal.stage(job)
                self.commits.mark()
            elif t is Kick:
                self._wake.set()
            elif t is Dispatch:
                self.nursery.start_soon(self._dispatch, e)
            elif t is Wake:
                e.waiter.event.set()
            elif t is Send:
                self.nursery.start_soon(self._send, e)
            elif t is Scavenge:
                self.nursery.start_soon(self._scavenge, e.storage, e.names)
            elif t is StopPoller:
                if e.ref.scope is not None:
                    e.ref.scope.cancel()
            elif t is DropPeer:
                self.peers.drop(e.endpoint)
            elif t is Track:
                self._watch(e.ref)

    async def _send(self, e: Send) -> None:
        try:
            await self.peers.get(e.endpoint).call(e.op, e.body)
        except _NET_ERRORS as err:
            log.log(e.level, "%s: %s", e.what, err)

    def _check_fenced(self, e: Exception) -> None:
        if isinstance(e, RemoteError) and e.code == "fenced" and not self.state.fenced:
            self.state.fenced = True
            log.critical("a newer coordinator took over this cluster (%s); this one stops scheduling", e.message)

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
        effects = self.state.meet(role, node, endpoint, inc)
        if effects:
            self._run(effects)
        else:
            self.liveness.seen(f"{role}/{node}")

    def _watch(self, ref: NodeRef) -> None:
        peer = self.peers.get(ref.endpoint)
        # Keyed by role too: a compute and a storage node may share an id.
        self.liveness.watch(f"{ref.role}/{ref.node}",
                            lambda: peer.call("ping", {"epoch": self.epoch}, timeout=self.liveness.interval * 2))
        self.nursery.start_soon(self._track, ref)

    def _node_lost(self, key: str) -> None:
        role, _, node = key.partition("/")
        self._run(self.state.node_lost(role, node))

    async def _track(self, ref: NodeRef) -> None:
        """Take the node's inventory, then follow its events; re-inventory on resync."""
        state = self.state
        with trio.CancelScope() as scope:
            ref.scope = scope
            peer = self.peers.get(ref.endpoint)
            backoff = 0.1
            while True:
                try:
                    inv = await peer.call("list", {}, timeout=30)
                    ref.inc = inv.get("inc")
                    since = inv.get("next", 0)
                    if isinstance(ref, ComputeRef):
                        slots, tasks = news.compute_inventory(inv)
                        self._run(state.compute_inventory(ref, slots, tasks))
                    else:
                        assert isinstance(ref, StorageRef)
                        await self._storage_usage(ref)
                        scavenge, effects = state.storage_inventory(ref, news.storage_inventory(inv))
                        if scavenge:
                            await self._scavenge(ref, scavenge)
                        self._run(effects)
                    ref.last_seen = time.time()
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
                                self._run(state.task_news(ref, news.task_events(events)))
                            else:
                                self._run(state.storage_events(ref, news.storage_events(events)))
                        since = r.get("next", since)
                except _NET_ERRORS as e:
                    self._check_fenced(e)
                    log.debug("%s %s: %s", ref.role, ref.node, e)
                    await trio.sleep(backoff)
                    backoff = min(backoff * 2, 2.0)

    async def _storage_usage(self, ref: StorageRef) -> None:
        try:
            usage = await self.peers.get(ref.endpoint).call("usage", {})
            ref.free_bytes = int(usage.get("free", 0))
        except _NET_ERRORS:
            pass

    async def _scavenge(self, ref: StorageRef, names: list[str]) -> None:
        """Partial objects nobody is writing: delete them (a rerun re-creates them)."""
        log.info("scavenging %d partial objects on %s", len(names), ref.node)
        try:
            await self.peers.get(ref.endpoint).call("delete", {"names": names, "epoch": self.epoch})
        except _NET_ERRORS as e:
            log.warning("scavenging on %s failed: %s", ref.node, e)
        self.state.scavenged(names)

    # -- the scheduler's loops ----------------------------------------------------------
    async def _scheduler(self) -> None:
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            delay = self.state.settle_until - time.monotonic()
            if delay > 0:
                await trio.sleep(delay)
            self._run(self.state.schedule_round())

    async def _dispatch(self, d: Dispatch) -> None:
        """Start the jobs, one message per node (see dispatch.py for the rules)."""
        state = self.state
        failed: dict[str, str] = {}
        tokens = state.attempt_tokens(d)
        for storage_id, storage, objs, owners in state.retry_creates(d):
            if storage is None:
                for job in owners:
                    failed[job.id] = f"storage node {storage_id} is gone"
                continue
            try:
                r = await self.peers.get(storage.endpoint).call(
                    "create_many", {"items": objs, "replace": True, "epoch": self.epoch}
                )
            except _NET_ERRORS as e:
                for job in owners:
                    failed[job.id] = f"creating outputs on {storage_id}: {e}"
                continue
            errors = []
            for name, err in (r.get("errors") or {}).items():
                if not isinstance(name, str) or not isinstance(err, dict):
                    continue
                info = err.get("info")
                done = news.object_news(info) if isinstance(info, dict) and info.get("state") == "finished" else None
                errors.append((name, err.get("code"), err.get("message"), done))
            state.creates_answered(storage, errors, failed)
        node = d.node
        starts = state.start_messages(d, tokens, failed)
        if starts:
            try:
                r = await self.peers.get(node.endpoint).call("start_many", {"tasks": starts, "epoch": self.epoch})
                answers = []
                for t in r.get("tasks", []):
                    if not isinstance(t, dict) or not isinstance(t.get("job"), str):
                        continue
                    err = t.get("error")
                    token = t.get("token")
                    answers.append((
                        t.get("job"), err.get("message") if isinstance(err, dict) else None,
                        token if isinstance(token, int) else None, t.get("state"),
                    ))
                state.starts_answered(d, tokens, answers)
            except _NET_ERRORS as e:
                self._check_fenced(e)
                for s in starts:
                    failed[s["job"]] = f"starting on {node.node}: {e}"
        self._run(state.dispatch_ended(d, tokens, failed))

    async def _lineage(self) -> None:
        """Objects lost with their storage node past the grace period are made again."""
        while True:
            await trio.sleep(max(0.05, min(1.0, self.state.storage_grace / 4)))
            if self.state.lost_objects:
                self._run(self.state.regenerate_lost())

    async def _janitor(self) -> None:
        """Delete finished tasks' results on compute nodes, in batches."""
        while True:
            await trio.sleep(0.5)
            for ref, jobs in self.state.take_deletions():
                try:
                    await self.peers.get(ref.endpoint).call("delete", {"jobs": jobs, "epoch": self.epoch})
                except _NET_ERRORS as e:
                    log.debug("deleting task results on %s: %s", ref.node, e)

    # -- user ops ------------------------------------------------------------------------
    async def _op_submit(self, body: Any, ctx: CallContext) -> dict[str, Any]:
        """{jobs: [spec wire...]} -> {jobs: [{job, state, outputs, cached, joined, differs}]}.

        `cached`: it had finished successfully; `joined`: it is queued or
        running; `differs`: settings asked for that the existing job does
        not have and that are not part of its identity (priority, time_limit).
        """
        if not isinstance(body, dict) or not isinstance(body.get("jobs"), list) or not body["jobs"]:
            raise _bad("submit needs 'jobs': a non-empty list of job specs")
        specs = []
        for i, wire in enumerate(body["jobs"]):
            try:
                specs.append(JobSpec.from_wire(wire))
            except SpecError as e:
                raise SpecError(f"job #{i + 1}: {e}") from None
        results, effects = self.state.submit(specs)
        self._run(effects)
        await self.commits.durable()
        self._wake.set()
        return {"jobs": [
            {"job": s.job.id, "state": s.job.state, "outputs": s.job.outputs(), "cached": s.cached,
             "joined": s.joined, "differs": s.differs}
            for s in results
        ]}

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

    def _view(self, job: Job, now: float, detail: bool = False) -> dict[str, Any]:
        d = job.summary(now)
        if detail:
            job_detail(job, d)
        final = self.state.final(job)
        if final is not job:
            d["final"] = final.summary(now)
        return d

    def _op_status(self, body: Any, ctx: CallContext) -> dict[str, Any]:
        now = time.time()
        if isinstance(body, dict) and "jobs" in body:
            return {"jobs": [self._view(self._job(j), now, True) for j in self._jobs_arg(body)]}
        limit = body.get("limit", 1000) if isinstance(body, dict) else 1000
        if type(limit) is not int or limit < 0:
            raise _bad(f"'limit' must be a non-negative integer, got {limit!r}")
        jobs = sorted(self.graph.jobs.values(), key=lambda j: j.seq)[-limit:] if limit else []
        return {"jobs": [self._view(j, now, True) for j in jobs], "counts": self.graph.counts()}

    async def _op_wait(self, body: Any, ctx: CallContext) -> dict[str, Any]:
        """Wait until every job is finished (following delegations) or timeout."""
        jids = self._jobs_arg(body)
        timeout = body.get("timeout", 30.0)
        if not isinstance(timeout, int | float) or not 0 <= timeout <= 300:
            raise _bad("'timeout' must be 0..300 seconds")
        jobs = [self._job(j) for j in jids]
        w = self.state.watch(jobs, Waiter(trio.Event()))
        try:
            if w.remaining:
                with trio.move_on_after(timeout):
                    await w.event.wait()
        finally:
            self.state.unwatch(w)
        now = time.time()
        return {"jobs": [self._view(j, now) for j in jobs], "done": all(self.state.final(j).done for j in jobs)}

    def _op_locate(self, body: Any, ctx: CallContext) -> dict[str, Any]:
        """Where an object's bytes are: {object} -> {name, state, storage endpoint}."""
        name = body.get("object") if isinstance(body, dict) else None
        split_object_name(name)
        if name not in self.graph.objects:
            raise BusError(f"no object {name!r}", code="missing")
        obj = self.graph.resolve(name)
        copies = [s.endpoint for s in self.state.planner.live_locations(obj)]
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
        jobs = [self._job(j) for j in self._jobs_arg(body)]
        self._run(self.state.cancel(jobs))
        out = [job.summary() for job in jobs]
        await self.commits.durable()
        return {"jobs": out}

    def _op_nodes(self, body: Any, ctx: CallContext) -> dict[str, Any]:
        s = self.state
        return {"nodes": [c.view() for c in s.computes.values()] + [x.view() for x in s.storages.values()]}

    def _op_stats(self, body: Any, ctx: CallContext) -> dict[str, Any]:
        g = self.graph
        s = self.state
        waited = [time.time() - j.submitted for j in g.jobs.values() if j.state in (WAITING, RUNNABLE)]
        return {
            "jobs": g.counts(),
            "runnable": g.runnable_count,
            "objects": len(g.objects),
            "computes": len(s.computes),
            "storages": len(s.storages),
            "slots": sum(c.slots for c in s.computes.values()),
            "busy": sum(len(c.running) for c in s.computes.values()),
            "longest_wait": max(waited, default=0.0),
            "epoch": self.epoch,
            "uptime": time.time() - self.started_at,
            **s.stats,
        }
