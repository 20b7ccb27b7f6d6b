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
from typing import TYPE_CHECKING, Any

import trio

from weft.actors.groupcommit import GroupCommit
from weft.actors.model import check_job_id
from weft.bus.errors import BusError, RemoteError
from weft.bus.heartbeat import Liveness
from weft.bus.rpc import CallContext
from weft.protocol.enums import ErrorCode, Wake
from weft.protocol.events import Ping, Poll, PollReply
from weft.protocol.fields import BadRequest
from weft.protocol.jobs import (
    Hello,
    Locate,
    LocateReply,
    Status,
    Wait,
    WaitReply,
)
from weft.protocol.objects import (
    CreateMany,
    CreateManyReply,
    DeleteObjects,
    ListObjects,
)
from weft.protocol.tasks import DeleteTasks, StartMany
from weft.runtime.node import Node, NodeConfig

from . import control_ops, drain, follow, gc_ops, keys_ops, news, submission_ops, submit_ops, usage
from . import owners as owning
from .attempts import views as attempt_views
from .collector import collect_less
from .copies import _ANSWER_ERRORS, _NET_ERRORS, CopyLoops
from .credentials import JobCredentials
from .dispatch import never_started
from .effects import (
    Copy,
    Dispatch,
    DropPeer,
    Effect,
    JournalWrite,
    Kick,
    Scavenge,
    Send,
    StopPoller,
    Track,
    Trim,
    Waiter,
)
from .effects import Wake as WakeWaiter
from .flows import FlowError
from .gc import DEFAULT_KEEP
from .graph import FINISHED, WAITING, Job
from .journal import Journal
from .nodes import ComputeRef, NodeRef, StorageRef, set_resources
from .overview import ClusterViews
from .queue import QueueBound
from .replay import replay
from .state import CoordinatorState
from .views import job_detail, wait_row

if TYPE_CHECKING:
    from weft.bus.beacon import BeaconListener, PeerInfo

log = logging.getLogger("weft.coordinator")

# A retry's creates (one small metadata write per output) wait at least
# this long for a storage node before the job is placed elsewhere.
_CREATE_BOUND_MIN = 1.0

# How long background journal changes (dispatches, ends) gather before one
# commit; a submit or an op that awaits durability cuts it short. A commit
# costs ~100-150 us of CPU (a worker thread's hop, SQLite's transaction and
# its WAL pages) whatever it holds: at 10 ms a `commands` run made 0.24
# commits a job (~4 jobs each), 30-40 us a job of the commit thread alone.
# A change lost with a killed coordinator comes back from the compute node's
# inventory (or the job runs again), as with any window; this one is 30 ms
# (50 ms saves little more: there are at most 1/delay commits a second).
_BACKGROUND_COMMIT = 0.03
# How long a busy compute node's poll answer may wait for more task ends
# (`gather`, bus/events.py): only while more tasks wait there than it has
# CPUs (Resources.backlogged), so an idle node, or a chain's hop, answers at
# once. At 1 slot and ~1-3 ms a `true` command each answer carried ~1.2
# ends: 0.85 poll round trips a job, now ~0.22 (with 5 ms: 0.29).
GATHER = 0.01


