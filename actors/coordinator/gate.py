"""Whether a runnable job may start now: its time windows (or the cluster's
default ones) and its tree's root not decommissioned.

A mixin of CoordinatorState (state.py). The planner asks `gate(job)` for
each job it picks, only while any job could be refused (a job with windows
was submitted, the cluster has default windows, or a root was
decommissioned), so other clusters pay nothing. A job outside its windows
is set aside like a job backing off (waiting, linked to nothing; retry.py)
until its next allowed start, at most an hour at a time so a clock or
timezone change is seen; its status shows that start (`next_start`). A job
whose windows never open within a week is looked at again hourly. A job
under a decommissioned root is cancelled (spawn.py says why).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, tzinfo
from typing import TYPE_CHECKING, Any

from weft.protocol.enums import Outcome

from .graph import CANCELLED, RUNNABLE, WAITING, Graph, Job

if TYPE_CHECKING:
    from weft.actors.windows import Rule

    from .planner import Planner

log = logging.getLogger("weft.coordinator")


# The rules' module is loaded when the cluster or a job has windows: a start
# without any does not pay for it (the daemons' image, docs/performance.md).
def parse_rules(windows: Any) -> list[Rule]:
    from weft.actors.windows import parse_rules

    return parse_rules(windows)


def next_allowed(rules: list[Rule], now: datetime) -> datetime | None:
    from weft.actors.windows import next_allowed

    return next_allowed(rules, now)


# A job set aside by its windows is looked at again at least this often (s).
RECHECK = 3600.0


class GateMixin:
    graph: Graph
    planner: Planner
    wall: Callable[[], float]

    if TYPE_CHECKING:  # given by CoordinatorState and its mixins
        decommissioned: dict[str, float]

        def back_off(self, job: Job, delay: float) -> None: ...

    def init_gate(self, default_windows: list[Any] | None = None) -> None:
        # The cluster's default windows, for jobs that give none (--time-windows).
        self.default_windows = parse_rules(default_windows) if default_windows else []
        # The coordinator's timezone (None: the machine's local one); tests set one.
        self.tz: tzinfo | None = None
        # Jobs set aside by their windows: id -> next allowed start (wall time; None: not within a week).
        self.window_waits: dict[str, float | None] = {}
        self._rules: dict[tuple, list[Rule]] = {}
        if self.default_windows:
            self.planner.gate = self.gate

    def arm_gate(self) -> None:
        """Something may be refused from now on: the planner asks."""
        self.planner.gate = self.gate

    def rules_of(self, job: Job) -> list[Rule]:
        w = job.spec.windows
        if not w:
            return self.default_windows
        key = tuple(map(tuple, w))
        rules = self._rules.get(key)
        if rules is None:
            if len(self._rules) > 1000:
                self._rules.clear()
            rules = self._rules[key] = parse_rules(w)
        return rules

    def local_now(self) -> datetime:
        t = datetime.fromtimestamp(self.wall(), self.tz)
        return t if self.tz is not None else t.astimezone()

    def next_start(self, job: Job) -> datetime | None:
        """When `job` may start next by its windows (now if it may now)."""
        rules = self.rules_of(job)
        now = self.local_now()
        return next_allowed(rules, now) if rules else now

    def gate(self, job: Job, follower: bool = False) -> bool:
        """True if `job` may not start now. A runnable job (not `follower`,
        which is only looked at) is set aside or cancelled here."""
        spec = job.spec
        if self.decommissioned and (spec.root or job.id) in self.decommissioned:
            if not follower:
                root = spec.root or job.id
                self.graph.fail(job, f"cancelled: its root {root} was decommissioned",
                                outcome=Outcome.CANCELLED, state=CANCELLED, cascade=CANCELLED)
            return True
        if not spec.windows and not self.default_windows:
            return False
        now = self.local_now()
        nxt = next_allowed(self.rules_of(job), now)
        if nxt == now:
            self.window_waits.pop(job.id, None)
            return False
        if not follower:
            job.state = WAITING  # linked to nothing: runnable again when its back-off ends
            job.missing = 0
            delay = RECHECK if nxt is None else min(RECHECK, max(1.0, (nxt - now).total_seconds()))
            self.back_off(job, delay)
            self.window_waits[job.id] = None if nxt is None else nxt.timestamp()
            log.debug("job %s waits for its time window (next start %s)", job.id, nxt)
        return True

    def window_reason(self, job: Job) -> str | None:
        """Why `job` waits, if its time window holds it back (for "why is it
        waiting" and a pending timeout's detail): `time-window: ...`."""
        if job.id not in self.window_waits or job.state != WAITING:
            return None
        nxt = self.window_waits[job.id]
        if nxt is None:
            return "time-window: its time windows do not open within a week"
        when = datetime.fromtimestamp(nxt, self.tz).strftime("%a %Y-%m-%d %H:%M")
        return f"time-window: closed until {when}"

    def window_view(self, job: Job, d: dict[str, Any]) -> None:
        """`next_start` (and why) in the status of a job its windows hold back."""
        if job.id in self.window_waits and job.state == WAITING:
            nxt = self.window_waits[job.id]
        elif job.state in (WAITING, RUNNABLE) and (job.spec.windows or self.default_windows):
            # Not picked yet (no free slot, inputs not made): what its windows say now.
            now = self.local_now()
            at = next_allowed(self.rules_of(job), now)
            if at == now:
                nxt = False
            else:
                nxt = None if at is None else at.timestamp()
        else:
            nxt = False
        if nxt is not False:
            if nxt is not None:
                d["next_start"] = nxt
            d["waiting_for"] = "time window" if nxt is not None else "time window (closed all week)"
        if job.spec.windows:
            d["windows"] = [" ".join(w) for w in job.spec.windows]
