"""How a compute node moves bytes to and from storage: reading an input from
the first of its copies that answers (slow or failed copies last), writing an
output to its replicas, and turning storage trouble into the task's soft
failure. A mixin of ComputeNode, apart from task state (task.py) and from
running commands and callables (node.py, runner.py, pool.py)."""

from __future__ import annotations

import logging
import math
import os
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import trio

from weft.actors.storage.client import (
    CHUNK,
    LATENCY,
    NotFinished,
    ObjectWriter,
    Redirected,
    ReplicatedWriter,
    read_object,
)
from weft.actors.trees import is_manifest
from weft.bus.errors import BusError, CallTimeout, ConnectionLost, RemoteError
from weft.bus.peers import PeerPool
from weft.bus.rpc import Peer, PeerClosed
from weft.protocol.enums import ErrorCode

from .pool import Parts
from .task import SoftFailure, Task, Unmet
from .valuecache import NEAR_READ, ValueCache

log = logging.getLogger("weft.compute")

# Outputs up to this size travel in the task's `done` event as well, so the
# coordinator can hand them to dependents inline (as storage's events do).
STORED_INLINE_MAX = 4096
# A storage node that failed us goes last among an input's copies for this long.
_STORAGE_SHUNNED = 30.0
# For this long after the connection to a storage node dropped (or a call
# found none), while nothing was heard from it since, a task that has no
# other copy to use there first checks that it is back with a ping given
# _PROBE seconds to find a connection, instead of a call that waits the 3 s
# connect timeout: in the fault suite, tasks queued with a killed node's old
# endpoint (it came back on a new one) each waited 3 s for nothing.
_PROBE_WINDOW = 10.0
# A read from the compute node that made an input: past this it goes to storage.
_NEAR_TIMEOUT = 2.0
_PROBE = 0.5
# A copy answering these may be one a write gave up on: read the next.
_NOT_HERE = (ErrorCode.MISSING, ErrorCode.NOT_FINISHED)


