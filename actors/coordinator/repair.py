"""Repair: every finished object kept at its replica count.

Pure decisions, like the rest of the state: object news comes in (a copy
landed on a node, a copy is gone from one), time passes (`plan`), and what to
do comes back as effects (`Copy`: a storage node fetches objects from another,
storage to storage; `Trim`: extra copies deleted).

Cheap when all is well: the sets of under- and over-replicated objects are
kept up to date one object at a time from the object news the state already
gets (`note`), so a round with nothing to repair looks at nothing.

Rules:
* An object is under-replicated when it is finished with fewer live copies
  than the replica count (none at all is lineage's business: lost).
* A copy is planned once the object's missing replicas cannot still be on
  their way: right away (after `delay`) when no node its producer wrote to is
  still to report, else after `settle` (the write's last replica may yet be
  announced; a dropped replica never will be).
* Target: a ready node with no copy and room, least loaded (copies in flight
  to it, then objects, then most free space), not the one that failed the
  last try when there is another. Source: the live copy with the fewest copies
  being read from it. In flight: at most `per_node` per node (as target and
  as source) and `total` in all; one copy of an object at a time.
* A copy that failed (the target said so, its `deleted` event, its node lost,
  or no news by its deadline) is tried again after a backoff that doubles.
* Trimming: an object with more copies than the count loses one at a time,
  on the node with the most objects; never the last copy (the count is at
  least one), and not while a job on a compute node reads it or a reader was
  pointed at it by `locate` in the last `POINTED_FOR` seconds.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable

from .effects import Copy, Effect, Trim
from .graph import FINISHED, Graph, Obj
from .nodes import StorageRef

# A copy with no news after this long (plus a second per MiB) failed.
COPY_DEADLINE = 30.0
# A trim with no `deleted` news after this long may be asked again.
TRIM_DEADLINE = 30.0
# A reader told where an object is (locate) may read it this long.
POINTED_FOR = 60.0
BACKOFF_FIRST = 1.0
BACKOFF_MAX = 30.0


class _Flight:
    __slots__ = ("target", "source", "deadline")

    def __init__(self, target: str, source: str, deadline: float) -> None:
        self.target = target
        self.source = source
        self.deadline = deadline


class Repair:
    def __init__(self, graph: Graph, storages: dict[str, StorageRef], *, replicas: int, per_node: int = 8,
                 total: int = 32, delay: float = 1.0, settle: float = 15.0,
                 mono: Callable[[], float]) -> None:
        if per_node < 1 or total < 1:
            raise ValueError("repair bounds must be at least 1")
        self.graph = graph
        self.storages = storages
        self.replicas = replicas
        self.per_node = per_node
        self.total = total
        self.delay = delay
        self.settle = settle
        self.mono = mono
        self.under: dict[str, float] = {}  # name -> since when (monotonic)
        self.over: set[str] = set()
        self.flights: dict[str, _Flight] = {}
        self.to_node: Counter[str] = Counter()  # copies in flight to a node
        self.from_node: Counter[str] = Counter()  # ... and read from one
        self.retry: dict[str, tuple[float, int, str]] = {}  # name -> (not before, failures, last target)
        self.trimming: dict[str, tuple[str, float]] = {}  # name -> (node, deadline)
        self.pointed: dict[str, float] = {}  # name -> a reader may use it until
        self.copied = 0
        self.failed = 0
        self.trimmed = 0
        # Copies that ended since the last round: room for the next ones now.
        self.ended = 0
        # Storage nodes being drained (drain.py): their copies do not count,
        # nothing is copied to them, and they may leave once `left` is 0.
        self.drained: set[str] = set()

    # -- news -------------------------------------------------------------------------
    def note(self, obj: Obj) -> None:
        """`obj`'s copies changed: keep the two sets right for this one object."""
        n = len(obj.locs) if obj.state == FINISHED else 0
        name = obj.name
        if n and self.drained:
            live = sum(1 for loc in obj.locs if loc not in self.drained)
            if live < n:  # copies on draining nodes: needed elsewhere, but not lost
                n = live
                if n < self.replicas:
                    if name not in self.under:
                        self.under[name] = self.mono() - self.settle  # nothing is on its way
                    self.over.discard(name)
                    return
        if 0 < n < self.replicas:
            if name not in self.under:
                self.under[name] = self.mono()
        elif name in self.under:
            del self.under[name]
            self.retry.pop(name, None)
        if n > self.replicas:
            self.over.add(name)
        else:
            self.over.discard(name)

    def landed(self, obj: Obj, node: str) -> None:
        """`node` announced a finished copy of `obj`."""
        f = self.flights.get(obj.name)
        if f is not None and f.target == node:
            self._land(obj.name, f)
            self.copied += 1
        self.note(obj)

    def gone(self, obj: Obj, node: str) -> None:
        """`obj` is not (or no longer) on `node`: deleted there, or the node lost."""
        f = self.flights.get(obj.name)
        if f is not None and f.target == node:
            self._fail(obj.name)
        t = self.trimming.get(obj.name)
        if t is not None and t[0] == node:
            del self.trimming[obj.name]
            self.trimmed += 1
        self.note(obj)

    def node_lost(self, node: str) -> None:
        """Copies to the node will not land (copies from it fail on their targets)."""
        for name in [n for n, f in self.flights.items() if f.target == node]:
            self._fail(name)

    def answered(self, target: str, refused: dict[str, str | None]) -> None:
        """The target's answer to a Copy: names it refused (with their code;
        None: the request itself failed)."""
        for name, code in refused.items():
            f = self.flights.get(name)
            if f is None or f.target != target:
                continue
            # "exists": it holds a copy we have not heard of yet (its news is
            # on the way): not a failure, but not asked of it again at once.
            self._fail(name, counted=code != "exists")

    def located(self, name: str) -> None:
        """A reader was pointed at `name`'s copies: none of them goes for a while."""
        if self.over:
            self.pointed[name] = self.mono() + POINTED_FOR

    def dropped(self, name: str) -> None:
        """A replica was dropped from `name`'s write: it will not be announced."""
        if name in self.under:
            self.under[name] = min(self.under[name], self.mono() - self.settle)

    def forget(self, name: str) -> None:
        """`name` was forgotten (weft delete, gc): nothing more to copy or trim of it."""
        if name in self.under:
            del self.under[name]
        self.over.discard(name)
        self.retry.pop(name, None)
        self.pointed.pop(name, None)
        self.trimming.pop(name, None)
        f = self.flights.pop(name, None)
        if f is not None:
            self.to_node[f.target] -= 1
            self.from_node[f.source] -= 1

    # -- deciding ---------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return bool(self.under or self.over or self.flights or self.trimming)

    def plan(self, readers: Callable[[], Iterable[str]]) -> list[Effect]:
        """Copies and trims to start now. `readers` gives the objects jobs on
        compute nodes read (asked only when something is to be trimmed)."""
        now = self.mono()
        self.ended = 0
        for name in [n for n, f in self.flights.items() if f.deadline <= now]:
            self._fail(name)
        for name in [n for n, (_, d) in self.trimming.items() if d <= now]:
            del self.trimming[name]
        out: list[Effect] = []
        if self.under and len(self.flights) < self.total:
            out += self._copies(now)
        if self.over:
            out += self._trims(now, set(readers()))
        return out

    def _copies(self, now: float) -> list[Effect]:
        g = self.graph
        storages = self.storages
        batches: dict[str, list[tuple[str, str]]] = {}
        per_node = self.per_node
        # Nodes that can take or give one more copy: once either runs out, the
        # rest of a long under-replicated list is not looked at this round.
        taking = sum(1 for s in storages.values()
                     if s.ready and s.full_until <= now and self.to_node[s.node] < per_node)
        giving = sum(1 for s in storages.values() if s.ready and self.from_node[s.node] < per_node)
        for name, since in list(self.under.items()):
            if len(self.flights) >= self.total or not taking or not giving:
                break
            if name in self.flights:
                continue
            obj = g.objects.get(name)
            if obj is None or obj.state != FINISHED or not obj.locs:
                del self.under[name]
                continue
            retry = self.retry.get(name)
            if retry is not None and retry[0] > now:
                continue
            if since + (self.delay if self._settled(obj) else self.settle) > now:
                continue
            source = self._source(obj)
            if source is None:
                continue
            target = self._target(obj, now, retry[2] if retry else None)
            if target is None:
                continue
            size_mib = (obj.size or 0) >> 20
            self.flights[name] = _Flight(target.node, source.node, now + COPY_DEADLINE + size_mib)
            self.to_node[target.node] += 1
            self.from_node[source.node] += 1
            taking -= self.to_node[target.node] == per_node
            giving -= self.from_node[source.node] == per_node
            batches.setdefault(target.node, []).append((name, source.endpoint))
        return [Copy(storages[t], items) for t, items in batches.items()]

    def _settled(self, obj: Obj) -> bool:
        """No node its producer wrote to is still to announce a copy."""
        producer = self.graph.jobs.get(obj.producer or "")
        placement = producer.placement if producer is not None else None
        if not placement:
            return False
        return all(n in obj.locs or n not in self.storages for n in placement)

    def _source(self, obj: Obj) -> StorageRef | None:
        best = None
        for n in obj.locs:
            s = self.storages.get(n)
            if s is None or not s.ready or self.from_node[n] >= self.per_node:
                continue
            if best is None or self.from_node[n] < self.from_node[best.node]:
                best = s
        return best

    def _target(self, obj: Obj, now: float, avoid: str | None) -> StorageRef | None:
        fits = [s for s in self.storages.values()
                if s.ready and s.node not in obj.locs and s.node not in self.drained and s.full_until <= now and self.to_node[s.node] < self.per_node]
        if avoid is not None and len(fits) > 1:
            fits = [s for s in fits if s.node != avoid]
        if not fits:
            return None
        return min(fits, key=lambda s: (self.to_node[s.node], s.objects, -s.free_bytes))

    def _trims(self, now: float, reading: set[str]) -> list[Effect]:
        g = self.graph
        if self.pointed:
            self.pointed = {n: t for n, t in self.pointed.items() if t > now}
        batches: dict[str, list[str]] = {}
        for name in list(self.over):
            if name in self.trimming or name in reading or name in self.pointed:
                continue
            obj = g.objects.get(name)
            if obj is None or obj.state != FINISHED:
                self.over.discard(name)
                continue
            live = [self.storages[n] for n in obj.locs if n in self.storages and self.storages[n].ready]
            # Never the last copy, nor below the count: only a copy beyond it goes.
            if len(obj.locs) <= self.replicas or len(live) < 2:
                continue
            victim = max(live, key=lambda s: (s.objects, s.placed))
            self.trimming[name] = (victim.node, now + TRIM_DEADLINE)
            batches.setdefault(victim.node, []).append(name)
        return [Trim(self.storages[n], names) for n, names in batches.items()]

    # -- bookkeeping ------------------------------------------------------------------
    def _land(self, name: str, f: _Flight) -> None:
        self.ended += 1
        del self.flights[name]
        self.to_node[f.target] -= 1
        self.from_node[f.source] -= 1
        self.retry.pop(name, None)

    def _fail(self, name: str, *, counted: bool = True) -> None:
        f = self.flights[name]
        failures = (self.retry[name][1] + 1) if name in self.retry else 1
        self._land(name, f)
        self.failed += counted
        wait = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (failures - 1))
        self.retry[name] = (self.mono() + wait, failures, f.target)

    # -- views ------------------------------------------------------------------------
    def stats(self) -> dict[str, int]:
        return {
            "under_replicated": len(self.under), "over_replicated": len(self.over),
            "repair_in_flight": len(self.flights), "repair_copied": self.copied,
            "repair_failed": self.failed, "repair_trimmed": self.trimmed,
        }

    def node_view(self, node: str) -> dict[str, int]:
        view = {"copies_in": self.to_node[node], "copies_out": self.from_node[node]}
        if node in self.drained:
            view["drain_left"] = self.left(node)
        return view

    def left(self, node: str) -> int:
        """Objects on draining `node` still short of copies elsewhere."""
        objects = self.graph.objects
        return sum(1 for name in self.under if (o := objects.get(name)) is not None and node in o.locs)
