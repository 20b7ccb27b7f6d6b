"""The coordinator's ops that show the cluster as a whole: `nodes` (every
compute and storage node, with repair's view of each, and revoked keys) and
`stats` (job counts, slots, uptime, the state's counters, whether it
schedules). `weft nodes`, `weft stats` and the dashboard (dashboard/api.py)
read them.

Apart from node.py, the shell, because they decide and carry out nothing:
they read the state and sum it up. A mixin of CoordinatorNode (needs `state`,
`graph`, `epoch`, `started_at`, `fenced_why`, `revoked`), so the handlers
keep their names (`node._op_stats`, the dashboard calls them in-process).
"""

from __future__ import annotations

import time
from typing import Any

from weft.bus.rpc import CallContext

from .graph import RUNNABLE, WAITING, is_late


class ClusterViews:
    def _op_nodes(self, body: Any, ctx: CallContext) -> dict[str, Any]:
        s = self.state
        repair = s.repair
        return {"nodes": [c.view() for c in s.computes.values()]
                + [{**x.view(), **repair.node_view(x.node)} for x in s.storages.values()] + [*self.revoked.values()]}

    def _op_stats(self, body: Any, ctx: CallContext) -> dict[str, Any]:
        g = self.graph
        s = self.state
        # One pass over the jobs (answered during big submits, at 100,000s of jobs).
        now = time.time()
        counts: dict[str, int] = {}
        oldest = None
        late = 0
        for j in g.jobs.values():
            shown = j.shown_state
            counts[shown] = counts.get(shown, 0) + 1
            state = j.state
            if j.spec.deadline is not None and is_late(j, now):
                late += 1
            if (state == WAITING or state == RUNNABLE) and (oldest is None or j.submitted < oldest):
                oldest = j.submitted
        return {
            "jobs": counts,
            "runnable": g.runnable_count,
            "objects": len(g.objects),
            "computes": len(s.computes),
            "storages": len(s.storages),
            "slots": sum(c.slots for c in s.computes.values()),
            "busy": sum(len(c.running) for c in s.computes.values()),
            "longest_wait": max(0.0, time.time() - oldest) if oldest is not None else 0.0,
            "epoch": self.epoch,
            "uptime": time.time() - self.started_at,
            **s.stats,
            **s.repair.stats(),
            "paused": s.pause_view(),
            "scheduling": f"stopped: {self.fenced_why}" if s.fenced else "on",
            "late": late,
        }
