"""The compute node's side of its task log (tasklog.py): the `done` record of a
task, and coming back from the log after a crash.

Apart from node.py because it is one job, with one pair of ends: `_log_done`
writes what `_restore` reads back (the same short keys), so the two stay
side by side, and the node's shell keeps to ops and running tasks.

A mixin of ComputeNode (needs `tasklog`, `taskdirs`, `tasks`, `data_dir`,
`node_id`).
"""

from __future__ import annotations

import logging
import time

from weft.actors.model import JobSpec, SpecError
from weft.protocol.enums import Outcome, TaskState

from .task import Task, restored_delegation
from .taskdirs import kill_leftover_groups

log = logging.getLogger("weft.compute")


class Restore:
    def _restore(self) -> None:
        """Come back from a crash: stop what the dead node left running, reload its tasks."""
        records = self.tasklog.load()
        pgids = {r["pg"] for r in records.values() if r.get("s") == "started" and isinstance(r.get("pg"), int)}
        killed = kill_leftover_groups(self.data_dir / "tasks", pgids)
        if killed:
            log.warning("stopped %d processes left running by the previous run of this node", killed)
        self.taskdirs.prepare()
        for job, rec in records.items():
            try:
                spec = JobSpec.from_wire(rec.get("spec"))
            except SpecError:
                continue
            task = Task(job, spec, {}, {}, int(rec.get("t", 0)))
            task.state = TaskState.DONE
            # When it took its slot ("r", written once its run began: its
            # process spawned, a callable's inputs read). A task that never
            # began has no start time, which tells the coordinator it was not
            # an attempt: queued, or stopped by the crash while reading inputs.
            task.started = rec.get("r")
            if rec.get("s") == "done":
                task.outcome = Outcome(rec.get("o", "failed-soft"))
                task.cause = rec.get("c")
                task.exit_code = rec.get("x")
                task.delegation = restored_delegation(rec.get("d"))
                task.code = rec.get("e")
                for name in rec.get("h") or ():  # its empty outputs (Transfers._hold_empty)
                    task.written.append(name)
                    task.stored[name] = [None, 0, b""]
                task.finished = rec.get("f")
                task.started = rec.get("st")
            else:
                task.outcome = Outcome.FAILED_SOFT
                task.cause = f"compute node {self.node_id} restarted while the task ran"
                task.finished = time.time()
                self._log_done(task)
            self.tasks[job] = task
        if self.tasks:
            log.info("restored %d tasks from the task log", len(self.tasks))

    def _log_done(self, task: Task) -> None:
        # The keys _restore reads back (and tasklog.py merges with the `started` record).
        self.tasklog.write({
            "job": task.job, "s": "done", "t": task.token,
            "o": str(task.outcome), "c": task.cause, "e": task.code, "x": task.exit_code,
            "d": None if task.delegation is None else task.delegation.to_wire(),
            "st": task.started, "f": task.finished,
            "h": [name for name, entry in task.stored.items() if entry[0] is None] or None,
        })

