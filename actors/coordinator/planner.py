"""Picking and placing runnable work: which job goes where, reading what.

Order: the graph's runnable heap (workorders, then most-blocked-first,
priority, deadline, age). Placement: compute by free room for the job's
CPUs and memory, its host or node if it names one (placing.py; a job no
node can take is set aside with a reason, waiting.py), outputs on the least loaded storage
nodes (`replicas` of them). Following: waiting jobs start ahead on the
node making their last input (with runnable work too, bounded, and not past
a runnable job of higher priority). The planner changes job
and node bookkeeping (a job is marked running before any message leaves)
but sends nothing: it fills `batches`, which the state turns into effects.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from typing import Any

from weft.protocol.tasks import Start

from .graph import DELEGATED, FINISHED, RUNNING, WAITING, Graph, Job
from .nodes import TINY, ComputeRef, StorageRef, pick_storage
from .placing import Placing, Rooms, constrained, cost_of
from .steal import Stealing

log = logging.getLogger("weft.coordinator")

# Jobs a round leaves queued for want of room before it stops looking
# further down the queue (bounds a round's work when big jobs wait).
MAX_SKIPS = 32

# How many times deeper than `follow_ahead` a node may hold a chain's links
# ahead (see pick_followers). 2: at follow_ahead 4 a chain's window ran dry
# in ~17% of its hops with four links ahead, ~9% with eight, ~5% with 16
# (docs/performance.md, "Chain, fourth round").
CHAIN_DEPTH = 2

# Prefetch by time, not only by count: a node whose tasks run shorter than
# AHEAD_SECONDS / prefetch is sent up to AHEAD_SECONDS of them per CPU (at
# most PREFETCH_MAX), so a CPU does not run dry in the round trip to us
# (no-ops: 8 ahead ran dry at 221 of 255 top-ups); a job of higher priority
# submitted meanwhile still waits behind at most `prefetch` tasks or
# AHEAD_SECONDS of work, whichever is more. (docs/performance.md,
# "Prefetch by time".)
AHEAD_SECONDS = 0.005
PREFETCH_MAX = 32

_INF = float("inf")


def ahead_per_slot(prefetch: int, run_avg: float) -> int:
    """Tasks a node's CPU is sent ahead of it with a deep queue."""
    if prefetch <= 0 or run_avg <= 0.0 or run_avg * prefetch >= AHEAD_SECONDS:
        return prefetch
    return min(PREFETCH_MAX, int(AHEAD_SECONDS / run_avg))

# node -> [(job, its start)]: one start_many per node.
Batches = dict[str, list[tuple[Job, Start]]]
# A start's inputs: input -> (endpoints of its copies, object to read), and
# the bytes of those the coordinator holds.
Inputs = tuple[dict[str, tuple[list[str], str]], dict[str, bytes]]


