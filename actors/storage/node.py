"""The storage node: serves the object store over the bus.

Storage calls nobody (the deadlock rule): it only answers, and it publishes
every object state change on its event queue for the coordinator to poll.

Durability is by group commit: `finish` and `put` stage their change and wait
for the committer, which makes every staged change durable with one flush
(one SQLite transaction, fsyncs of the finished files) and then releases all
the callers waiting on it. A burst of a thousand tiny outputs costs one
commit, not a thousand.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import trio

from weft.actors.groupcommit import GroupCommit
from weft.actors.model import ObjectState, SpecError, split_object_name
from weft.bus.codec import attach
from weft.bus.errors import BusError
from weft.bus.rpc import CallContext
from weft.runtime.node import Node, NodeConfig

from .store import PAGE_CACHE_BUDGET, ObjectInfo, ObjectStore, StoreError

log = logging.getLogger("weft.storage")

MAX_READ = 1 << 20
# Objects this small travel inside their `finished` event: the coordinator can
# hand them to the jobs that read them, saving each a fetch.
EVENT_INLINE_MAX = 4096
# A flush of at most this many small rows and no files runs on the loop.
INLINE_FLUSH_ROWS = 512


def _bad(message: str) -> BusError:
    return BusError(message, code="bad-request")


def _name(body: Any, key: str = "name") -> str:
    if not isinstance(body, dict):
        raise _bad("request body must be a map")
    name = body.get(key)
    split_object_name(name)
    return name


# SQLite stores signed 64-bit integers: a larger token or size could be
# accepted in memory and then fail every later group commit.
INT_MAX = (1 << 63) - 1


def _int(body: dict, key: str, default: int | None = None, *, minimum: int = 0,
         nullable: bool = False) -> int | None:
    v = body.get(key, default)
    if v is None and (nullable or key not in body):
        return None
    if type(v) is not int or not minimum <= v <= INT_MAX:
        raise _bad(f"{key!r} must be an integer in [{minimum}, 2**63), got {v!r}")
    return v


def _data(body: dict) -> bytes | memoryview:
    """The bytes to write: a memoryview of the received frame when they came
    attached (bus.codec), written from there without a copy."""
    d = body.get("data", b"")
    if not isinstance(d, bytes | bytearray | memoryview):
        raise _bad(f"'data' must be bytes, got {type(d).__name__}")
    return d


class StorageNode(Node):
    role = "storage"

    def __init__(self, config: NodeConfig, *, inline_max: int = 65536,
                 page_cache: int = PAGE_CACHE_BUDGET) -> None:
        if config.data_dir is None:
            raise ValueError("a storage node needs a data directory")
        self.data_dir = Path(config.data_dir).resolve()
        super().__init__(config)
        self._unflushed: list[dict] = []
        # Objects whose writer tells the coordinator itself that they are
        # finished (a compute node, in its task's `done`): their `finished`
        # event is quiet, so the coordinator is not woken twice for one job.
        self._quiet: set[str] = set()
        self.store = ObjectStore(self.data_dir, inline_max=inline_max, on_change=self._on_change,
                                 page_cache=page_cache)
        # Changes nobody awaits (creates of empty objects) are gathered for a
        # while: they ride along with the next finish's flush instead of
        # paying an fsync of their own.
        self.commits = GroupCommit(self._flush, what="object changes", delay=0.05)
        # One flush at a time, and none racing the final one at shutdown.
        self._flush_lock = trio.Lock()

    def register(self) -> None:
        add = self.server.add
        add("create", self._durable_if_replacing(self._op_create))
        add("create_many", self._durable_if_replacing(self._op_create_many))
        add("populate", self._op_populate)
        add("finish", self._op_finish)
        add("put", self._op_put)
        add("delegate", self._op_delegate)
        add("read", self._op_read)
        add("stat", self._op_stat)
        add("list", self._op_list, bypass=True)
        add("delete", self._op_delete)
        add("usage", self._op_usage, bypass=True)

    def describe(self) -> dict[str, Any]:
        return {"usage": self.store.usage()}

    def _on_change(self, kind: str, info: ObjectInfo) -> None:
        if kind == "finished":
            # Announced only once durable: a reader released by this event
            # must never meet an object that a crash could still take back.
            self._unflushed.append(info.to_wire())
        else:
            # Creation and partial bytes are news nobody waits on: they ride
            # along with the next finish (see bus.events, urgent pollers).
            self.events.append(kind, info.to_wire(), urgent=kind not in ("created", "partial"))
        # Every staged change reaches disk soon, even with no finish to wait on it.
        self.commits.mark()

    async def _flush(self) -> None:
        async with self._flush_lock:
            await self._flush_locked()

    async def _flush_locked(self) -> None:
        pending, self._unflushed = self._unflushed, []
        batch = self.store.flush_begin()
        try:
            if batch.files or batch.sync_dirs or len(batch.rows) > INLINE_FLUSH_ROWS:
                # File fsyncs (large objects) in a thread: the loop keeps
                # serving and staging the next batch meanwhile.
                await trio.to_thread.run_sync(self.store.flush_write, batch)
            else:
                # Only small rows: one WAL fsync (~0.2 ms) costs less inline
                # than the thread hop (measured: ~20% more throughput).
                self.store.flush_write(batch)
        except BaseException:
            self.store.flush_abort(batch)
            self._unflushed[:0] = pending
            raise
        self.store.flush_end(batch)
        quiet = self._quiet
        for info in pending:
            if info["size"] <= EVENT_INLINE_MAX:
                try:
                    info["data"] = self.store.read(info["name"], 0, info["size"])
                except StoreError:
                    pass  # deleted since: the event still says it was finished
            urgent = info["name"] not in quiet
            if not urgent:
                quiet.discard(info["name"])
            self.events.append("finished", info, urgent=urgent)

    async def main(self, nursery: trio.Nursery) -> None:
        nursery.start_soon(self.commits.run)

    async def shutdown(self) -> None:
        async with self._flush_lock:
            await self._flush_locked()
            self.store.close()

    def _durable_if_replacing(self, op: Any) -> Any:
        """A create that replaces (a retry's, under a newer token) is the
        fence against the attempt before it: it must not be lost in a crash,
        or the stale producer could write again. Plain creates are not awaited."""
        async def handler(body: Any, ctx: CallContext) -> dict:
            result = op(body, ctx)
            if isinstance(body, dict) and body.get("replace"):
                await self.commits.durable()
            return result
        return handler

    # -- ops -----------------------------------------------------------------------
    def _op_create(self, body: Any, ctx: CallContext) -> dict:
        self.fence(body)
        name = _name(body)
        return self.store.create(
            name, token=_int(body, "token", 0), replace=bool(body.get("replace", False))
        ).to_wire()

    def _op_create_many(self, body: Any, ctx: CallContext) -> dict:
        """Create many objects in one call: {items: [[name, token], ...], replace}.

        Errors are per name, so one bad name does not fail the batch.
        """
        self.fence(body)
        if not isinstance(body, dict) or not isinstance(body.get("items"), list):
            raise _bad("create_many needs 'items': a list of [name, token]")
        replace = bool(body.get("replace", False))
        created, errors = [], {}
        for item in body["items"]:
            try:
                if (not isinstance(item, list | tuple) or len(item) != 2 or type(item[1]) is not int
                        or not 0 <= item[1] <= INT_MAX):
                    raise _bad(f"create_many item must be [name, token], got {item!r}")
                name, token = item
                split_object_name(name)
                created.append(self.store.create(name, token=token, replace=replace).to_wire())
            except (StoreError, SpecError, BusError) as e:
                key = str(item[0] if isinstance(item, list | tuple) and item else item)
                errors[key] = {"code": e.code, "message": str(e)}
                if e.code == "immutable":
                    # Already finished (an earlier attempt made it): say so, so
                    # the coordinator adopts it instead of running the job again.
                    try:
                        errors[key]["info"] = self.store.stat(key).to_wire()
                    except StoreError:
                        pass
        return {"created": created, "errors": errors}

    def _op_populate(self, body: Any, ctx: CallContext) -> dict:
        name = _name(body)
        info = self.store.populate(
            name, _data(body), token=_int(body, "token", 0), offset=_int(body, "offset", nullable=True)
        )
        return {"size": info.size}

    async def _op_finish(self, body: Any, ctx: CallContext) -> dict:
        name = _name(body)
        quiet = body.get("quiet") is True
        info = self.store.finish(name, token=_int(body, "token", 0), size=_int(body, "size", nullable=True))
        return await self._finished(info, quiet)

    async def _op_put(self, body: Any, ctx: CallContext) -> dict:
        name = _name(body)
        quiet = body.get("quiet") is True
        info = self.store.put(name, _data(body), token=_int(body, "token", 0))
        return await self._finished(info, quiet)

    async def _finished(self, info: ObjectInfo, quiet: bool) -> dict:
        """Reply once durable; `node` lets the writer report where it landed."""
        if quiet:
            self._quiet.add(info.name)
        await self.commits.durable()
        reply = info.to_wire()
        reply["node"] = self.node_id
        return reply

    def _op_delegate(self, body: Any, ctx: CallContext) -> dict:
        self.fence(body)
        name = _name(body)
        target = _name(body, "target")
        return self.store.delegate(name, target, token=_int(body, "token", 0)).to_wire()

    def _op_read(self, body: Any, ctx: CallContext) -> dict:
        name = _name(body)
        offset = _int(body, "offset", 0)
        length = _int(body, "length", MAX_READ, minimum=1)
        final, info = self.store.resolve(name)
        if info.state == ObjectState.DELEGATED:
            # The chain leaves this node: the caller must ask where `final` lives.
            return {"name": final, "state": "delegated", "target": final, "data": b"", "eof": False}
        data = self.store.read_view(final, offset, min(length, MAX_READ))
        end = offset + len(data)
        return {
            "name": final,
            "state": str(info.state),
            "size": info.size,
            "data": attach(data),
            "eof": info.state == ObjectState.FINISHED and end >= info.size,
        }

    def _op_stat(self, body: Any, ctx: CallContext) -> dict:
        return self.store.stat(_name(body)).to_wire()

    def _op_list(self, body: Any, ctx: CallContext) -> dict:
        body = body if isinstance(body, dict) else {}
        prefix = body.get("prefix", "")
        if not isinstance(prefix, str):
            raise _bad("'prefix' must be a string")
        states = body.get("states")
        if states is not None:
            try:
                states = {ObjectState(s) for s in states}
            except (TypeError, ValueError):
                raise _bad(f"'states' must be a list of {[str(s) for s in ObjectState]}") from None
        infos = self.store.list(prefix, states)
        return {"objects": [i.to_wire() for i in infos], "next": self.events.next_seq, "inc": self.events.incarnation}

    def _op_delete(self, body: Any, ctx: CallContext) -> dict:
        self.fence(body)
        if isinstance(body, dict) and isinstance(body.get("names"), list):
            names = body["names"]
        else:
            names = [_name(body)]
        deleted, missing = [], []
        for name in names:
            split_object_name(name)
            try:
                self.store.delete(name)
                deleted.append(name)
            except StoreError:
                missing.append(name)
        return {"deleted": deleted, "missing": missing}

    def _op_usage(self, body: Any, ctx: CallContext) -> dict:
        return self.store.usage()
