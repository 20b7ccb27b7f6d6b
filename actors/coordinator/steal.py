"""Work stealing: an idle compute node takes over jobs queued on another.

With a deep queue the planner sends each node jobs ahead of its free CPUs
(`--prefetch`), so no CPU idles for a round trip. At the tail of a batch, or
when a node joins late, one node may then hold queued jobs while another
has nothing to do. When nothing is runnable here, the idle node with the
lowest `since + steal_after * (1 + its load)` (so the freest node wins) asks
the node with the most jobs queued past its CPUs to give back half of them
(`withdraw`, at most 4 per free CPU of the thief). The giver withdraws only
tasks still waiting for room, which end failed-soft without a start time:
not attempts; they are queued here again and placed as usual, under new
fencing tokens, so no job runs twice because of it.

Looked at only in rounds with nothing runnable: O(compute nodes) then.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from .nodes import ComputeRef

# A node asked to withdraw is not asked again for this long (its answer and
# the tasks' ends come back meanwhile).
ASK_AGAIN = 2.0


class Stealing:
    def __init__(self, mono: Callable[[], float], after: float = 0.5) -> None:
        self.mono = mono
        self.after = after  # seconds an idle node waits (times 1 + its load); 0: never steal
        self.idle_since: dict[str, float] = {}
        self.asked: dict[str, float] = {}  # victim -> not asked again before (monotonic)
        self.due: float | None = None  # when to look again (the scheduler wakes then)
        self.asks: list[tuple[ComputeRef, int]] = []  # (victim, count) for the state to send

    def look(self, computes: Iterable[ComputeRef]) -> None:
        self.due = None
        if self.after <= 0:
            return
        now = self.mono()
        victims, thieves = [], []
        for c in computes:
            if not c.ready:
                continue
            if c.used_cpus > c.slots and self.asked.get(c.node, 0.0) <= now:
                victims.append(c)
            elif c.used_cpus < c.slots and c.used_chunks < c.chunks and not c.drained:
                thieves.append(c)
        if not victims or not thieves:
            self.idle_since.clear()
            return
        best_at, thief = None, None
        for t in thieves:
            since = self.idle_since.setdefault(t.node, now)
            at = since + self.after * (1 + t.used_cpus / t.slots)
            if best_at is None or at < best_at:
                best_at, thief = at, t
        assert thief is not None and best_at is not None
        if best_at > now:
            self.due = best_at
            return
        victim = max(victims, key=lambda c: c.used_cpus - c.slots)
        excess = victim.used_cpus - victim.slots
        count = max(1, min((excess + 1) // 2, 4 * (thief.slots - thief.used_cpus)))
        self.asks.append((victim, count))
        self.asked[victim.node] = now + ASK_AGAIN
        self.idle_since.pop(thief.node, None)