class CoordinatorNode(ClusterViews, CopyLoops, JobCredentials, Node):
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
        follow_ahead: int = 4,
        repair_per_node: int = 8,
        repair_copies: int = 32,
        retry_backoff: float = 2.0,
        retry_backoff_max: float = 60.0,
        max_soft_retries: int = 5,
        max_queue: int = 1_000_000,
        keep: float = DEFAULT_KEEP,
        time_windows: list | None = None,
        reserve_after: float = 30.0,
        steal_after: float = 0.5,
        max_user_priority: int = 0,
    ) -> None:
        if config.data_dir is None:
            raise ValueError("a coordinator needs a data directory")
        self.data_dir = Path(config.data_dir).resolve()
        super().__init__(config)
        if replicas < 1:
            raise ValueError("replicas must be at least 1")
        self.journal = Journal(self.data_dir / "journal.sqlite")
        self.commits = GroupCommit(self._commit_journal, what="job journal", delay=_BACKGROUND_COMMIT)
        self.poll_timeout = poll_timeout
        # Paranoid Pirate: ping after a third of the timeout, at most every second.
        interval = heartbeat_interval or min(1.0, heartbeat_timeout / 3)
        self.liveness = Liveness(interval=interval, timeout=heartbeat_timeout, on_lost=self._node_lost)
        self.beacons: BeaconListener | None = None
        self.epoch = int(self.journal.get_meta("epoch", 0)) + 1
        self.journal.set_meta("epoch", self.epoch)
        self.state = CoordinatorState(
            epoch=self.epoch, replicas=replicas, storage_grace=storage_grace,
            prefetch=prefetch, follow_ahead=follow_ahead, repair_per_node=repair_per_node,
            repair_total=repair_copies,
            retry_backoff=retry_backoff, retry_backoff_max=retry_backoff_max,
            max_soft_retries=max_soft_retries, time_windows=time_windows,
        )
        self.queue_bound = QueueBound(max_queue)
        self.graph = self.state.graph
        # Hook for placement (issue 15, owned by the planner): avoid storage nodes pinged and not answering.
        self.state.planner.slow = lambda s: self.liveness.unanswered(f"storage/{s.node}")
        self.state.planner.placing.reserve_after = reserve_after
        self.state.planner.stealing.after = steal_after
        self._wake = trio.Event()
        self.started_at = time.time()
        self.fenced_why = ""  # what told us a newer coordinator took over (`weft stats`)
        # ROLE/NODE -> the key name its hello came with; nodes whose key was revoked (keys_ops.py).
        self.node_keys: dict[str, str] = {}
        self.revoked: dict[str, dict[str, Any]] = {}
        # Finished jobs are forgotten after this long (gc.py, gc_ops.py).
        self.keep = keep
        self.max_user_priority = max_user_priority  # (owners.check_submit)
        self.gc_lock = trio.Lock()
        self.manifests: dict[str, tuple[str, ...]] = {}  # content manifest -> its files (prune.py)
        replay(self.journal, self.state)

    # -- setup ---------------------------------------------------------------------
    def register(self) -> None:
        add = self.server.add
        add("hello", self._op_hello, bypass=True)
        submit_ops.register(self)  # submit
        add("status", self._op_status, bypass=True)
        add("wait", self._op_wait, bypass=True)
        add("locate", self._op_locate, bypass=True)
        control_ops.register(self)  # cancel, jobs, pause, resume, groups, group
        add("nodes", self._op_nodes, bypass=True)
        drain.register(self)  # drain, undrain
        add("stats", self._op_stats, bypass=True)
        # Following a job: relayed from the compute node running it (follow.py).
        add("logs", self._op_logs, bypass=True)
        add("progress", self._op_progress, bypass=True)
        gc_ops.register(self)  # delete, gc
        self.server.add("prune", self._op_prune)  # content objects nothing refers to (prune.py)
        submission_ops.register(self)  # tree, decommission, recurring
        keys_ops.register(self)  # keys (an admin's allow-list change, passed on to every node)

    def describe(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "jobs": len(self.graph.jobs)}

    async def main(self, nursery: trio.Nursery) -> None:
        collect_less()
        nursery.start_soon(self.commits.run)
        nursery.start_soon(self.liveness.run)
        nursery.start_soon(self._scheduler)
        nursery.start_soon(self._janitor)
        nursery.start_soon(self._lineage)
        nursery.start_soon(self._repair)
        nursery.start_soon(gc_ops.periodic, self)
        nursery.start_soon(submission_ops.recurring_loop, self)
        nursery.start_soon(usage.refresh_loop, self)
        cfg = self.config
        if cfg.beacon and not cfg.coordinator:
            # Loaded only with beacons on: not in every start's image.
            from weft.bus.beacon import BeaconListener

            self.beacons = BeaconListener(
                cluster=cfg.cluster, port=cfg.beacon_port, bind=self.beacon_bind, ignore_node=self.node_id,
                on_found=self._beacon_found, expiry=max(5.0, cfg.beacon_interval * 5),
            )
            nursery.start_soon(self.beacons.run)

    async def shutdown(self) -> None:
        # Let a commit in flight in its worker thread end first: the journal
        # must not be closed under it.
        with trio.move_on_after(5):
            try:
                await self.commits.durable()
            except Exception as e:
                log.warning("journal: last commit before stopping failed: %s", e)
        self.journal.close()

    async def _commit_journal(self) -> None:
        """One group commit, written from a worker thread: a commit of
        thousands of rows must not stall every other call."""
        batch = self.journal.take()
        if batch is None:
            return
        try:
            await trio.to_thread.run_sync(self.journal.write, batch)
        except BaseException:
            self.journal.put_back(batch)
            raise

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
                if e.attempts:
                    journal.stage_attempts(e.attempts)
                self.commits.mark()
                if e.changed:
                    submission_ops.publish_ends(self, e.changed)  # for `weft events`
            elif t is Kick:
                self._wake.set()
            elif t is Dispatch:
                self.nursery.start_soon(self._dispatch, e)
            elif t is WakeWaiter:
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
            elif t is Copy:
                self.nursery.start_soon(self._copy, e)
            elif t is Trim:
                self.nursery.start_soon(self._trim, e)

    async def _send(self, e: Send) -> None:
        try:
            await self.peers.get(e.endpoint).call(e.op, e.body.to_wire())
        except _NET_ERRORS as err:
            log.log(e.level, "%s: %s", e.what, err)

    def _check_fenced(self, e: Exception) -> None:
        if isinstance(e, RemoteError) and e.code == ErrorCode.FENCED and not self.state.fenced:
            self.state.fenced = True
            self.fenced_why = f"{e.message} (answer of {e.peer or 'a node'} to {e.op!r})"
            log.critical("a newer coordinator took over this cluster (%s); this one stops scheduling", e.message)

    # -- discovery -------------------------------------------------------------------
    def _beacon_found(self, peer: PeerInfo) -> None:
        if f"{peer.role}/{peer.node}" not in self.revoked:
            self._meet(peer.role, peer.node, peer.endpoint, None)

    def _op_hello(self, body: Any, ctx: CallContext) -> dict[str, Any]:
        h = Hello.from_wire(body)
        if ctx.user is not None:
            key, name = f"{h.role}/{h.node}", ctx.user.partition(":")[2]
            if self.revoked.get(key, {}).get("key") == name:
                return {"epoch": self.epoch}  # a connection made before the revoke: ZAP checked it then
            self.node_keys[key] = name
            self.revoked.pop(key, None)  # back with another key, one that is allowed
        self._meet(h.role, h.node, h.endpoint, h.inc)
        return {"epoch": self.epoch}

    def _meet(self, role: str, node: str, endpoint: str, inc: str | None) -> None:
        effects = self.state.meet(role, node, endpoint, inc)
        if effects:
            self._run(effects)
        else:
            self.liveness.seen(f"{role}/{node}")

    def _watch(self, ref: NodeRef) -> None:
        peer = self.peers.get(ref.endpoint)
        ping = Ping(self.epoch).to_wire()
        # Keyed by role too: a compute and a storage node may share an id.
        self.liveness.watch(f"{ref.role}/{ref.node}",
                            lambda: peer.call("ping", ping, timeout=self.liveness.interval * 2))
        self.nursery.start_soon(self._track, ref)

    def _node_lost(self, key: str) -> None:
        role, _, node = key.partition("/")
        if self.beacons is not None:
            # Lost by heartbeat within the beacon expiry (a short network cut): without this
            # its next beacon is not news, and the node would never be met again.
            self.beacons.forget(node)
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
                    # Compute's list takes no body; storage's all objects (ListObjects()).
                    body = await peer.call("list", ListObjects().to_wire(), timeout=30)
                    if isinstance(ref, ComputeRef):
                        inv = news.compute_inventory(body)
                        ref.inc, since = inv.inc, inv.next
                        set_resources(ref, inv)
                        self._run(state.compute_inventory(ref, inv.slots, inv.tasks))
                    else:
                        assert isinstance(ref, StorageRef)
                        objects = news.storage_inventory(body)
                        ref.inc, since = objects.inc, objects.next
                        await usage.ask(self, ref)
                        scavenge, effects = state.storage_inventory(ref, objects.objects)
                        if scavenge:
                            await self._scavenge(ref, scavenge)
                        self._run(effects)
                    ref.last_seen = time.time()
                    backoff = 0.1
                    gather = GATHER if isinstance(ref, ComputeRef) else 0.0
                    while True:
                        # Woken by urgent events only: a task's end, an object
                        # finished by a writer that does not report it itself.
                        # The rest (task steps, objects a task's `done` reports)
                        # ride along: one wake-up per job, not one per step.
                        r = PollReply.from_wire(await peer.call(
                            "poll", Poll(since, self.poll_timeout, ref.inc, Wake.URGENT, gather=gather).to_wire(),
                            timeout=self.poll_timeout + 5,
                        ))
                        self.liveness.seen(f"{ref.role}/{ref.node}")
                        if r.resync:
                            log.info("%s %s: resync", ref.role, ref.node)
                            break
                        if r.events:
                            if isinstance(ref, ComputeRef):
                                self._run(state.task_news_round(ref, news.task_ends(r.events)))
                            else:
                                self._run(state.storage_events(ref, news.storage_events(r.events)))
                        since = ref.applied = r.next
                except _NET_ERRORS as e:
                    self._check_fenced(e)
                    log.debug("%s %s: %s", ref.role, ref.node, e)
                    await trio.sleep(backoff)
                    backoff = min(backoff * 2, 2.0)
                except BadRequest as e:
                    # Its answer does not parse: ask again (a list, from scratch).
                    log.warning("%s %s: %s", ref.role, ref.node, e)
                    await trio.sleep(backoff)
                    backoff = min(backoff * 2, 2.0)

    async def _scavenge(self, ref: StorageRef, names: list[str]) -> None:
        """Partial objects nobody is writing: delete them (a rerun re-creates them)."""
        log.info("scavenging %d partial objects on %s", len(names), ref.node)
        try:
            await self.peers.get(ref.endpoint).call("delete", DeleteObjects(names, epoch=self.epoch).to_wire())
        except _NET_ERRORS as e:
            log.warning("scavenging on %s failed: %s", ref.node, e)
        self.state.scavenged(names)

    # -- the scheduler's loops ----------------------------------------------------------
    async def _scheduler(self) -> None:
        state = self.state
        while True:
            # Woken by a kick, or when a retry's back-off or a node's hold ends.
            due = state.next_due()
            if due is None:
                await self._wake.wait()
            else:
                with trio.move_on_after(max(0.0, due - time.monotonic())):
                    await self._wake.wait()
                self._run(state.release_due())
            self._wake = trio.Event()
            delay = self.state.settle_until - time.monotonic()
            if delay > 0:
                await trio.sleep(delay)
            self._run(self.state.schedule_round())

    async def _dispatch(self, d: Dispatch) -> None:
        """Start the jobs, one message per node (see dispatch.py for the rules)."""
        state = self.state
        # What fails before the start goes out (its outputs' storage not
        # ready) was never sent: no attempt. What fails after may have run.
        unsent: dict[str, str] = {}
        failed: dict[str, str] = {}
        tokens = state.attempt_tokens(d)
        for storage_id, storage, objs, owners in state.retry_creates(d):
            if storage is None:
                for job in owners:
                    unsent[job.id] = f"storage node {storage_id} is gone"
                continue
            try:
                # Bounded as the planner's `slow` is (a node not answering
                # for two heartbeat intervals): a paused storage node held a
                # retry's start for its whole pause; now the job is placed
                # afresh, away from it, a moment later.
                r = CreateManyReply.from_wire(await self.peers.get(storage.endpoint).call(
                    "create_many", CreateMany(objs, True, self.epoch).to_wire(),
                    timeout=max(_CREATE_BOUND_MIN, 2 * self.liveness.interval),
                ))
            except _ANSWER_ERRORS as e:
                for job in owners:
                    unsent[job.id] = f"creating outputs on {storage_id}: {e}"
                continue
            stale = state.creates_answered(storage, r, failed)
            if stale:  # deleted before the new attempt's start goes out, so its write lands
                await self._scavenge(storage, stale)
        node = d.node
        starts = state.start_messages(d, tokens, failed, unsent)
        not_started: dict[str, str] = {}
        if starts:
            try:
                # Busy is an answer here (place elsewhere), not a reason to wait.
                r = await self.peers.get(node.endpoint).call(
                    "start_many", StartMany(starts, self.epoch).to_wire(), retry_busy=False)
                state.starts_answered(d, tokens, news.start_answers(r))
                self.admit_job_keys(r, tokens, node.node)  # (secure clusters: credentials.py)
            except _ANSWER_ERRORS as e:
                self._check_fenced(e)
                into = not_started if never_started(e) else failed
                for s in starts:
                    into[s.job] = f"starting on {node.node}: {e}"
        self._run(state.dispatch_ended(d, tokens, failed, not_started, unsent))

    async def _janitor(self) -> None:
        """Delete finished tasks' results on compute nodes, in batches."""
        while True:
            await trio.sleep(0.5)
            if self.state.cancelling:  # cancels no node confirmed in time
                self._run(self.state.settle_overdue())
            for ref, jobs in self.state.take_deletions():
                try:
                    await self.peers.get(ref.endpoint).call("delete", DeleteTasks(jobs, epoch=self.epoch).to_wire())
                except _NET_ERRORS as e:
                    log.debug("deleting task results on %s: %s", ref.node, e)

    # -- user ops ------------------------------------------------------------------------
    def _job(self, jid: str, ctx: CallContext | None) -> Job:
        """The job `jid` names; a user key (`ctx`) may get only its own (owners.py)."""
        asked = jid
        if type(jid) is str and ":" in jid:  # FLOW:JOB, a job of a flow's newest submission (flows.py)
            try:
                jid = self.state.flow_job(jid)
            except FlowError as e:
                raise BusError(str(e), code=ErrorCode.MISSING) from None
        check_job_id(jid)
        job = self.graph.jobs.get(self.graph.names.resolve(jid))
        if job is None:
            raise BusError(f"no job {jid!r}" + (f" ({asked}; forgotten by gc?)" if asked != jid else ""),
                           code=ErrorCode.MISSING)
        return owning.check(ctx, job, ctx.op) if ctx is not None else job

    def _jobs(self, ids: list[Any], ctx: CallContext | None) -> list[Job]:
        """`_job` of each id. A `wait` names every job of a submit (20,000 a
        call in the dispatch bench): a plain id of a known job, with no flow,
        version or name of that spelling and no user key, is looked up
        directly (it passed `check_job_id` when submitted); anything else
        takes `_job`'s checks and errors."""
        jobs, versions = self.graph.jobs, self.graph.names.versions
        direct = ctx is None or ctx.user is None
        out = []
        for jid in ids:
            job = None
            if direct and type(jid) is str and ":" not in jid and "@" not in jid and jid not in versions:
                job = jobs.get(jid)
            out.append(job if job is not None else self._job(jid, ctx))
        return out

    def _view(self, job: Job, now: float, detail: bool = False, tries: bool = False) -> dict[str, Any]:
        d = job.summary(now)
        if d["state"] == WAITING and (why := self.state.planner.placing.waiting.text(job.id)):
            d["waiting"] = why
        if detail:
            job_detail(job, d)
            label = self.graph.labels.get(job.id)
            if label is not None:
                d["flow"] = label  # FLOW:NAME (flows.py)
            self.state.window_view(job, d)
        if tries:
            d["attempt_list"] = attempt_views(job)
        final = self.state.final(job)
        if final is not job:
            d["final"] = final.summary(now)
        return d

    def _op_status(self, body: Any, ctx: CallContext) -> dict[str, Any]:
        """Status -> {jobs: [job view], counts?}: the given jobs, or the last `limit` submitted."""
        req = Status.from_wire(body)
        now = time.time()
        if req.jobs is not None:
            return {"jobs": [self._view(self._job(j, ctx), now, True, req.attempts) for j in req.jobs]}
        limit = req.limit
        every = self.graph.jobs.values()
        mine = owning.visible(ctx, every)  # (a user key: its own jobs and counts)
        jobs = sorted(mine, key=lambda j: j.seq)[-limit:] if limit else []
        counts = self.graph.counts() if mine is every else owning.counts(mine)
        return {"jobs": [self._view(j, now, True) for j in jobs], "counts": counts,
                "paused": self.state.pause_view()}

    async def _op_wait(self, body: Any, ctx: CallContext) -> dict[str, Any]:
        """Wait -> WaitReply: once every job is finished (following delegations) or at the timeout."""
        req = Wait.from_wire(body)
        jobs = self._jobs(req.jobs, ctx)
        w = self.state.watch(jobs, Waiter(trio.Event()))
        try:
            if w.remaining:
                with trio.move_on_after(req.timeout):
                    await w.event.wait()
        finally:
            self.state.unwatch(w)
        now = time.time()
        done = all(self.state.final(j).done for j in jobs)
        if req.rows:  # (most jobs a row: no view dict made and packed each)
            return WaitReply([wait_row(j) or self._view(j, now) for j in jobs], done, now).to_wire()
        return WaitReply([self._view(j, now) for j in jobs], done).to_wire()

    def _op_locate(self, body: Any, ctx: CallContext) -> dict[str, Any]:
        """Locate -> LocateReply: where an object's bytes are (its bytes too when small)."""
        name = self.graph.names.resolve_object(Locate.from_wire(body).object)
        if name not in self.graph.objects:
            raise BusError(f"no object {name!r}", code=ErrorCode.MISSING)
        obj = self.graph.resolve(name)
        producer = self.graph.jobs.get(obj.producer or "")
        owning.check_object(ctx, producer, name)
        copies = [s.endpoint for s in self.state.planner.live_locations(obj)]
        self.state.repair.located(obj.name)
        # A small finished object's bytes come along: the reader needs no second hop.
        data = obj.data if obj.state == FINISHED else None
        return owning.vouch(self, ctx, LocateReply(obj.name, obj.state, copies[0] if copies else None, copies,
                                                   producer.summary() if producer else None, data).to_wire())

    async def _op_prune(self, body: Any, ctx: CallContext) -> dict[str, Any]:
        from . import prune  # (rare, an admin's: not in every start's image, docs/performance.md)

        return (await prune.prune(self, prune.Prune.from_wire(body))).to_wire()

    async def _op_logs(self, body: Any, ctx: CallContext) -> dict[str, Any]:
        return await follow.relay_logs(self, body, ctx)

    async def _op_progress(self, body: Any, ctx: CallContext) -> dict[str, Any]:
        return await follow.relay_progress(self, body, ctx)
