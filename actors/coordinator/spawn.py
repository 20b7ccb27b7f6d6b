"""Child jobs: jobs a running job submits (its WEFT_JOB_ID made the client
set `spawned_by`), their trees, a root's spawn limit, decommissioning.

A mixin of CoordinatorState (state.py), asked by a submit only when one of
its specs is a child or has time windows.

Names: a child is named under its parent, `PARENT.NAME` (`PARENT.j<hash>`
when it gave no name; a parent's version `@K` is written `-vK`), so a tree
reads in any job list and a child resubmitted by a retried parent joins the
one it made before instead of running twice. `root` is the parent's root
(or the parent): the coordinator sets it, whatever the client sent.

Spawn limit: the root's `max_spawns` counts the jobs of its tree below it,
each as often as it was tried (retries included); a submit that would pass
it is refused with `spawn-limit`, nothing taken.

Decommissioning a root: no job of its tree starts any more (the planner's
gate cancels one that comes up), queued ones end `cancelled` at once,
running ones finish, and a submit under it is refused (`decommissioned`).
Kept in the journal's meta (`decommissioned`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from weft.actors.model import JobSpec, SpecError, check_job_name, split_version
from weft.protocol.enums import ErrorCode

from .effects import Effect
from .graph import CANCELLING, RUNNING, Graph, Job

# The journal's meta key for decommissioned roots.
DECOMMISSIONED = "decommissioned"


class SpawnRefused(SpecError):
    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


def child_name(parent: str, name: str) -> str:
    base, version = split_version(parent)
    prefix = base if version == 1 else f"{base}-v{version}"
    full = f"{prefix}.{name}"
    try:
        return check_job_name(full)
    except SpecError:
        raise SpecError(f"child job name {full!r} is too long or invalid: a job id is at most 128 "
                        "characters (give children shorter names)") from None


class SpawnMixin:
    graph: Graph
    wall: Callable[[], float]

    if TYPE_CHECKING:  # given by CoordinatorState and its mixins
        def arm_gate(self) -> None: ...
        def cancel(self, jobs: list[Job], *, dependents: bool = True) -> list[Effect]: ...

    def init_spawn(self) -> None:
        # Root -> since (wall time).
        self.decommissioned: dict[str, float] = {}
        # Root -> ids of its tree below it; built from the graph the first
        # time a root is asked for (after a restart), kept up by submits.
        self.trees: dict[str, set[str]] = {}

    def restore_decommissioned(self, value: Any) -> None:
        if isinstance(value, dict):
            self.decommissioned.update({k: float(v) for k, v in value.items()
                                        if isinstance(k, str) and isinstance(v, int | float)})
            if self.decommissioned:
                self.arm_gate()

    def tree(self, root: str) -> set[str]:
        ids = self.trees.get(root)
        if ids is None:
            ids = self.trees[root] = {j.id for j in self.graph.jobs.values() if j.spec.root == root}
        return ids

    def spawned(self, root: str) -> int:
        """Jobs spawned under `root`, each counted as often as it was tried."""
        jobs = self.graph.jobs
        return sum(max(1, j.attempts) for jid in self.tree(root) if (j := jobs.get(jid)) is not None)

    def take_submission_fields(self, specs: list[JobSpec]) -> None:
        """Before names are given: children named under their parents, their
        roots set, the spawn limits and decommissions checked (SpawnRefused,
        nothing taken); time windows arm the planner's gate."""
        g = self.graph
        new: dict[str, list[str]] = {}
        for i, spec in enumerate(specs):
            if spec.windows:
                self.arm_gate()
            if spec.spawned_by is None:
                spec.root = None  # (only the coordinator says whose tree a job is in)
                continue
            parent = g.jobs.get(g.names.resolve(spec.spawned_by))
            if parent is None:
                raise SpecError(f"job #{i + 1}: its parent job {spec.spawned_by!r} is unknown")
            root = parent.spec.root or parent.id
            if root in self.decommissioned:
                raise SpawnRefused(f"decommissioned: root {root} is decommissioned, no new job may start under it",
                                   ErrorCode.DECOMMISSIONED)
            if spec.name is None or not spec.name.startswith(child_name(parent.id, "")):
                spec.name = child_name(parent.id, spec.name or spec.job_id())
            spec.spawned_by, spec.root, spec.max_spawns = parent.id, root, None
            if spec.name not in g.jobs:
                new.setdefault(root, []).append(spec.name)
        for root, ids in new.items():
            r = g.jobs.get(root)
            limit = r.spec.max_spawns if r is not None else None
            if limit is not None:
                used = self.spawned(root)
                if used + len(ids) > limit:
                    raise SpawnRefused(f"spawn-limit: root {root} may spawn {limit} jobs (retries included): "
                                       f"{used} spawned, {len(ids)} more refused", ErrorCode.SPAWN_LIMIT)
            self.tree(root).update(ids)

    def decommission(self, root: Job) -> list[Effect]:
        """No further job of `root`'s tree starts; queued ones are cancelled."""
        self.decommissioned.setdefault(root.id, self.wall())
        self.arm_gate()
        jobs = self.graph.jobs
        queued = [j for jid in [root.id, *self.tree(root.id)] if (j := jobs.get(jid)) is not None
                  and not j.done and j.state not in (RUNNING, CANCELLING)]
        return self.cancel(queued, dependents=True)

    def tree_view(self, root: Job) -> list[Job]:
        """The root and its tree, parents before children."""
        jobs = self.graph.jobs
        members = [j for jid in self.tree(root.id) if (j := jobs.get(jid)) is not None]
        return [root, *sorted(members, key=lambda j: j.seq)]
