"""Where a job may run: resources, hosts, pins, and jobs set aside.

The planner asks `choose` for a node with room for a job. A job that no node
can take now is either set aside with a reason (`park`: its host is unknown
or down, or no node is big enough; see waiting.py) until the set of compute
nodes changes, or left queued for room to free up. Anti-starvation: a job
queued for room longer than `reserve_after` seconds reserves the node
closest to fitting it for the rest of the round (no other batch job starts
there), which repeats every round until it starts. See docs/scheduling.md.
"""

from __future__ import annotations

import heapq
import logging
import time
from collections.abc import Callable

from weft.actors.resources import CHUNK, chunks, show_size

from .graph import WAITING, Graph, Job
from .nodes import TINY, ComputeRef, Cost
from .waiting import HOST_DOWN, HOST_UNKNOWN, NO_CAPACITY, Waiting

log = logging.getLogger("weft.coordinator")

QUEUED = "queued"
# Inputs from this size on make their producer's node the preferred one
# (the compute node's value cache keeps values from 64 KiB: valuecache.py).
NEAR_MIN = 64 << 10
# A job with at least this many input bytes on a full node waits up to
# NEAR_HOLD seconds for room there before it goes elsewhere: taking 10 MiB
# from another node's memory costs both nodes two copies and a message per
# 16 MiB, more than the few tasks ahead of it there take to finish, and
# the node with room has other work meanwhile. Bounded so a node busy for
# long does not hold its consumers back (work stealing waits as long).
NEAR_HOLD_MIN = 1 << 20
NEAR_HOLD = 0.5
# Jobs a round holds back so at most (each popped and pushed back: cheap);
# past it they go where there is room, so a wide fan-out of one large value
# on a busy node spreads at once (the other nodes read it from its memory).
HOLD_MAX = 128


def cost_of(job: Job) -> Cost:
    spec = job.spec
    return (spec.cpus, chunks(spec.memory))


def constrained(job: Job) -> str | None:
    """The host name or node id the job must run on, if any."""
    spec = job.spec
    return spec.node or spec.host


