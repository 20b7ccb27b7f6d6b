"""Recurring jobs: a job definition that starts a new instance each period.

A mixin of CoordinatorState (state.py). `weft submit --every 30m --name
NIGHTLY -- CMD` (or a unit's `Every=`) defines NIGHTLY; its instances are
jobs named `NIGHTLY.1`, `NIGHTLY.2`, ... (each its own job: the same work
again would otherwise be answered from the first one's result). The first
starts at once, each next one a period after the one before was due. A
period whose previous instance has not finished (queued, waiting for its
time window, or running) is skipped and counted. Deleting the definition
stops further instances; one running finishes.

The definitions live in the journal's meta (`recurring`): the shell
journals `recurring` after each change and checks `recurring_due` once a
second (nothing to do, and nothing done, while there are none).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from weft.actors.model import JobSpec, SpecError, check_job_name

from .effects import Effect
from .graph import Graph
from .owners import intern_owner

if TYPE_CHECKING:
    from .submit import Submitted

log = logging.getLogger("weft.coordinator")

# The journal's meta key for the definitions.
RECURRING = "recurring"
# A period shorter than this is refused: instances would pile into the journal.
MIN_EVERY = 10.0


class RecurringMixin:
    graph: Graph
    wall: Callable[[], float]

    if TYPE_CHECKING:  # given by CoordinatorState
        def submit(self, specs: list[JobSpec], replace: bool = False,
                   owner: str | None = None) -> tuple[list[Submitted], list[Effect]]: ...

    def init_recurring(self) -> None:
        # name -> {"spec": wire, "every": s, "next": wall time, "n": instances, "last": job id | None,
        #          "skipped": periods skipped, "since": defined at}
        self.recurring: dict[str, dict[str, Any]] = {}

    def restore_recurring(self, value: Any) -> None:
        if isinstance(value, dict):
            for name, d in value.items():
                if isinstance(name, str) and isinstance(d, dict) and {"spec", "every", "next", "n"} <= set(d):
                    self.recurring[name] = d

    def define_recurring(self, name: str, spec: JobSpec, every: float, owner: str | None = None) -> dict[str, Any]:
        check_job_name(name)
        if every < MIN_EVERY:
            raise SpecError(f"--every {every:g}s: at least {MIN_EVERY:g}s between instances")
        if name in self.recurring:
            raise SpecError(f"recurring job {name!r} exists: delete it first (weft recurring delete {name})")
        spec.name = None
        now = self.wall()
        n = 0  # instances of an earlier definition of the name keep theirs: count on after them
        while f"{name}.{n + 1}" in self.graph.jobs:
            n += 1
        d = {"spec": spec.to_wire(), "every": every, "next": now, "n": n, "last": None, "skipped": 0, "since": now}
        if owner is not None:
            d["owner"] = owner  # its instances' owner (owners.py)
        self.recurring[name] = d
        return d

    def delete_recurring(self, name: str) -> dict[str, Any]:
        d = self.recurring.pop(name, None)
        if d is None:
            raise SpecError(f"no recurring job {name!r} (weft recurring ls)")
        return d

    def recurring_due(self) -> tuple[bool, list[Effect]]:
        """Start the instances that are due (or skip their period); whether
        a definition changed (to journal), and the submits' effects."""
        if not self.recurring:
            return False, []
        now = self.wall()
        changed, effects = False, []
        for name, d in self.recurring.items():
            if d["next"] > now:
                continue
            changed = True
            # The next period after now: periods missed while down are not run late.
            periods = int((now - d["next"]) // d["every"]) + 1
            d["next"] += periods * d["every"]
            last = self.graph.jobs.get(d["last"]) if d["last"] else None
            if last is not None and not last.done:
                d["skipped"] = d.get("skipped", 0) + periods
                continue
            d["skipped"] = d.get("skipped", 0) + periods - 1
            d["n"] += 1
            spec = JobSpec.from_wire(d["spec"])
            spec.name = f"{name}.{d['n']}"
            try:
                results, more = self.submit([spec], owner=intern_owner(d.get("owner")))
            except SpecError as e:  # (its input gone, its name taken meanwhile): this period is lost
                log.warning("recurring job %s: instance %s not started: %s", name, spec.name, e)
                continue
            d["last"] = results[0].job.id
            effects += more
        return changed, effects

    def recurring_view(self) -> list[dict[str, Any]]:
        out = []
        for name, d in sorted(self.recurring.items()):
            spec = d["spec"]
            out.append({"name": name, "every": d["every"], "next": d["next"], "instances": d["n"],
                        "last": d["last"], "skipped": d.get("skipped", 0), "since": d.get("since"),
                        "command": spec.get("cmd"), "call": spec.get("call")})
        return out
