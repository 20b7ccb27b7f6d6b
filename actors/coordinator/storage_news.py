"""The state's rules for storage news: objects finished, delegated, partial,
deleted or lost with their node, and lineage (lost objects made again).

A mixin of CoordinatorState (state.py): it uses the state's graph, node
tables and outbox, and sends nothing itself (a scavenge is an effect).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from weft.actors.trees import is_content_object
from weft.protocol.enums import EventKind, ObjectState
from weft.protocol.objects import ObjectInfo

from .effects import Effect, Scavenge
from .graph import (
    CANCELLED,
    CANCELLING,
    DELEGATED,
    FAILED,
    FINISHED,
    LOST,
    RUNNING,
    SUCCEEDED,
    Graph,
    Job,
    Obj,
)
from .news import ObjectEvent
from .nodes import StorageRef
from .repair import Repair

log = logging.getLogger("weft.coordinator")

_DELETED = EventKind.DELETED
_CREATED = EventKind.CREATED
_PARTIAL = ObjectState.PARTIAL

# Small objects' bytes (from storage events) are kept to pass inline to the
# jobs that read them, up to this many bytes in all.
INLINE_CACHE_BYTES = 64 << 20


class StorageNewsMixin:
    graph: Graph
    storages: dict[str, StorageRef]
    storage_grace: float
    lost_storages: dict[str, float]
    lost_objects: set[str]
    awaiting: dict[str, set[str]]
    stats: dict[str, int]
    inline_bytes: int
    repair: Repair
    mono: Callable[[], float]
    _out: list[Effect]

    if TYPE_CHECKING:  # given by CoordinatorState
        def _kick(self) -> None: ...
        def _flush(self) -> list[Effect]: ...
        def _succeeded(self, job: Job) -> None: ...

    # -- inventories and events --------------------------------------------------------
    def storage_inventory(self, ref: StorageRef, objects: list[ObjectInfo]) -> tuple[list[str], list[Effect]]:
        """Apply a storage node's inventory; returns the partial objects to
        scavenge (before the effects: they include the next round).

        The node is ready from here on (in the same step: a scheduling round
        in between would find its objects with no live copy and call them lost).
        """
        ref.objects = len(objects)
        scavenge: list[str] = []
        held = set()
        for info in objects:
            held.add(info.name)
            self._apply_object(ref, info, scavenge)
        # What we thought it held but it no longer does (it restarted and lost
        # unflushed work, or someone deleted it) is gone from there.
        g = self.graph
        node = ref.node
        for obj in g.objects.values():
            if obj.name not in held and node in obj.locs:
                # The node is back without it: no point waiting (lost since 0).
                if g.copy_gone(obj, node, lost_at=0.0):
                    self.lost_objects.add(obj.name)
                self.repair.gone(obj, node)
        ref.ready = True
        self._kick()
        return scavenge, self._flush()

    def storage_events(self, ref: StorageRef, events: list[ObjectEvent]) -> list[Effect]:
        scavenge: list[str] = []
        for kind, info in events:
            if kind == _DELETED:
                obj = self.graph.objects.get(info.name)
                if obj is not None:
                    self.graph.copy_gone(obj, ref.node, lost_at=None)
                    self.repair.gone(obj, ref.node)
                ref.objects -= 1
                continue
            if kind == _CREATED:
                ref.objects += 1
            self._apply_object(ref, info, scavenge)
        if scavenge:
            self._out.append(Scavenge(ref, scavenge))
        return self._flush()

    def scavenged(self, names: list[str]) -> None:
        """The partial objects were deleted (or tried): a rerun re-creates them."""
        for n in names:
            obj = self.graph.objects.get(n)
            if obj is not None:
                self.graph.forget_state(obj)

    def stored_outputs(self, job: Job, stored: dict) -> None:
        """Outputs the task reports finished (storage acknowledged them durable
        before the task ended): the same news as storage's `finished` events,
        which for these objects are quiet and arrive later. A copy refused
        here (fenced) is deleted on its node, as from an event."""
        for output, entry in stored.items():
            if not (isinstance(output, str) and isinstance(entry, list) and len(entry) == 3):
                continue
            node, size, data = entry
            if node is None and size == 0 and data == b"" and output in job.spec.outputs:
                self.hold_empty(job, output)  # written nowhere: the journal keeps it
                self._landed(self.graph.objects[f"{job.id}/{output}"])
                continue
            ref = self.storages.get(node) if isinstance(node, str) else None
            if ref is None or not isinstance(size, int):
                continue  # storage's own event will tell
            ok = isinstance(data, bytes) and len(data) == size
            scavenge: list[str] = []
            self._apply_object(ref, ObjectInfo(f"{job.id}/{output}", FINISHED, size, job.token, None,
                                               data if ok else None), scavenge)
            if scavenge:
                self._out.append(Scavenge(ref, scavenge))

    def _apply_object(self, ref: StorageRef, info: ObjectInfo, scavenge: list[str]) -> None:
        g = self.graph
        name = info.name
        state = info.state
        if state == FINISHED:
            if self._fenced_copy(name, info.token):
                # Written by an attempt we gave up on (its node was lost, a newer
                # attempt runs): not this object's copy. Storage fences writers
                # only per node, so it cannot know; delete it there, so that the
                # attempt now running (or a repair) can write that node.
                log.warning("storage %s holds %s from a fenced attempt (token %d): not taken, deleting it",
                            ref.node, name, info.token)
                scavenge.append(name)
                return
            data = info.data
            if data is not None and self.inline_bytes + len(data) <= INLINE_CACHE_BYTES:
                obj = g.objects.get(name)
                if obj is None or obj.data is None:
                    self.inline_bytes += len(data)
                    if obj is None:
                        obj = g.resolve(name)
                    obj.data = data
            if g.object_finished(name, ref.node, info.size):
                self._kick()
            obj = g.objects[name]
            self.repair.landed(obj, ref.node)
            self._landed(obj)
            return
        obj = g.objects.get(name) or g.resolve(name)
        if state == DELEGATED:
            if obj.state == FINISHED:
                return  # finished is immutable: a stray delegation elsewhere cannot undo it
            obj.add_loc(ref.node)
            if obj.state != DELEGATED:
                g.delegate(name, info.target or "")
            return
        if obj.state == FINISHED:
            return  # another replica is still arriving: the object is already there
        g.object_reported(obj, state)
        if state == _PARTIAL:
            producer = g.jobs.get(obj.producer) if obj.producer else None
            # A content object (a put, a tree's file) has no producer job,
            # and its writer takes over any partial copy itself (trees.py).
            if (producer is None or producer.state != RUNNING) and not is_content_object(name):
                scavenge.append(name)

    def _landed(self, obj: Obj) -> None:
        """`obj` is finished: its producer succeeded if it waited only for it."""
        producer = obj.producer
        pending = self.awaiting.get(producer or "")
        if pending is not None:
            pending.discard(obj.name)
            if not pending:
                del self.awaiting[producer]
                job = self.graph.jobs.get(producer)
                if job is not None and (job.state == RUNNING or job.state == CANCELLING):
                    self._succeeded(job)

    def hold_empty(self, job: Job, output: str) -> None:
        """`job` made `output` empty and wrote it nowhere (compute skips the
        storage put of an empty output, the commonest output of a command):
        the object is finished here with no storage copy and its bytes (none)
        known, so readers get them inline; `job.empty`, journalled with the
        job's success, brings it back after a restart. With no copy it is
        never lost nor under-replicated, and gc still deletes the name where
        the job's placement created it."""
        name = f"{job.id}/{output}"
        if self.graph.object_finished(name, None, 0):
            self._kick()
        self.graph.objects[name].data = b""
        if job.empty is None:
            job.empty = (output,)
        elif output not in job.empty:
            job.empty = (*job.empty, output)

    def _fenced_copy(self, name: str, token: int) -> bool:
        """Was a finished copy of `name` written under a token older than its
        producer's current attempt? (Replicas keep the original's token; a
        copy with no token (0) was not written by an attempt at all.)"""
        g = self.graph
        obj = g.objects.get(name)
        jid = obj.producer if obj is not None else name.partition("/")[0]
        job = g.jobs.get(jid) if jid else None
        return job is not None and 0 < token < job.token

    # -- losing a storage node, and lineage --------------------------------------------
    def _storage_lost(self, ref: StorageRef) -> None:
        self.storages.pop(ref.node, None)
        now = self.mono()
        self.lost_storages[ref.node] = now
        lost = 0
        g = self.graph
        node = ref.node
        repair = self.repair
        repair.node_lost(node)
        for obj in g.objects.values():
            if node in obj.locs:
                if g.copy_gone(obj, node, lost_at=now):
                    self.lost_objects.add(obj.name)
                    lost += 1
                repair.note(obj)  # one copy fewer: under-replicated now, maybe
        if lost:
            log.warning("%d objects were only on storage %s; waiting %gs for it to come back",
                        lost, ref.node, self.storage_grace)

    def regenerate_lost(self) -> list[Effect]:
        """Time passed: objects lost with their storage node past the grace
        period are made again by rerunning their producer (recursively)."""
        g = self.graph
        deadline = self.mono() - self.storage_grace
        # A rerun job waits on its own lost inputs, which makes them needed:
        # repeat until nothing changes (lineage is recursive).
        progress = True
        while progress:
            progress = False
            for name in list(self.lost_objects):
                obj = g.objects.get(name)
                if obj is None or obj.state != LOST:
                    self.lost_objects.discard(name)
                    continue
                if not obj.waiters or (obj.lost_at or 0) > deadline:
                    continue  # nobody needs it (yet), or its node may still come back
                producer = g.jobs.get(obj.producer or "")
                if producer is None or producer.state in (FAILED, CANCELLED):
                    g.fail_waiters(obj, f"input {name} was lost with its storage node and no job can make it again")
                    self.lost_objects.discard(name)
                    progress = True
                elif producer.state == SUCCEEDED:
                    log.warning("output %s was lost with its storage node; running %s again", name, producer.id)
                    for out in producer.outputs():
                        self.lost_objects.discard(out)
                        o = g.objects.get(out)
                        if o is not None and o.state == LOST:
                            g.forget_state(o)
                    self.stats["lineage_reruns"] += 1
                    g.rerun(producer, f"output {name} was lost with its storage node")
                    progress = True
                else:
                    self.lost_objects.discard(name)  # already waiting or running: it will make it
        return self._flush()
