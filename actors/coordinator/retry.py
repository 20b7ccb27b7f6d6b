"""When a job tries again, and when a compute node takes starts again
(pending timeouts fall due on the same clock: exits.py).

A mixin of CoordinatorState (state.py). Soft failures back off: the second
try is at once, the third waits `retry_backoff`, each next one twice as
long up to `retry_backoff_max`, so a brief outage cannot use up a job's
budget of tries in seconds. A compute node that did not take a start (busy,
unreachable, closed) is held back from starts for a moment (not `ready`, which
is what the planner looks at), twice as long each time it refuses in a row.
The shell asks `next_due` when to wake and calls `release_due` then.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from .effects import Effect
from .graph import WAITING, Graph, Job
from .nodes import ComputeRef

log = logging.getLogger("weft.coordinator")

# A node that did not take a start gets none for this long, doubling while
# it keeps refusing, up to the cap.
HOLD_FIRST = 0.25
HOLD_MAX = 5.0
# A node that said busy is up and working through its queue: a short pause
# of fixed length, or one full queue would idle it for seconds.
BUSY_HOLD = 0.05


class RetryMixin:
    graph: Graph
    computes: dict[str, ComputeRef]
    mono: Callable[[], float]
    _kicked: bool

    if TYPE_CHECKING:  # given by CoordinatorState
        def _flush(self) -> list[Effect]: ...
        def pending_due(self) -> float | None: ...
        def release_pending(self, now: float) -> None: ...

    def init_retries(self, retry_backoff: float, retry_backoff_max: float) -> None:
        self.retry_backoff = retry_backoff
        self.retry_backoff_max = retry_backoff_max
        # Jobs backing off: id -> due (monotonic), and a heap of (due, id).
        self.backing_off: dict[str, float] = {}
        self._due: list[tuple[float, str]] = []
        # Compute nodes that did not take a start, by node id.
        self.held: dict[str, _Hold] = {}

    def retry_delay(self, tries: int) -> float:
        """How long a job waits after its `tries`-th counted try failed soft."""
        if tries <= 1:
            return 0.0
        return min(self.retry_backoff_max, self.retry_backoff * 2 ** (tries - 2))

    def back_off(self, job: Job, delay: float) -> None:
        """`job` (waiting, linked to nothing) becomes runnable in `delay` seconds."""
        due = self.mono() + delay
        self.backing_off[job.id] = due
        heapq.heappush(self._due, (due, job.id))

    def next_due(self) -> float | None:
        """When (monotonic) the next backing-off job or held node is due, if any."""
        due = self._due[0][0] if self._due else None
        pending = self.pending_due()  # pending timeouts (exits.py)
        if pending is not None and (due is None or pending < due):
            due = pending
        steal = self.planner.stealing.due  # an idle node's turn to take queued jobs (steal.py)
        if steal is not None and (due is None or steal < due):
            due = steal
        near = self.planner.placing.due  # a job's wait for room where its inputs are ends (placing.py)
        if near is not None and (due is None or near < due):
            due = near
        for h in self.held.values():
            if h.active and (due is None or h.until < due):
                due = h.until
        return due

    def release_due(self) -> list[Effect]:
        """Jobs whose back-off is over are runnable again; held nodes take starts again."""
        now = self.mono()
        g = self.graph
        heap = self._due
        while heap and heap[0][0] <= now:
            due, jid = heapq.heappop(heap)
            if self.backing_off.get(jid) != due:
                continue  # cancelled, or backing off again since
            del self.backing_off[jid]
            job = g.jobs.get(jid)
            if job is not None and job.state == WAITING:
                # Its inputs may have been lost meanwhile: count them again.
                g.link_inputs(job)
                self._kicked = True
        for node_id, h in self.held.items():
            if h.active and h.until <= now:
                # Not ready while held (the planner skips it); ready again
                # only if it is still the node we held, not a newer one.
                h.active = False
                if self.computes.get(node_id) is h.ref:
                    h.ref.ready = True
                    self._kicked = True
        self.release_pending(now)
        return self._flush()

    def hold(self, ref: ComputeRef, why: str, *, busy: bool = False) -> None:
        """`ref` did not take a start: place nothing on it for a moment
        (it is not `ready` meanwhile, which is what the planner looks at)."""
        h = self.held.get(ref.node)
        if h is None or h.ref is not ref:
            h = self.held[ref.node] = _Hold(ref)
        if h.active or not ref.ready:
            return  # held already, or not taking starts anyway (lost, restarting)
        if busy:
            pause = BUSY_HOLD
        else:
            pause = min(HOLD_MAX, HOLD_FIRST * 2 ** h.times)
            h.times += 1
        h.until = self.mono() + pause
        h.active = True
        ref.ready = False
        log.log(logging.DEBUG if busy else logging.INFO, "compute %s did not take starts (%s): none for %.3gs",
                ref.node, why, pause)

    def took_starts(self, ref: ComputeRef) -> None:
        """`ref` answered a start: its refusals in a row are over."""
        h = self.held.get(ref.node)
        if h is not None and not h.active:
            del self.held[ref.node]


class _Hold:
    """A compute node held back from starts (see CoordinatorState.hold)."""

    __slots__ = ("ref", "until", "times", "active")

    def __init__(self, ref: ComputeRef) -> None:
        self.ref = ref
        self.until = 0.0
        self.times = 0  # holds in a row: each one twice as long
        self.active = False
