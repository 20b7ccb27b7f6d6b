"""The storage node: serves the object store over the bus.

Storage calls no other role (the deadlock rule): it answers, and it publishes
every object state change on its event queue for the coordinator to poll. Its
one outgoing call is a repair copy's reads from another storage node, in the
background, never inside a handler (replicate.py).

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
from weft.actors.model import SpecError
from weft.bus.errors import BusError
from weft.bus.rpc import CallContext
from weft.protocol.access import USER, caller_class
from weft.protocol.enums import ErrorCode, EventKind, ObjectState
from weft.protocol.objects import (
    MAX_READ,
    Create,
    CreateMany,
    CreateManyReply,
    DelegateObject,
    DeleteObjects,
    Finish,
    ListObjects,
    ObjectRef,
    Populate,
    Put,
    Read,
    ReadReply,
    Replicate,
)
from weft.runtime.node import Node, NodeConfig

from . import readtoken
from .content import PAGE_CACHE_BUDGET, check_upload, is_upload_name, stored_digest, upload_digest
from .errors import StoreError
from .fdchannel import Inbox, host_id
from .replicate import Replicator
from .store import ObjectInfo, ObjectStore

log = logging.getLogger("weft.storage")

# Objects this small travel inside their `finished` event: the coordinator can
# hand them to the jobs that read them, saving each a fetch.
EVENT_INLINE_MAX = 4096
# A flush of at most this many small rows and no files runs on the loop.
INLINE_FLUSH_ROWS = 512
# Puts and finishes awaiting their flush at once before writes are answered busy.
DEFAULT_MAX_WRITES = 128


class StorageNode(Node):
    role = "storage"

    def __init__(self, config: NodeConfig, *, inline_max: int = 65536,
                 page_cache: int = PAGE_CACHE_BUDGET, max_writes: int = DEFAULT_MAX_WRITES) -> None:
        if config.data_dir is None:
            raise ValueError("a storage node needs a data directory")
        self.data_dir = Path(config.data_dir).resolve()
        super().__init__(config)
        self._unflushed: list[dict] = []
        # Admission: puts and finishes waiting for their flush hold their
        # bytes; past this many at once a write is answered busy (the writer
        # backs off and retries within its deadline).
        self.max_writes = max_writes
        self.writing = 0
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
        # Repair copies from other storage nodes, in the background (replicate.py).
        self.replicator = Replicator(self.store, lambda: self.peers, self.commits.durable, lambda: self.nursery)
        # Large values from compute nodes on this host, as memory files (fdchannel.py).
        self.inbox = Inbox(self.data_dir, self.node_id)
        self._inbox_open = False
        self.fd_puts = 0

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
        add("replicate", self._op_replicate)

    def describe(self) -> dict[str, Any]:
        info = {"usage": self.store.usage(), "writing": self.writing, "max_writes": self.max_writes,
                "fd_puts": self.fd_puts}
        if self._inbox_open:
            info["values_socket"], info["host"] = str(self.inbox.path), host_id()
        return info

    def _on_change(self, kind: str, info: ObjectInfo) -> None:
        if kind == EventKind.FINISHED:
            # Announced only once durable: a reader released by this event
            # must never meet an object that a crash could still take back.
            self._unflushed.append(info.to_wire())
        else:
            # Creation and partial bytes are news nobody waits on: they ride
            # along with the next finish (see bus.events, urgent pollers).
            self.events.append(kind, info.to_wire(), urgent=kind not in (EventKind.CREATED, EventKind.PARTIAL))
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
            self.events.append(EventKind.FINISHED, info, urgent=urgent)

    async def main(self, nursery: trio.Nursery) -> None:
        nursery.start_soon(self.commits.run)
        nursery.start_soon(trio.to_thread.run_sync, self.store.prime_wal)  # off the path to ready
        self._inbox_open = await nursery.start(self.inbox.run)

    async def shutdown(self) -> None:
        self.inbox.close()
        async with self._flush_lock:
            await self._flush_locked()
            self.store.close()

    def _durable_if_replacing(self, op: Any) -> Any:
        """A create that replaces (a retry's, under a newer token) is the
        fence against the attempt before it: it must not be lost in a crash,
        or the stale producer could write again. Plain creates are not awaited."""
        async def handler(body: Any, ctx: CallContext) -> dict:
            result, replace = op(body, ctx)
            if replace:
                await self.commits.durable()
            return result
        return handler

    # -- ops -----------------------------------------------------------------------
    def _op_create(self, body: Any, ctx: CallContext) -> tuple[dict, bool]:
        self.fence(body)
        req = Create.from_wire(body)
        _upload(ctx, req.name, "create")
        return self.store.create(req.name, token=req.token, replace=req.replace).to_wire(), req.replace

    def _op_create_many(self, body: Any, ctx: CallContext) -> tuple[dict, bool]:
        """Create many objects in one call; errors are per name, so one bad
        name does not fail the batch."""
        self.fence(body)
        req = CreateMany.from_wire(body)
        replace = req.replace
        created, errors = [], {}
        for item in req.items:
            try:
                name, token = CreateMany.item(item)
                created.append(self.store.create(name, token=token, replace=replace).to_wire())
            except (StoreError, SpecError, BusError) as e:
                key = CreateMany.key(item)
                errors[key] = {"code": e.code, "message": str(e)}
                if e.code == ErrorCode.IMMUTABLE:
                    # Already finished (an earlier attempt made it): say so, so
                    # the coordinator adopts it instead of running the job again.
                    try:
                        errors[key]["info"] = self.store.stat(key).to_wire()
                    except StoreError:
                        pass
        return CreateManyReply(created, errors).to_wire(), replace

    def _op_populate(self, body: Any, ctx: CallContext) -> dict:
        req = Populate.from_wire(body)
        _upload(ctx, req.name, "populate")
        info = self.store.populate(req.name, req.data, token=req.token, offset=req.offset)
        return {"size": info.size}

    async def _op_finish(self, body: Any, ctx: CallContext) -> dict:
        req = Finish.from_wire(body)
        digest = _upload(ctx, req.name, "finish")
        self._admit_write()
        try:
            if digest is not None:
                await self._check_stored(req.name, digest)
            info = self.store.finish(req.name, token=req.token, size=req.size)
            return await self._finished(info, req.quiet)
        finally:
            self.writing -= 1

    async def _op_put(self, body: Any, ctx: CallContext) -> dict:
        req = Put.from_wire(body)
        digest = _upload(ctx, req.name, "put")
        self._admit_write()
        try:
            # The bytes by descriptor from a compute node on this host (fdchannel.py), or in the message.
            data = req.data if req.via is None else await self.inbox.take(req.via, req.size, req.name)
            try:
                if digest is not None:
                    check_upload(req.name, digest, data.view() if req.via is not None else data)
                info = self.store.put(req.name, data, token=req.token)
            finally:
                if req.via is not None:
                    data.close()
            if req.via is not None:
                self.fd_puts += 1
            return await self._finished(info, req.quiet)
        finally:
            self.writing -= 1

    async def _check_stored(self, name: str, digest: str) -> None:
        """A user's streamed upload, before it is finished: its bytes must hash
        to its name, or it is deleted (nothing kept) and refused."""
        store = self.store
        info = store.stat(name)
        if info.state == ObjectState.FINISHED:
            return  # (a retried finish: checked the first time)
        got = await trio.to_thread.run_sync(stored_digest, lambda o, n: store.read(name, o, n), info.size)
        if got != digest:
            store.delete(name)
            raise StoreError(f"refused {name}: its bytes hash to sha256-{got}, not to its name; nothing was kept",
                             name=name, code=ErrorCode.BAD_SPEC)

    def _admit_write(self) -> None:
        if self.writing >= self.max_writes:
            raise BusError(f"storage {self.node_id} is busy: {self.writing} writes in progress "
                           f"(its limit is {self.max_writes})", code=ErrorCode.BUSY)
        self.writing += 1

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
        req = DelegateObject.from_wire(body)
        return self.store.delegate(req.name, req.target, token=req.token).to_wire()

    def _op_read(self, body: Any, ctx: CallContext) -> dict:
        req = Read.from_wire(body)
        if ctx.user is not None and ctx.user.startswith("user:"):  # (secure clusters: readtoken.py)
            self._check_read(ctx.user, req.name, body, "read")
        final, info = self.store.resolve(req.name)
        if info.state == ObjectState.DELEGATED:
            # The chain leaves this node: the caller must ask where `final` lives.
            return ReadReply(final, ObjectState.DELEGATED, target=final).to_wire()
        data = self.store.read_view(final, req.offset, min(req.length, MAX_READ))
        end = req.offset + len(data)
        return ReadReply(
            final, info.state, data, info.state == ObjectState.FINISHED and end >= info.size, info.size
        ).to_wire()

    def _op_stat(self, body: Any, ctx: CallContext) -> dict:
        name = ObjectRef.from_wire(body).name
        if ctx.user is not None and ctx.user.startswith("user:"):
            self._check_read(ctx.user, name, body, "stat")
        return self.store.stat(name).to_wire()

    def _check_read(self, user: str, name: str, body: Any, op: str) -> None:
        """A user key reads content objects, and other objects with the coordinator's token (readtoken.py)."""
        if not is_upload_name(name):
            sec = self.config.security
            readtoken.check(readtoken.key_of(sec.server_secret or "") if sec else b"", user, name, body, op)

    def _op_list(self, body: Any, ctx: CallContext) -> dict:
        req = ListObjects.from_wire(body)
        if req.times:
            objects = [{**i.to_wire(), "at": at} for i, at in self.store.list_times(req.prefix, req.states)]
        else:
            objects = [i.to_wire() for i in self.store.list(req.prefix, req.states)]
        return {"objects": objects, "next": self.events.next_seq, "inc": self.events.incarnation}

    def _op_delete(self, body: Any, ctx: CallContext) -> dict:
        self.fence(body)
        deleted, missing = [], []
        for name in DeleteObjects.from_wire(body).names:
            try:
                self.store.delete(name)
                deleted.append(name)
            except StoreError:
                missing.append(name)
        return {"deleted": deleted, "missing": missing}

    def _op_replicate(self, body: Any, ctx: CallContext) -> dict:
        """Answers at once; the copies run in the background (replicate.py)."""
        self.fence(body)
        return self.replicator.request(Replicate.from_wire(body)).to_wire()

    def _op_usage(self, body: Any, ctx: CallContext) -> dict:
        return self.store.usage()


def _upload(ctx: CallContext, name: str, op: str) -> str | None:
    """For a `user` key's write: the digest its bytes must have (content
    objects only, content.py); None for everyone else (not checked)."""
    user = ctx.user
    if user is None or caller_class(user) != USER:
        return None
    return upload_digest(name, op, user)
