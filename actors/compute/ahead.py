"""Tasks started ahead of their input, on the node whose task makes it (following).

The coordinator starts a job here before its producer (a task on this node)
has ended: `Task.after` names that producer. A callable follower starts on
the producer's value as soon as the producer's call returned, while the
producer's outputs are still on their way to storage: its pool call
overlaps that storage commit. It then holds its own outputs back until
every input it took that way is durable (its producer ended `success`),
and if one producer did not make it, the follower ends unmet (the
coordinator queues it again without counting an attempt), even when its
own call failed: a value that storage never acknowledged must not decide a
job's outcome. So no dependent's outcome, and no output of one, reaches
the coordinator before the input it was computed from is durable.

A command follower waits for the producer's end, as before: its stdout is
streamed to storage while it runs, so there is no point to hold back.

A follower whose input is ready goes to the head of the node's line for
room (`_goes_first`): depth first, the consumer before queued producers.

A mixin of ComputeNode (needs `tasks`, `resources`).
"""

from __future__ import annotations

from typing import Any

import trio

from weft.actors.model import split_object_name
from weft.protocol.enums import Outcome, TaskState

from .resources import Resources
from .task import Task, Unmet

# How a task reports an output it made empty and wrote nowhere (Transfers._hold_empty).
EMPTY = [None, 0, b""]


class Ahead:
    tasks: dict[str, Task]
    resources: Resources

    def _follow(self, task: Task) -> None:
        """Keep only the inputs whose producer is here and not done: the rest
        are read from storage as usual (the producer may have ended and been
        deleted before this start arrived)."""
        after, task.after = task.after, {}
        for name, (job, token) in after.items():
            producer = self.tasks.get(job)
            if producer is not None and producer.token == token:
                if producer.state != TaskState.DONE:
                    producer.followers += 1
                    task.after[name] = producer
                    continue
                if producer.outcome == Outcome.SUCCESS and producer.stored.get(_output(task, name)) == EMPTY:
                    # Ended before this start arrived (a no-op ends in well
                    # under a millisecond now that nothing is stored), its
                    # output held empty: on no storage node to read it from.
                    task.inline[name] = b""
                    continue
                if producer.dropped:
                    task.inputs[name] = made_copies(task.inputs[name], producer.dropped)
            task.ahead.add(name)

    async def _await_producers(self, task: Task) -> None:
        """Wait for the local producers of the task's inputs; take their bytes.

        A callable takes a value as soon as its producer has it (see the
        module docstring: `_inputs_durable` is the check before its outcome);
        a command waits for its producer's end.
        """
        early = task.spec.call is not None
        pending, task.after = list(task.after.items()), {}
        try:
            while pending:
                name, producer = pending[0]
                if producer.state != TaskState.DONE:
                    if early and producer.values is None:
                        await _event(producer, "valued").wait()
                    if producer.state != TaskState.DONE and not (
                            early and producer.values is not None and _output(task, name) in producer.values):
                        # A command's output, or one it delegated: only its end tells.
                        await _event(producer, "ended").wait()
                pending.pop(0)
                self._take_value(task, name, producer)
        finally:
            for _name, producer in pending:
                self._unfollow(producer)

    def _goes_first(self, task: Task) -> bool:
        """Does a follower whose inputs are here go to the head of the line?

        Depth first: it takes the slot its producer gave back before the
        tasks queued behind it (a consumer next to its producer, as Dask and
        Ray run it: its input is read from memory and freed sooner). Not past
        a queued task of higher priority, nor past a task bigger than one
        CPU at the head (the line's rule: a big task is not starved)."""
        spec = task.spec
        for other in self.resources.waiting():
            o = other.spec
            if o.priority > spec.priority or o.cpus > spec.cpus or (o.memory or 0) > (spec.memory or 0):
                return False
        return True

    def _take_value(self, task: Task, name: str, producer: Task) -> None:
        try:
            output = _output(task, name)
            if producer.state != TaskState.DONE:
                # Not durable yet: checked before the task's outcome.
                task.inline[name] = producer.values[output]
                task.unsure.append(producer)
                producer.taken = True  # its cached copy need not wait for a reader (valuecache.py)
                return
            if producer.outcome != Outcome.SUCCESS:
                raise Unmet(f"input {name!r}: its producer {producer.job} ended {producer.outcome}"
                            + (f": {producer.cause}" if producer.cause else ""))
            value = producer.values.get(output) if producer.values else None
            if value is not None:
                task.inline[name] = value
            elif output not in producer.written:
                raise Unmet(f"input {name!r}: {producer.job} did not write {output!r} (it delegated it)")
            elif producer.stored.get(output) == EMPTY:
                task.inline[name] = b""  # empty: on no storage node (Transfers._hold_empty)
            elif producer.dropped:
                # A command's output, read from storage like any input, but
                # not from a copy its write gave up on.
                task.inputs[name] = made_copies(task.inputs[name], producer.dropped)
            # else: a command's output, read from storage like any input
        finally:
            self._unfollow(producer)

    def _unfollow(self, producer: Task) -> None:
        producer.followers -= 1
        if producer.followers <= 0 and producer.state == TaskState.DONE:
            producer.values = None

    def _publish(self, task: Task, values: dict[str, Any]) -> None:
        """A callable's outputs, before they are stored: followers may start on them."""
        task.values = values
        if task.valued is not None:
            task.valued.set()

    async def _inputs_durable(self, task: Task) -> None:
        """Wait until every input the task took before it was durable is;
        Unmet if one's producer did not store it."""
        while task.unsure:
            producer = task.unsure[0]
            if producer.state != TaskState.DONE:
                await _event(producer, "ended").wait()
            task.unsure.pop(0)
            if producer.outcome != Outcome.SUCCESS:
                raise Unmet(f"an input's producer {producer.job} ended {producer.outcome} before storing it"
                            + (f": {producer.cause}" if producer.cause else ""))

    def _ended(self, task: Task) -> None:
        """The task is done: wake its followers; its values stay only for those still to take them."""
        if task.ended is not None:
            task.ended.set()
        if task.valued is not None:
            task.valued.set()
        if task.followers <= 0:
            task.values = None


def made_copies(entry: tuple[list[str], str], dropped: list[list[str]]) -> tuple[list[str], str]:
    """A follower's input (storage endpoints, object) less the copies its
    producer's write gave up on (`Task.dropped`: [object, endpoint] pairs).
    Its endpoints are the producer's placement, named before the write:
    a dropped one (e.g. a storage node restarted mid-write) answers that
    the object does not exist, and the read would fail the follower after
    it took a slot (an attempt that ran nothing) instead of reading the
    copy that was made. The write made at least one: never left empty."""
    endpoints, obj = entry
    gone = {ep for name, ep in dropped if name == obj}
    kept = [ep for ep in endpoints if ep not in gone]
    return (kept, obj) if kept and len(kept) < len(endpoints) else entry


def _event(task: Task, slot: str) -> trio.Event:
    event = getattr(task, slot)
    if event is None:
        event = trio.Event()
        setattr(task, slot, event)
    return event


def _output(task: Task, name: str) -> str:
    return split_object_name(task.inputs[name][1])[1]
