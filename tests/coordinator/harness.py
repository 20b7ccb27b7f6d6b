"""A coordinator state with fake nodes and a hand-turned clock: no sockets,
no processes. Nodes are only names here; what a node would say is written as
the typed news the shell would parse from its messages."""

from __future__ import annotations

from typing import Any

from weft.actors.coordinator import news
from weft.actors.coordinator.effects import Dispatch, Effect, JournalWrite, Send, Wake
from weft.actors.coordinator.graph import Job
from weft.actors.coordinator.journal import Journal
from weft.actors.coordinator.nodes import ComputeRef, StorageRef, set_resources
from weft.actors.coordinator.state import CoordinatorState, Submitted
from weft.actors.model import JobSpec
from weft.bus.codec import CALL, decode, encode_frames
from weft.protocol.enums import ObjectState, Outcome, TaskState
from weft.protocol.objects import ObjectInfo
from weft.protocol.tasks import TaskInventory, TaskReport

CONCAT = "weft.actors.builtins:concat"


class Clock:
    """Wall and monotonic time that move only when told."""

    def __init__(self) -> None:
        self.t = 1000.0

    def wall(self) -> float:
        return self.t

    def mono(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


def wire(body: Any) -> Any:
    """`body` as a node's message brings it: through the real codec."""
    frames = encode_frames(CALL, 1, "poll", "test", body)
    return decode(frames[0], attached=frames[1:]).body


def out(job: str, output: str = "result") -> str:
    return f"{job}/{output}"


def spec(name: str, *deps: str, priority: int = 0, timeout: float | None = None,
         value: str | None = None, command: list[str] | None = None) -> JobSpec:
    """A named job reading the `result` of each of `deps`, making `result`."""
    return JobSpec(
        call=None if command else CONCAT,
        command=command,
        name=name,
        refs={f"in{i}": out(d) for i, d in enumerate(deps)},
        inputs={"v": value if value is not None else name},
        outputs=["result"],
        priority=priority,
        timeout=timeout,
    )


class Cluster:
    """A CoordinatorState and the fake nodes it knows; records every effect."""

    def __init__(self, *, computes: int = 1, slots: int = 1, storages: int = 1,
                 journal: Journal | None = None, state: CoordinatorState | None = None,
                 clock: Clock | None = None, **kw: Any) -> None:
        self.clock = clock or Clock()
        kw.setdefault("follow_ahead", 0)
        self.state = state or CoordinatorState(wall=self.clock.wall, mono=self.clock.mono, **kw)
        self.journal = journal
        self.effects: list[Effect] = []
        for i in range(storages):
            self.add_storage(f"storage-{i}")
        for i in range(computes):
            self.add_compute(f"compute-{i}", slots)

    @property
    def graph(self):  # noqa: ANN201
        return self.state.graph

    def job(self, name: str) -> Job:
        return self.state.graph.jobs[name]

    def take(self, effects: list[Effect]) -> list[Effect]:
        """Record effects; journal writes go to the real journal if there is one."""
        self.effects += effects
        if self.journal is not None:
            for e in effects:
                if isinstance(e, JournalWrite):
                    for j in e.new:
                        self.journal.stage_new(j)
                    for j in e.changed:
                        self.journal.stage(j)
                    self.journal.stage_attempts(e.attempts)
            self.journal.commit()
        return effects

    # -- nodes ---------------------------------------------------------------------
    def add_compute(self, name: str, slots: int = 1, tasks: list[TaskReport] | None = None, *,
                    memory: int = 0, host: str | None = None) -> ComputeRef:
        self.take(self.state.meet("compute", name, f"tcp://{name}:1", None))
        ref = self.state.computes[name]
        set_resources(ref, TaskInventory([], 0, "", slots, 0, memory, host))
        self.take(self.state.compute_inventory(ref, slots, tasks or []))
        return ref

    def add_storage(self, name: str, objects: list[ObjectInfo] | None = None) -> StorageRef:
        self.take(self.state.meet("storage", name, f"tcp://{name}:1", None))
        ref = self.state.storages[name]
        scavenge, effects = self.state.storage_inventory(ref, objects or [])
        assert scavenge == []
        self.take(effects)
        return ref

    def compute(self, name: str = "compute-0") -> ComputeRef:
        return self.state.computes[name]

    # -- user ------------------------------------------------------------------------
    def submit(self, *specs: JobSpec) -> list[Submitted]:
        results, effects = self.state.submit(list(specs))
        self.take(effects)
        return results

    # -- scheduling --------------------------------------------------------------------
    def round(self) -> list[Dispatch]:
        """One scheduling round; every dispatch is started as the shell would,
        with the nodes accepting."""
        dispatches = [e for e in self.take(self.state.schedule_round()) if isinstance(e, Dispatch)]
        for d in dispatches:
            tokens = self.state.attempt_tokens(d)
            failed: dict[str, str] = {}
            unsent: dict[str, str] = {}
            starts = self.state.start_messages(d, tokens, failed, unsent)
            self.state.starts_answered(d, tokens, [TaskReport(s.job, TaskState.PENDING, s.token) for s in starts])
            self.take(self.state.dispatch_ended(d, tokens, failed, None, unsent))
        return dispatches

    def started(self) -> list[str]:
        """Job ids one round dispatches, in pick order."""
        return [j.id for d in self.round() for j, _ in d.items]

    # -- news ----------------------------------------------------------------------------
    def ends(self, name: str, outcome: str = "success", *, token: int | None = None,
             node: str | None = None, cause: str | None = None, code: str | None = None,
             exit_code: int | None = None, unmet: bool = False, delegation: Any = None,
             stored: bool = True, ran: bool = True, dropped: list[list[str]] | None = None,
             ran_for: float | None = None) -> list[Effect]:
        """The compute node running `name` reports its end (outputs stored
        durably), as the `task` event of its poll answer the shell parses.
        `ran=False`: it ended without ever taking a slot (no start time);
        `ran_for`: it ran that many seconds (its start and finish times)."""
        job = self.job(name)
        node = node or job.node or job.ran_on
        st = None
        if outcome == "success" and stored and delegation is None:
            where = (job.placement or ["storage-0"])[0]
            st = {o: [where, 3, b"abc"] for o in job.spec.outputs}
        now = self.clock.wall()
        started = now - ran_for if ran_for is not None else now if ran and not unmet else None
        report = TaskReport(name, TaskState.DONE, job.token if token is None else token, Outcome(outcome),
                            exit_code, cause, code, delegation, unmet, st, started,
                            now if ran_for is not None else None, dropped=dropped)
        return self.task_news(node, report)

    def task_news(self, node: str | ComputeRef, *reports: TaskReport) -> list[Effect]:
        """`reports` as the `task` events of one poll answer (from `node`,
        or from a ref the state may have dropped already), parsed as the shell does."""
        ref = self.state.computes[node] if isinstance(node, str) else node
        events = [[i, "task", r.to_wire()] for i, r in enumerate(reports)]
        return self.take(self.state.task_news(ref, news.task_ends(wire(events))))

    def object_finished(self, name: str, storage: str = "storage-0") -> list[Effect]:
        ref = self.state.storages[storage]
        event = [1, "finished", ObjectInfo(name, ObjectState.FINISHED, 3).to_wire()]
        return self.take(self.state.storage_events(ref, news.storage_events(wire([event]))))

    def run(self, name: str) -> None:
        """Start `name` (it must be the next pick) and let it succeed."""
        assert self.started() == [name]
        self.ends(name)


def sends(effects: list[Effect], op: str) -> list[Send]:
    return [e for e in effects if isinstance(e, Send) and e.op == op]


def woken(effects: list[Effect]) -> list[Any]:
    return [e.waiter for e in effects if isinstance(e, Wake)]