class Placing:
    def __init__(self, graph: Graph, computes: dict[str, ComputeRef], wall: Callable[[], float],
                 reserve_after: float = 30.0, mono: Callable[[], float] | None = None) -> None:
        self.graph = graph
        self.computes = computes
        self.wall = wall
        self.mono = mono or wall
        # Job -> when it first waited for room on the node holding its inputs
        # (NEAR_HOLD), and the earliest end of such a wait (the scheduler
        # wakes then); `holding`: the last `choose` said "wait", not "full".
        self.held_near: dict[str, float] = {}
        self.due: float | None = None
        self.holding = False
        self.held_round = 0  # jobs held back this round (HOLD_MAX)
        self.reserve_after = reserve_after
        self.waiting = Waiting()
        self.parked: dict[str, Job] = {}
        # Host names and node ids of compute nodes met: None while one is
        # up, else when the last went away (wall time).
        self.seen: dict[str, float | None] = {}
        self._sig: tuple[int, int] = (-1, -1)
        # Per round: name (host or node id) -> its ready, undrained nodes.
        self.by_name: dict[str, list[ComputeRef]] = {}
        self.reserved: set[str] = set()  # nodes kept this round for a job that waited long
        self.drained: set[str] = set()  # node ids drained (drain.py), kept across their restarts

    # -- once per round ---------------------------------------------------------------
    def nodes_changed(self) -> bool:
        """Look at the compute nodes again if any changed (O(1) per round
        otherwise); on a change, parked jobs go back to the queue to be
        placed (or parked) again."""
        sig = (ComputeRef.generation, len(self.computes))
        if sig == self._sig:
            return False
        self._sig = sig
        now = self.wall()
        up: set[str] = set()
        by_name: dict[str, list[ComputeRef]] = {}
        for c in self.computes.values():
            if c.ready:
                up.add(c.node)
                if c.host:
                    up.add(c.host)
                if not c.drained:
                    by_name.setdefault(c.node, []).append(c)
                    if c.host and c.host != c.node:
                        by_name.setdefault(c.host, []).append(c)
        for name in up:
            self.seen[name] = None
        for name, since in self.seen.items():
            if since is None and name not in up:
                self.seen[name] = now
        self.by_name = by_name
        self.release()
        return True

    def release(self) -> None:
        g = self.graph
        parked, self.parked = self.parked, {}
        for job in parked.values():
            self.waiting.clear(job.id)
            if job.state == WAITING and not job.missing and not job.done:
                g.make_runnable(job)

    # -- per job --------------------------------------------------------------------
    def choose(self, job: Job, cost: Cost, candidates: list[ComputeRef], room: dict[str, int],
               force: bool, rooms: Rooms | None = None) -> ComputeRef | None:
        """The node with the most room that can take `job` now (any match
        when `force`: a workorder), or None. `rooms` (the same candidates
        as a heap) makes the common case O(log nodes)."""
        want = constrained(job)
        prefer = job.spec.prefer_host
        near, near_bytes = self.near(job) if job.spec.refs else (None, 0)
        if want is None and cost == TINY and prefer is None and not force:
            # The common case, as cheap as before resources: every candidate
            # has a CPU and a chunk free (the planner drops full ones).
            if near is not None:
                # Below the planner's batching low-water mark is still room:
                # a job queued behind others where its input is beats a
                # storage read elsewhere. A full node holds it back a
                # little (NEAR_HOLD), only for large inputs.
                c = self.computes.get(near)
                if c is not None and near not in self.reserved:
                    if room.get(near, 0) > 0 and c.used_chunks < c.chunks:
                        if self.held_near:
                            self.held_near.pop(job.id, None)
                        return c
                    if near_bytes >= NEAR_HOLD_MIN and near in room and self._hold(job):
                        return None
            if rooms is not None:
                return rooms.best()
            return max(candidates, key=lambda c: room[c.node]) if candidates else None
        if want is not None:
            pool = [c for c in self.by_name.get(want, ()) if c.node in room]
        else:
            pool = candidates
        c_need, m_need = cost
        best = None
        best_key = None
        reserved = self.reserved
        for c in pool:
            if reserved and c.node in reserved:
                continue
            free_m = c.chunks - c.used_chunks
            fits = room[c.node] >= c_need and free_m >= m_need
            if not fits and not force:
                continue
            key = (fits, prefer is not None and prefer in (c.host, c.node), c.node == near, room[c.node], free_m)
            if best_key is None or key > best_key:
                best, best_key = c, key
        return best

    def _hold(self, job: Job) -> bool:
        """Should `job` wait (still) for room on the node holding its inputs?"""
        if self.held_round >= HOLD_MAX:
            return False
        now = self.mono()
        since = self.held_near.setdefault(job.id, now)
        until = since + NEAR_HOLD
        if now >= until:
            del self.held_near[job.id]
            return False
        if self.due is None or until < self.due:
            self.due = until
        self.held_round += 1
        self.holding = True
        return True

    def new_round(self) -> None:
        self.due = None
        self.held_round = 0
        if len(self.held_near) > 4096:  # jobs placed by another path, or gone
            stale = self.mono() - NEAR_HOLD
            self.held_near = {j: t for j, t in self.held_near.items() if t > stale}

    def near(self, job: Job) -> tuple[str | None, int]:
        """Locality: the compute node that made the most bytes of the job's
        large inputs, which may still hold them in memory (its value cache,
        actors/compute/valuecache.py): placed there, the job reads no
        storage, nor another node's memory. Small inputs travel inline in
        the start anyway, so they do not count. (node, its bytes)."""
        objects, jobs = self.graph.objects, self.graph.jobs
        best, most = None, 0
        by_node: dict[str, int] | None = None
        for ref in job.spec.refs.values():
            obj = objects.get(ref)
            if obj is None or obj.producer is None or obj.data is not None:
                continue
            size = NEAR_MIN if obj.size is None else obj.size
            if size < NEAR_MIN:
                continue
            producer = jobs.get(obj.producer)
            node = producer.ran_on if producer is not None else None
            if node is None:
                continue
            if best is None:
                best, most = node, size
                continue
            if by_node is None:
                by_node = {best: most}
            total = by_node[node] = by_node.get(node, 0) + size
            if total > most:
                best, most = node, total
        return best, most

    def near_copies(self, job: Job, node: ComputeRef, inline: dict[str, bytes]) -> dict[str, str]:
        """For the start of `job` on `node`: input -> endpoint of the other
        compute node that made it, for large inputs (which that node may
        still hold in memory and serve straight to `node`)."""
        objects, jobs, computes = self.graph.objects, self.graph.jobs, self.computes
        near: dict[str, str] = {}
        for name, ref in job.spec.refs.items():
            obj = objects.get(ref)
            if obj is None or obj.producer is None or obj.data is not None or name in inline:
                continue
            if obj.size is not None and obj.size < NEAR_MIN:
                continue
            producer = jobs.get(obj.producer)
            where = computes.get(producer.ran_on or "") if producer is not None else None
            if where is not None and where is not node and where.ready:
                near[name] = where.endpoint
        return near

    def why_not(self, job: Job, cost: Cost, ready: list[ComputeRef]) -> tuple[str, str] | None:
        """Why no node will ever take `job` as things are (a reason to park
        it), or None if one could once room frees up."""
        want = constrained(job)
        if want is not None:
            pool = self.by_name.get(want)
            if not pool:
                if want not in self.seen:
                    return HOST_UNKNOWN, f"host {want} unknown"
                since = self.seen[want]
                if since is None:
                    return HOST_DOWN, f"host {want} drained"
                return HOST_DOWN, f"host {want} down since {time.strftime('%H:%M', time.localtime(since))}"
        else:
            pool = [c for c in ready if not c.drained]
        if any(c.could_fit(cost) for c in pool):
            return None
        return NO_CAPACITY, f"no compute node with {need(cost)} free"

    def park(self, job: Job, code: str, text: str) -> None:
        job.state = WAITING  # made runnable again when the compute nodes change
        job.missing = 0
        self.parked[job.id] = job
        self.waiting.set(job.id, code, text)

    def queued(self, job: Job, cost: Cost) -> None:
        if cost != (1, 1) or constrained(job):
            self.waiting.set(job.id, QUEUED, f"for {need(cost)} free" + (
                f" on {constrained(job)}" if constrained(job) else ""))

    def reserve(self, job: Job, cost: Cost, computes: list[ComputeRef]) -> ComputeRef | None:
        """A node kept for `job` this round if it waited long enough: the one
        that could take it with the most memory free."""
        if self.wall() - job.submitted < self.reserve_after:
            return None
        want = constrained(job)
        pool = self.by_name.get(want, ()) if want is not None else computes
        fit = [c for c in pool if c.could_fit(cost) and c in computes]
        if not fit:
            return None
        node = max(fit, key=lambda c: (c.chunks - c.used_chunks, c.slots - c.used_cpus))
        self.reserved.add(node.node)
        log.debug("node %s reserved for %s (waited %.0fs)", node.node, job.id, self.wall() - job.submitted)
        return node