class Planner:
    def __init__(
        self,
        graph: Graph,
        computes: dict[str, ComputeRef],
        storages: dict[str, StorageRef],
        lost_objects: set[str],
        stats: dict[str, int],
        tokens: itertools.count,
        *,
        replicas: int,
        prefetch: int,
        follow_ahead: int,
        wall: Callable[[], float],
        mono: Callable[[], float],
    ) -> None:
        self.graph = graph
        self.computes = computes
        self.storages = storages
        self.lost_objects = lost_objects
        self.stats = stats
        self.tokens = tokens
        self.replicas = replicas
        self.prefetch = prefetch
        # Jobs per slot a compute node may hold started ahead of their input,
        # waiting for the task there that makes it (0: none; see pick_followers).
        self.follow_ahead = follow_ahead
        self.wall = wall
        self.mono = mono
        # Is this storage node slow or not answering (pinged, no reply yet)?
        # Set by the shell from its liveness; placement avoids such nodes
        # while others can take the outputs.
        self.slow: Callable[[StorageRef], bool] = lambda s: False
        # Paused groups, and their jobs set aside by a round (the state's own
        # containers; see control.py).
        self.paused_groups: set[str] = set()
        self.held_jobs: dict[str, Job] = {}
        # Asked per picked job once some job may be refused a start (time
        # windows, a decommissioned root: gate.py); None costs nothing.
        self.gate: Callable[..., bool] | None = None
        # Resources, hosts, pins and jobs set aside with a reason (placing.py).
        self.placing = Placing(graph, computes, wall, mono=mono)
        stats.setdefault("overcommits", 0)  # workorders started past a node's room
        self.stealing = Stealing(mono)  # idle nodes take queued jobs over (steal.py)
        # Compute nodes with followers to look for while work is runnable
        # (pick_busy_followers), and the priority of the jobs left runnable.
        self.followable: set[str] = set()
        self.left_priority = _INF
        stats.setdefault("withdrawn", 0)  # jobs given back by a busy node for an idle one

    def plan(self, batches: Batches) -> None:
        """One scheduling round's picks, into `batches` (and work to take
        back from busy nodes for idle ones, into `stealing.asks`)."""
        self.pick_runnable(batches)
        if self.follow_ahead:
            if not self.graph.runnable_count:
                self.pick_followers(batches)
            else:
                self.pick_busy_followers(batches)
        if not self.graph.runnable_count:
            self.stealing.look(self.computes.values())
        else:
            self.stealing.due = None

    def outputs_finished(self, job: Job) -> bool:
        # Asked for every job picked: names built here, no list per job.
        objects = self.graph.objects
        prefix = job.id + "/"
        for out in job.spec.outputs:
            o = objects.get(prefix + out)
            if o is None or o.state != FINISHED:
                return False
        return True

    def pick_runnable(self, batches: Batches) -> None:
        g = self.graph
        placing = self.placing
        placing.nodes_changed()
        placing.new_round()  # (its wake-up time too: none unless a job is held again)
        ready = [c for c in self.computes.values() if c.ready and not c.drained]
        self.left_priority = _INF
        if not ready or not g.runnable_count:
            return
        # Prefetch: with a deep queue, each node also gets `prefetch` tasks per
        # CPU ahead, waiting in its FIFO, so a CPU never idles for the round
        # trip to us. With a shallow queue nothing is sent ahead, so a job that
        # becomes the most needed a moment later still goes first. Memory is
        # never sent ahead: what a node holds always fits its memory.
        # Deep queues are also sent in batches: a node is topped up only once
        # half its ahead-queue drained, so one start_many (and one create_many
        # per storage node) carries several jobs instead of one per freed slot.
        deep = g.runnable_count >= max(16, 4 * sum(c.slots for c in ready))
        prefetch = self.prefetch
        # One pass over the nodes (a round runs per wake-up, most place
        # nothing): each node's room, and whether it is below its low water.
        room: dict[str, int] = {}
        computes = []
        for c in ready:
            if deep:
                ahead = ahead_per_slot(prefetch, c.run_avg)
                left = room[c.node] = c.slots * (1 + ahead) - c.used_cpus
                low = max(1, c.slots * ahead // 2)
            else:
                left = room[c.node] = c.slots - c.used_cpus
                low = 1
            if left >= low and c.used_chunks < c.chunks:
                computes.append(c)
        rooms = Rooms(computes, room)  # kept in step with `computes`: every remove is a drop
        batch_placement: dict[str, list[str]] = {}
        # Compute nodes whose shared output placement was checked this round
        # (nothing changes a storage node's liveness within a round).
        placeable: set[str] = set()
        deferred = []
        now = self.wall()
        paused = self.paused_groups
        gate = self.gate
        placing.reserved.clear()
        skips = 0
        # Per job below, so looked up once per round (20,000 jobs a second).
        pop, choose, mark = g.pop_runnable, placing.choose, self.mark_dispatched
        outputs_finished, storages, reasons = self.outputs_finished, self.storages, placing.waiting.reasons
        while True:
            job = pop()
            if job is None:
                break
            spec = job.spec
            force = spec.job_class == "workorder"
            if not computes and not force:
                why = placing.why_not(job, cost_of(job), ready) if constrained(job) else None
                if why is not None:
                    placing.park(job, *why)
                    continue
                deferred.append(job)
                break
            if paused and spec.groups and not paused.isdisjoint(spec.groups):
                job.state = WAITING  # linked to nothing: made runnable again on resume
                job.missing = 0
                self.held_jobs[job.id] = job
                continue
            if gate is not None and gate(job):
                continue  # set aside or cancelled by the gate
            if spec.outputs and outputs_finished(job):
                # Its outputs exist already (it finished before a crash made
                # us forget): nothing to run. The attempt that made them may
                # have started and ended inside one group commit, unseen by
                # the journal: it counts, as it would have had we seen it.
                if job.attempts - job.excused <= 0:
                    job.attempts = job.excused + 1
                g.succeed(job)
                continue
            cost = TINY if spec.cpus == 1 and spec.memory is None else cost_of(job)
            if cost is TINY and not force and spec.node is None and spec.host is None \
                    and spec.prefer_host is None and not spec.refs:
                node = rooms.best()  # what choose() picks for a plain job, without the call
            else:
                node = choose(job, cost, ready if force else computes, room, force, rooms)
            if node is None:
                if placing.holding:  # waits a moment for room where its inputs are (not a skip: HOLD_MAX bounds these)
                    placing.holding = False
                    deferred.append(job)
                    continue
                why = placing.why_not(job, cost, ready)
                if why is not None:
                    placing.park(job, *why)
                    continue
                # It fits somewhere once room frees up: it waits its turn
                # (smaller jobs behind it may start meanwhile), unless it
                # waited long enough to keep a node for itself.
                deferred.append(job)
                placing.queued(job, cost)
                kept = placing.reserve(job, cost, computes)
                if kept is not None:
                    computes.remove(kept)
                    rooms.drop(kept)
                skips += 1
                if skips >= MAX_SKIPS:
                    break
                continue
            inputs = self.input_locations(job) if spec.refs else ({}, {})
            if inputs is None:
                continue  # it waits again, on the inputs that are not available
            if spec.outputs:
                # A batch's new outputs share the storage nodes of its first
                # job: one create_many per batch, not one per storage node.
                # Batches still spread (each picks the least loaded).
                shared = batch_placement.get(node.node) if not job.placement else None
                if shared and (node.node in placeable or self.still_placeable(shared)):
                    placeable.add(node.node)
                    placement = shared
                else:
                    placement = self.place(job)
                if placement is None:
                    deferred.append(job)
                    break
                if shared is placement:
                    for n in placement:
                        storages[n].placed += 1
                else:
                    batch_placement.setdefault(node.node, placement)
                job.placement = placement
            if force and not node.fits(cost):
                node.overcommits += 1
                self.stats["overcommits"] += 1
                log.info("workorder %s overcommits compute node %s (%d of %d CPUs, %d of %d chunks in use)",
                         job.id, node.node, node.used_cpus, node.slots, node.used_chunks, node.chunks)
            if reasons:
                placing.waiting.clear(job.id)
            mark(job, node, started=now)
            node.assign(job.id, cost)
            left = room[node.node] = room[node.node] - cost[0]
            if (left <= 0 or node.used_chunks >= node.chunks) and node in computes:
                computes.remove(node)
                rooms.drop(node)
            batches.setdefault(node.node, []).append(
                (job, Start(job.id, spec, inputs[0], {}, job.token, inputs[1], {}, None)))
        for job in deferred:
            g.make_runnable(job)
        # The most any job left runnable asks for: a follower below it waits
        # (pick_busy_followers). The jobs left are the queue's head, taken
        # in its order; a workorder among them lets nothing follow.
        self.left_priority = max((_INF if j.spec.job_class == "workorder" else j.priority for j in deferred),
                                 default=_INF)

    def pick_followers(self, batches: Batches) -> None:
        """Start jobs ahead of their last input, on the node making it.

        With nothing runnable left (a chain, the tail of a fan-in), a waiting
        job whose every missing input is an output of one job running on a
        compute node is started there too: the node runs it the moment that
        producer's outputs are durable, with the bytes it still holds, and
        the hop through us (its `done`, our round, the start) leaves the
        critical path. Ray and Dask resolve dependencies on the worker the
        same way. Each node holds at most `follow_ahead` per slot, and such
        jobs may follow each other (a chain runs that far ahead of us).

        A chain link (the only job waiting on its producer) may go
        CHAIN_DEPTH times deeper: links run one after another anyway, so
        holding more of them on one node takes no parallelism away, and the
        deeper window rides out a coordinator that falls a few hops behind
        (descheduled on a busy machine: each dry window costs a hop the full
        round trip through us). Siblings (several jobs waiting on one
        producer) keep the plain bound: pinned to one node they would run
        one by one instead of spread over the cluster.
        """
        for node in self.computes.values():
            if node.ready and not node.drained and self.follow_on(node, batches, CHAIN_DEPTH, -_INF) is None:
                return

    def pick_busy_followers(self, batches: Batches) -> None:
        """Start jobs ahead of their last input while other work is runnable.

        A producer picked this round with jobs waiting on it (its demand)
        marks its node; a marked node is looked at each round until its
        followers are no longer held back by the bound, so rounds that start
        plain jobs only (no dependents) pay one attribute read a job. Depth
        first, as Dask and Ray run a consumer next to its producer: a
        consumer runs from the bytes in its node's memory while the value is
        stored, and holding fewer values keeps memory low. The node puts a
        follower whose input is ready at the head of its line (ahead.py), so
        a follower takes its producer's slot before queued work.

        Priority: a follower whose priority is below that of a job left
        runnable this round waits as before (it would run ahead of it on the
        node). Demand is not compared: a producer's consumer has less demand
        than the producers queued behind it by construction, and following
        is what finishes that demand soonest. Only the plain bound
        (`follow_ahead` per slot): the chain's deeper window is for a node
        with nothing else to do (pick_followers), so followers of several
        chains do not pile up on one node while runnable work spreads.
        """
        marked = self.followable
        for node_id, items in batches.items():
            if node_id not in marked:
                for job, _ in items:
                    if job.demand:
                        marked.add(node_id)
                        break
        floor = self.left_priority
        if not marked or floor == _INF:
            return
        for node_id in list(marked):
            node = self.computes.get(node_id)
            if node is None or not node.ready or node.drained:
                marked.discard(node_id)
                continue
            full = self.follow_on(node, batches, 1, floor)
            if full is None:
                return
            if not full:
                marked.discard(node_id)

    def follow_on(self, node: ComputeRef, batches: Batches, depth: int, floor: float) -> bool | None:
        """Followers of the jobs running on `node`, up to `follow_ahead` per
        slot (a chain link's: `depth` times that), none of priority below
        `floor`. True if the bound stopped it, None if no storage node
        can take outputs (nothing can go ahead)."""
        g = self.graph
        limit = self.follow_ahead * node.slots
        deep = limit * depth
        held = len(node.following)
        queue = list(node.assigned) if held < deep else []
        jobs, objects = g.jobs, g.objects
        while queue and held < deep:
            producer = jobs.get(queue.pop())
            if producer is None or producer.state != RUNNING or producer.node != node.node:
                continue
            # With nothing runnable this pass runs at every node's news, over
            # every job each node holds (most with no waiters): names built
            # here, no list per job, the waiters looked at first.
            prefix = producer.id + "/"
            objs = []
            for out in producer.spec.outputs:
                obj = objects.get(prefix + out)
                if obj is None or not obj.waiters or obj.state == FINISHED or obj.state == DELEGATED:
                    continue
                objs.append(obj)
            if not objs:
                continue
            bound = deep if len(objs) == 1 and len(objs[0].waiters) == 1 else limit
            for obj in objs:
                for wid in obj.waiters:
                    job = g.jobs.get(wid)
                    if held >= bound or job is None or job.state != WAITING or job.priority < floor:
                        continue
                    if job.missing > len(objs):
                        continue  # it waits on other jobs too (a fan-in's reducer): not before its resolve
                    if self.paused_groups and not self.paused_groups.isdisjoint(job.spec.groups):
                        continue
                    if self.gate is not None and self.gate(job, True):
                        continue
                    cost = cost_of(job)
                    if cost != (1, 1) or constrained(job) or job.spec.job_class != "batch":
                        continue  # placed with its resources and host by pick_runnable
                    picked = self.follower_inputs(job, producer)
                    if picked is None:
                        continue
                    placement = self.place(job) if job.spec.outputs else None
                    if job.spec.outputs and placement is None:
                        return None  # no storage to write to: nothing can go ahead
                    job.placement = placement
                    # Not started until its producer ends (see State.task_news).
                    self.mark_dispatched(job, node, started=None)
                    job.ahead = True
                    node.follow(job.id, producer.id)
                    inputs, inline, after = picked
                    batches.setdefault(node.node, []).append(
                        (job, Start(job.id, job.spec, inputs, {}, job.token, inline, after, None)))
                    self.stats["followed"] += 1
                    held += 1
                    queue.append(job.id)
        return held >= limit

    def mark_dispatched(self, job: Job, node: ComputeRef, *, started: float | None) -> None:
        """A new attempt of `job` on `node`, under a new fencing token."""
        job.state = RUNNING
        job.ahead = False
        job.node = job.ran_on = node.node
        job.token = next(self.tokens)
        job.attempts += 1
        job.started = started
        job.exit_code = None

    # -- where things are ------------------------------------------------------------
    def follower_inputs(self, job: Job, producer: Job) -> tuple[dict, dict, dict] | None:
        """Inputs of `job` (and the bytes we hold of them) if `producer`
        makes every one that is missing, and the `after` map naming it for
        those; None if `job` cannot follow it."""
        inputs: dict[str, tuple[list[str], str]] = {}
        inline: dict[str, bytes] = {}
        after: dict[str, tuple[str, int]] = {}
        for name, ref in job.spec.refs.items():
            obj = self.graph.resolve(ref)
            if obj.state == FINISHED:
                copies = self.live_locations(obj)
                if not copies and not obj.held:
                    return None
                inputs[name] = ([s.endpoint for s in copies], obj.name)
                if obj.data is not None:
                    inline[name] = obj.data
            elif obj.producer == producer.id and obj.state != DELEGATED and producer.placement:
                endpoints = [self.storages[n].endpoint for n in producer.placement if n in self.storages]
                if len(endpoints) != len(producer.placement):
                    return None
                inputs[name] = (endpoints, obj.name)
                after[name] = (producer.id, producer.token)
            else:
                return None
        return (inputs, inline, after) if after else None

    def still_placeable(self, placement: list[str]) -> bool:
        now = self.mono()
        slow = self.slow
        return all((s := self.storages.get(n)) is not None and s.ready and s.full_until <= now and not slow(s)
                   for n in placement)

    def place(self, job: Job) -> list[str] | None:
        """Storage nodes for a job's outputs: its placement if still good, else new ones.

        Slow or unanswering nodes are left out while enough others can take
        the outputs: a write to one would wait for its latency bound and
        then drop that copy."""
        now = self.mono()
        live = [s for s in self.storages.values() if s.ready and s.full_until <= now]
        slow = [s for s in live if self.slow(s)]
        if slow:
            quick = [s for s in live if s not in slow]
            if len(quick) >= min(self.replicas, len(live)):
                live = quick
        if job.placement:
            kept = [n for n in job.placement if n in self.storages and self.storages[n].full_until <= now
                    and self.storages[n] not in slow]
            if len(kept) == len(job.placement):
                return job.placement
        chosen: list[str] = []
        for _ in range(min(self.replicas, len(live))):
            s = pick_storage([c for c in live if c.node not in chosen])
            if s is None:
                break
            s.placed += 1
            chosen.append(s.node)
        return chosen or None

    def live_locations(self, obj: Any) -> list[StorageRef]:
        out = []
        for node_id in obj.locs:
            s = self.storages.get(node_id)
            if s is not None and s.ready:
                out.append(s)
        return out

    def input_locations(self, job: Job) -> Inputs | None:
        """Where to read each input (the storage nodes with a copy, the final
        object's name), and the bytes of those we hold.

        None if some input has no live copy: the job waits on it again (it
        comes back with its storage node, or lineage makes it anew).
        """
        out: dict[str, tuple[list[str], str]] = {}
        inline: dict[str, bytes] = {}
        missing = []
        for name, ref in job.spec.refs.items():
            obj = self.graph.resolve(ref)
            copies = self.live_locations(obj) if obj.state == FINISHED else []
            if not copies and not obj.held:
                missing.append(obj)
                continue
            out[name] = ([s.endpoint for s in copies], obj.name)
            if obj.data is not None:
                inline[name] = obj.data
        if missing:
            job.missing = 0
            for obj in missing:
                if obj.state == FINISHED:
                    self.graph.mark_lost(obj, self.mono())
                    self.lost_objects.add(obj.name)
                self.graph.wait_on(job, obj)
            return None
        return out, inline