class Transfers:
    """Needs from the node: `peers`, `min_copies`, `_task_nursery`,
    `_storage_failed` (endpoint -> when it last failed us), `data_dir`, and
    Layout's `_expand_file`, `_expand_value`, `_store_tree`."""

    peers: PeerPool
    min_copies: int
    values: ValueCache
    _task_nursery: Any
    _storage_failed: dict[str, float]

    # -- inputs ------------------------------------------------------------------------
    def _input_soft(self, task: Task, name: str, obj: str, e: Exception) -> SoftFailure:
        if name in task.ahead and (isinstance(e, NotFinished) or getattr(e, "code", None) == ErrorCode.MISSING):
            # Started ahead of its producer, which ran elsewhere or not yet.
            return Unmet(f"input {name!r} ({obj}) is not made yet: {e}")
        return self._storage_soft(e, f"input {name!r} ({obj})")

    def _storage_soft(self, e: Exception, what: str) -> SoftFailure:
        code = getattr(e, "code", None)
        if isinstance(e, ConnectionLost) or (isinstance(e, CallTimeout) and e.unreachable):
            self._storage_unreachable(e.peer)  # no connection to it now
        if isinstance(e, NotFinished | Redirected):
            return SoftFailure(f"{what}: {e.message}", code)
        if isinstance(e, CallTimeout | PeerClosed):
            return SoftFailure(f"{what}: storage unreachable ({e.message})", code)
        if isinstance(e, RemoteError):
            # The code travels as the report's own field, not in the text.
            return SoftFailure(f"{what}: {e.message}", code)
        return SoftFailure(f"{what}: {e}", code)

    def _copies(self, endpoints: list[str]) -> list[str]:
        """The storage nodes holding an input, those that failed us lately last
        (a node that died costs each read that tries it first a connect
        timeout), and those that just missed their latency bound (suspect:
        stopped, maybe) after them."""
        if len(endpoints) < 2 or not (self._storage_failed or LATENCY.any_suspect()):
            return endpoints
        recent = trio.current_time() - _STORAGE_SHUNNED
        return sorted(endpoints, key=lambda ep: (self._storage_failed.get(ep, -math.inf) > recent,
                                                 LATENCY.suspect(ep)))

    def _storage_unreachable(self, endpoint: str) -> None:
        self._storage_failed[endpoint] = trio.current_time()

    async def _probe_task(self, task: Task) -> None:
        """Before a task reads its inputs: the storage nodes it cannot do
        without (its only copy of an input, its only replica of an output)."""
        for endpoint in self._to_probe(task):
            await self._probe_unreachable(endpoint)

    def _to_probe(self, task: Task) -> list[str]:
        """The storage nodes `_probe_task` pings: almost always none."""
        suspect = self._suspect
        out = [eps[0] for name, (eps, _obj) in task.inputs.items()
               if len(eps) == 1 and name not in task.inline and suspect(eps[0])]
        for eps in task.outputs.values():
            if len(eps) == 1 and suspect(eps[0]):
                out.append(eps[0])
        return out

    def _suspect(self, endpoint: str) -> bool:
        """`endpoint` lost its connection (or a call to it found none)
        lately and nothing was heard from it since: worth a ping. (Checked
        before the ping's coroutine is made: every task asks, almost
        always of healthy nodes.)"""
        peer = self.peers.get(endpoint)
        since = max(self._storage_failed.get(endpoint, 0.0), peer.dropped_at)
        return since > peer.last_heard and since >= trio.current_time() - _PROBE_WINDOW

    async def _probe_unreachable(self, endpoint: str) -> None:
        """Fail soft at once if `endpoint` lost its connection (or a call to
        it found none) lately, nothing was heard from it since, and a ping
        finds no connection within _PROBE either."""
        if not self._suspect(endpoint):
            return
        peer = self.peers.get(endpoint)
        try:
            await peer.call("ping", timeout=_PROBE)
        except CallTimeout as e:
            if e.unreachable:  # (its message would name the connect timeout, not _PROBE)
                self._storage_unreachable(endpoint)
                raise SoftFailure(f"storage unreachable: no connection to {endpoint} lately, nor within {_PROBE:g}s of a "
                                  "ping now", e.code) from None
        except BusError:
            pass  # the call itself will say what is wrong

    async def _read_input(self, task: Task, name: str,
                          read: Callable[[Peer, str, float | None], Awaitable[Any]]) -> Any:
        """`read(peer, object, call timeout)` of input `name` from the first of its copies
        that answers and has it; storage trouble (or no copy having it) becomes
        the task's soft failure."""
        endpoints, obj = task.inputs[name]
        endpoints = self._copies(endpoints)
        for i, endpoint in enumerate(endpoints):
            # With another copy to go to, a call gets the node's latency
            # bound, not the full call timeout: a paused node costs a read
            # its bound, then the next copy answers (the last copy gets the
            # whole timeout: there is nothing better to wait for).
            last = i + 1 == len(endpoints)
            try:
                return await read(self.peers.get(endpoint), obj, None if last else LATENCY.bound(endpoint))
            except (CallTimeout, PeerClosed) as e:
                self._storage_unreachable(endpoint)
                if last:  # no other replica to try
                    raise self._storage_soft(e, f"input {name!r} ({obj})") from None
                log.info("input %r (%s): %s; reading the next copy", name, obj, e)
            except BusError as e:
                if last or getattr(e, "code", None) not in _NOT_HERE:
                    raise self._input_soft(task, name, obj, e) from None
                # A listed copy can be one a write dropped (its node restarted
                # mid-write, or it fell behind: ahead.py made_copies): another
                # copy may have it.
                log.info("input %r (%s): %s; reading the next copy", name, obj, e)
        raise AssertionError(f"input {name!r} has no copy to read")  # _input_map refuses that

    async def _read_near(self, endpoint: str, obj: str,
                         read: Callable[[Peer, str, float | None, int], Awaitable[Any]]) -> Any:
        """`read` of `obj` from the compute node that made it, which may
        hold it in memory (valuecache.serve_read); None if it does not (any
        trouble at all: storage has the copy of record, read next)."""
        peer = self.peers.get(endpoint)
        if peer.dropped_at > peer.last_heard:
            return None  # no connection to it now: not worth a connect timeout
        try:
            return await read(peer, obj, _NEAR_TIMEOUT, NEAR_READ)
        except BusError as e:
            log.debug("input %s not read from %s (%s): from storage", obj, endpoint, e)
            return None

    async def _fetch_to_memory(self, task: Task) -> dict[str, bytes | Parts]:
        async def pieces(peer: Peer, obj: str, timeout: float | None, chunk: int = CHUNK) -> Parts:
            # In pieces as received: the worker pool hands them to the worker
            # without joining them here first.
            parts = Parts()
            await read_object(peer, obj, parts.append, timeout=timeout, chunk=chunk)
            return parts

        await self._probe_task(task)
        out: dict[str, bytes | Parts] = dict(task.inline)
        for name, (_eps, obj) in task.inputs.items():
            if name not in out:
                # Made and stored from here: no storage read (valuecache.py).
                value: Any = self.values.get(obj)
                if value is None and name in task.near:
                    value = await self._read_near(task.near[name], obj, pieces)
                out[name] = value if value is not None else await self._read_input(task, name, pieces)
            value = out[name]
            head = value[0] if isinstance(value, Parts) and value else value
            if head and is_manifest(head):
                # A tree arrives as its directory's path (Layout). (Checked
                # here: most inputs are not, and a chain hop's Python is thin.)
                out[name] = await self._expand_value(task, name, value, self.data_dir / "tasks" / task.job / "inputs")
        return out

    async def _fetch_to_files(self, task: Task, inputs_dir: Path) -> dict[str, Path]:
        await self._probe_task(task)
        files = {}
        if task.spec.refs:
            inputs_dir.mkdir(parents=True, exist_ok=True)
        for name in task.inputs:
            path = files[name] = inputs_dir / name
            value = task.inline.get(name)
            if value is None:
                value = self.values.get(task.inputs[name][1])  # made and stored here (valuecache.py)
            if value is not None:
                path.write_bytes(value)
                await self._expand_file(task, name, path)
                continue

            async def to_file(peer: Peer, obj: str, timeout: float | None, chunk: int = CHUNK,
                              path: Path = path) -> bool:
                with open(path, "wb") as f:  # from the start again if an earlier copy was too slow
                    await read_object(peer, obj, f.write, timeout=timeout, chunk=chunk)
                return True

            if name not in task.near or not await self._read_near(task.near[name], task.inputs[name][1], to_file):
                await self._read_input(task, name, to_file)
            await self._expand_file(task, name, path)  # a tree, or an executable file (Layout)
        return files

    # -- outputs ---------------------------------------------------------------------
    def _writer(self, task: Task, output: str) -> ObjectWriter | ReplicatedWriter:
        name = f"{task.job}/{output}"
        endpoints = task.outputs[output]
        if len(endpoints) == 1:
            # The task's `done` tells the coordinator this object is finished
            # (see Task.stored), so storage's own event need not.
            return ObjectWriter(self.peers.get(endpoints[0]), name, task.token, quiet=True)
        return ReplicatedWriter([ObjectWriter(self.peers.get(ep), name, task.token) for ep in endpoints],
                                min_copies=self.min_copies, background=self._task_nursery)

    async def _close(self, task: Task, writer: ObjectWriter | ReplicatedWriter, name: str,
                     value: Any = None, *, empty: bool = False) -> None:
        """Finish writing output `name`; `value`, its bytes if the node has
        them in memory, is kept for consumers here once storage has it."""
        if empty:  # nothing was written to it
            self._hold_empty(task, name)
            return
        if isinstance(writer, ObjectWriter):
            # A node lost since the task began: a ping, not a put waiting 3 s.
            await self._probe_unreachable(writer.peer.endpoint)
        try:
            info = await writer.close()
        except BusError as e:
            raise self._storage_soft(e, f"output {name!r}") from None
        task.written.append(name)
        if value is not None:
            self.values.put(f"{task.job}/{name}", value, read=task.taken)
        if isinstance(writer, ReplicatedWriter) and writer.dropped:
            # Copies this write gave up on: the coordinator (repair) makes them again.
            task.dropped += [[f"{task.job}/{name}", endpoint] for endpoint, _ in writer.dropped]
        if isinstance(writer, ObjectWriter) and writer.quiet and isinstance(info, dict) and "node" in info:
            small = writer.small if writer.small is not None and len(writer.small) <= STORED_INLINE_MAX else None
            task.stored[name] = [info["node"], info.get("size"), small]

    def _hold_empty(self, task: Task, name: str) -> None:
        """An empty output is written nowhere: the task's `done` says so
        (stored [None, 0, b""]) and the coordinator keeps it, journalled
        with the job's success (StorageNewsMixin.hold_empty). No storage
        put, no fsync, no file: for a command printing nothing (most do)
        that was a third of its cost across the daemons."""
        task.written.append(name)
        task.stored[name] = [None, 0, b""]

    async def _upload_file(self, task: Task, name: str, path: Path) -> None:
        st = os.stat(path)
        if st.st_size == 0 and stat.S_ISREG(st.st_mode) and not st.st_mode & 0o111:
            self._hold_empty(task, name)  # (an empty executable keeps its mode: a manifest)
            return
        w = self._writer(task, name)
        manifest = await self._store_tree(task, name, path)
        if manifest is not None:  # a directory or an executable file (Layout)
            try:
                await w.write(manifest)
            except BusError as e:
                raise self._storage_soft(e, f"output {name!r}") from None
            await self._close(task, w, name)
            return
        try:
            with open(path, "rb") as f:
                while chunk := f.read(1 << 20):
                    await w.write(chunk)
        except BusError as e:
            raise self._storage_soft(e, f"output {name!r}") from None
        await self._close(task, w, name)