class Rooms:
    """A round's candidate nodes by room, most first, first listed first among
    equals: what `max(candidates, key=room)` picks, in O(log nodes) instead
    of O(nodes) per job (a max() over 100 nodes per job was the planner's
    largest cost at 20,000 jobs; docs/performance.md).

    Lazy: the planner only ever lowers a node's room within a round, so an
    entry whose room is stale is too high; it is re-keyed when it reaches
    the top. A node the planner drops from its candidates is `drop`ped.
    """

    __slots__ = ("heap", "room", "dropped")

    def __init__(self, candidates: list[ComputeRef], room: dict[str, int]) -> None:
        self.room = room
        self.dropped: set[str] = set()
        self.heap = [(-room[c.node], i, c) for i, c in enumerate(candidates)]
        heapq.heapify(self.heap)

    def drop(self, node: ComputeRef) -> None:
        self.dropped.add(node.node)

    def best(self) -> ComputeRef | None:
        heap = self.heap
        room = self.room
        while heap:
            key, i, c = heap[0]
            if c.node in self.dropped:
                heapq.heappop(heap)
                continue
            r = room[c.node]
            if -key != r:
                heapq.heapreplace(heap, (-r, i, c))
                continue
            return c
        return None


def need(cost: Cost) -> str:
    c, m = cost
    mem = show_size(m * CHUNK)
    return f"{c} CPUs and {mem}" if c > 1 else mem
