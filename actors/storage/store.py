"""The storage node's object store: named objects on local disk, metadata in SQLite.

This module is the state machine of an object (empty -> partial -> finished,
or delegated; tokens fence stale writers), the staging and phases of a flush,
recovery on open, and reads, listing and usage. It keeps rows through
meta.MetaDB and content files through content.ContentFiles; errors are in
errors.py.

Pure domain logic: synchronous, no sockets, no trio. The actor above owns the
event loop and calls into this (from one thread at a time; the store is not
thread-safe, but the SQLite connection may be used from a worker thread).

Durability is group-committed: mutating methods change in-memory state and stage
their rows; `flush()` makes everything staged durable at once (fsync of the
content files finished in the window, then ONE SQLite transaction). Only names
returned by `flush()` may be acknowledged as finished to anyone.

Layout under `data_dir` (nothing is ever written outside it):

* `meta.sqlite` (WAL, meta.py) -- one row per object; objects of at most `inline_max`
  bytes keep their content in the row, so a batch of tiny outputs costs one WAL
  fsync rather than one fsync per file.
* `objects/<job-id>/<output>` (content.py) -- content of larger objects, appended as chunks
  arrive and read by byte range.

Recovery rules on open (what survives a kill):

* finished and delegated objects come back exactly as flushed;
* empty objects come back empty;
* a partial object kept in a file comes back `partial` with the bytes actually
  in the file (the file, not the row, is the truth for its size);
* a partial object kept inline comes back with the bytes it had at the last
  flush; bytes that arrived after it are lost;
* a partial object that comes back with no bytes at all is reported `empty`
  (there is nothing to resume from, so the producer simply starts over);
* anything never flushed (creates, finishes, deletes) is as if it never
  happened, except that a delete's file removal is immediate, so a finished
  object whose file has gone is dropped (with a warning);
* files under `objects/` that no row accounts for are removed.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from weft.actors.model import split_object_name
from weft.protocol.enums import ErrorCode, EventKind, ObjectState
from weft.protocol.objects import info_wire
from weft.protocol.record import record

from .content import PAGE_CACHE_BUDGET, ContentFiles
from .errors import (
    DelegationCycle,
    Fenced,
    NotReadable,
    ObjectExists,
    ObjectImmutable,
    ObjectMissing,
    StoreError,
)
from .meta import MetaDB

log = logging.getLogger("weft.storage")

EMPTY = ObjectState.EMPTY
PARTIAL = ObjectState.PARTIAL
FINISHED = ObjectState.FINISHED
DELEGATED = ObjectState.DELEGATED

# A read without an explicit length returns at most this much, so a caller
# streaming an object never holds more than one chunk of it.
READ_CHUNK = 1 << 20
# Guards chain walks against corrupt metadata; cycles are refused at delegate().
MAX_CHAIN = 1000


@record
class ObjectInfo:
    name: str
    state: ObjectState
    size: int
    token: int
    target: str | None
    created: float
    finished: float | None

    def to_wire(self) -> dict[str, Any]:
        return info_wire(self.name, self.state, self.size, self.token, self.target)


class _Rec:
    """In-memory record of one object.

    `inline` says where content lives: True -> in `buf` (partial, or finished
    but not yet flushed) or in the SQLite row (finished and flushed, `buf` is
    None); False -> in the content file. Empty and delegated objects are inline
    with no content.
    """

    __slots__ = ("name", "state", "size", "token", "target", "created", "finished", "inline", "buf")

    def __init__(
        self,
        name: str,
        state: ObjectState,
        size: int,
        token: int,
        target: str | None,
        created: float,
        finished: float | None,
        inline: bool,
        buf: bytearray | bytes | None,
    ) -> None:
        self.name = name
        self.state = state
        self.size = size
        self.token = token
        self.target = target
        self.created = created
        self.finished = finished
        self.inline = inline
        self.buf = buf

    def info(self) -> ObjectInfo:
        return ObjectInfo(
            self.name, self.state, self.size, self.token, self.target, self.created, self.finished
        )


class FlushBatch:
    """What one flush makes durable (see ObjectStore.flush_begin)."""

    __slots__ = ("dirty", "sync_files", "sync_dirs", "finished", "files", "rows", "gone")

    def __init__(self) -> None:
        self.dirty: set[str] = set()
        self.sync_files: set[str] = set()
        self.sync_dirs: set[Path] = set()
        self.finished: set[str] = set()
        self.files: list[tuple[int | None, Path, int]] = []
        self.rows: list[tuple[Any, ...]] = []
        self.gone: list[tuple[str]] = []


class ObjectStore:
    def __init__(
        self,
        data_dir: Path,
        *,
        inline_max: int = 65536,
        on_change: Callable[[str, ObjectInfo], None] | None = None,
        page_cache: int = PAGE_CACHE_BUDGET,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.inline_max = inline_max
        self.on_change = on_change
        self._files = ContentFiles(self.data_dir / "objects", page_cache=page_cache)

        self._recs: dict[str, _Rec] = {}
        self._bytes = 0
        # Staging for the next flush. `_dirty` holds names whose row must be
        # rewritten (or deleted, if no longer in `_recs`): a name changed many
        # times in one batch costs one row. Directories with new entries are
        # staged by the content files (`_files.sync_dirs`).
        self._dirty: set[str] = set()
        self._sync_files: set[str] = set()  # finished file objects awaiting fsync
        self._finished_pending: set[str] = set()
        self._closed = False

        self._meta = MetaDB(self.data_dir / "meta.sqlite")
        self._load()

    # ------------------------------------------------------------------ open

    def _load(self) -> None:
        dropped = 0
        for name, state, size, token, target, created, finished, inline, data in self._meta.load():
            state = ObjectState(state)
            rec = _Rec(name, state, size, token, target, created, finished, bool(inline), None)
            if state is PARTIAL and inline:
                rec.buf = bytearray(data or b"")
                rec.size = len(rec.buf)
            elif not inline:
                on_disk = self._files.size_on_disk(name)
                if state is FINISHED:
                    if on_disk < size:
                        # Its delete removed the file but never reached the
                        # database: finish the delete.
                        dropped += 1
                        self._dirty.add(name)
                        continue
                else:
                    rec.size = max(on_disk, 0)
                    if on_disk <= 0:
                        rec.inline, rec.buf = True, None
            if rec.state is PARTIAL and rec.size == 0:
                rec.state, rec.buf = EMPTY, None
                self._dirty.add(name)
            self._recs[name] = rec
            self._bytes += rec.size
        if dropped:
            log.warning("dropped %d finished objects whose content file is gone", dropped)
        self._files.sweep_orphans(self._owns_file)
        log.info(
            "object store %s: %d objects, %d bytes", self.data_dir, len(self._recs), self._bytes
        )

    def _owns_file(self, name: str) -> bool:
        """Whether a content file of `name` is accounted for by a row."""
        rec = self._recs.get(name)
        return rec is not None and not rec.inline

    # --------------------------------------------------------------- helpers

    def _get(self, name: str) -> _Rec:
        rec = self._recs.get(name)
        if rec is None:
            split_object_name(name)  # a malformed name is a SpecError, not "missing"
            raise ObjectMissing(f"object {name!r} does not exist", name=name)
        return rec

    def _emit(self, kind: str, rec: _Rec) -> None:
        if self.on_change is not None:
            self.on_change(kind, rec.info())

    def _check_writable(self, rec: _Rec, token: int) -> None:
        if rec.state is FINISHED or rec.state is DELEGATED:
            raise ObjectImmutable(
                f"object {rec.name!r} is {rec.state.value}; it cannot be written", name=rec.name
            )
        if token != rec.token:
            raise Fenced(
                f"object {rec.name!r} is owned by token {rec.token}; token {token} is stale",
                name=rec.name,
            )

    def _discard_content(self, rec: _Rec) -> None:
        if not rec.inline:
            self._files.remove(rec.name)
        self._sync_files.discard(rec.name)
        self._bytes -= rec.size
        rec.size, rec.inline, rec.buf = 0, True, None

    # ------------------------------------------------------------ mutations

    def create(self, name: str, *, token: int = 0, replace: bool = False) -> ObjectInfo:
        rec = self._recs.get(name)
        if rec is None:
            split_object_name(name)
            rec = _Rec(name, EMPTY, 0, token, None, time.time(), None, True, None)
            self._recs[name] = rec
        else:
            if not replace:
                raise ObjectExists(f"object {name!r} already exists ({rec.state.value})", name=name)
            if rec.state is FINISHED or rec.state is DELEGATED:
                raise ObjectImmutable(
                    f"object {name!r} is {rec.state.value}; it cannot be replaced", name=name
                )
            if token < rec.token:
                raise Fenced(
                    f"object {name!r} is owned by token {rec.token};"
                    f" token {token} cannot replace it",
                    name=name,
                )
            # Scavenge a dead producer's output: start over under the new token.
            self._discard_content(rec)
            rec.state, rec.token, rec.created = EMPTY, token, time.time()
        self._dirty.add(name)
        self._emit(EventKind.CREATED, rec)
        return rec.info()

    def populate(
        self, name: str, data: bytes, *, token: int = 0, offset: int | None = None
    ) -> ObjectInfo:
        rec = self._get(name)
        self._check_writable(rec, token)
        if offset is not None and offset != rec.size:
            raise StoreError(
                f"object {name!r} has {rec.size} bytes; the next write must be at offset"
                f" {rec.size}, not {offset}",
                name=name,
                code=ErrorCode.BAD_OFFSET,
            )
        n = len(data)
        if n == 0:
            return rec.info()
        if rec.inline:
            if rec.buf is None:
                rec.buf = bytearray()
            if len(rec.buf) + n <= self.inline_max:
                rec.buf += data
            else:
                # Spill: from now on the file holds everything. On failure the
                # file is gone and the bytes so far are still in `buf`.
                self._files.append(name, rec.size, rec.buf, data, new=True)
                rec.inline, rec.buf = False, None
            self._dirty.add(name)  # inline: the row carries the bytes so far
        else:
            self._files.append(name, rec.size, data, new=False)
        rec.size += n
        self._bytes += n
        if rec.state is EMPTY:
            rec.state = PARTIAL
            self._dirty.add(name)
            self._emit(EventKind.PARTIAL, rec)
        return rec.info()

    def finish(self, name: str, *, token: int = 0, size: int | None = None) -> ObjectInfo:
        rec = self._get(name)
        if rec.state is FINISHED and token == rec.token and (size is None or size == rec.size):
            # A retry (e.g. the ack was lost): report it again at the next
            # flush so the retrier gets its acknowledgement too.
            self._finished_pending.add(name)
            return rec.info()
        self._check_writable(rec, token)
        if size is not None and size != rec.size:
            raise StoreError(
                f"object {name!r} received {rec.size} bytes but its producer says {size}",
                name=name,
                code=ErrorCode.BAD_SIZE,
            )
        if rec.inline:
            rec.buf = bytes(rec.buf) if rec.buf else b""
        else:
            self._sync_files.add(name)
        rec.state, rec.finished = FINISHED, time.time()
        self._dirty.add(name)
        self._finished_pending.add(name)
        self._emit(EventKind.FINISHED, rec)
        return rec.info()

    def put(self, name: str, data: bytes, *, token: int = 0) -> ObjectInfo:
        """Create (if missing or empty), write everything and finish in one step.

        A partial object owned by the same token is overwritten: `data` is the
        whole content by definition. Emits "created" (if new) and "finished";
        the object is never observably partial.
        """
        n = len(data)
        rec = self._recs.get(name)
        if rec is None:
            split_object_name(name)
            rec = _Rec(name, EMPTY, 0, token, None, time.time(), None, True, None)
            self._recs[name] = rec
            self._dirty.add(name)  # the create itself is durable even if a big write fails
            self._emit(EventKind.CREATED, rec)
        elif rec.state is FINISHED and rec.token == token and rec.size == n:
            self._finished_pending.add(name)  # a retried put: same rule as finish()
            return rec.info()
        else:
            self._check_writable(rec, token)
            self._discard_content(rec)
            rec.state = EMPTY
        if n <= self.inline_max:
            rec.buf = bytes(data)
        else:
            self._files.append(name, rec.size, data, new=True)
            rec.inline = False
            self._sync_files.add(name)
        rec.size = n
        self._bytes += n
        rec.state, rec.finished = FINISHED, time.time()
        self._dirty.add(name)
        self._finished_pending.add(name)
        self._emit(EventKind.FINISHED, rec)
        return rec.info()

    def delegate(self, name: str, target: str, *, token: int = 0) -> ObjectInfo:
        rec = self._get(name)
        if rec.state is DELEGATED and rec.target == target and rec.token == token:
            return rec.info()  # a retry
        self._check_writable(rec, token)
        split_object_name(target)
        cur = target
        for _ in range(MAX_CHAIN):
            if cur == name:
                raise DelegationCycle(
                    f"delegating object {name!r} to {target!r} would make a cycle", name=name
                )
            nxt = self._recs.get(cur)
            if nxt is None or nxt.state is not DELEGATED:
                break
            cur = nxt.target  # type: ignore[assignment]
        else:
            raise DelegationCycle(
                f"delegating object {name!r} to {target!r}: chain longer than {MAX_CHAIN}",
                name=name,
            )
        self._discard_content(rec)
        rec.state, rec.target = DELEGATED, target
        self._dirty.add(name)
        self._emit(EventKind.DELEGATED, rec)
        return rec.info()

    def delete(self, name: str) -> None:
        rec = self._get(name)
        self._discard_content(rec)
        del self._recs[name]
        self._dirty.add(name)
        self._finished_pending.discard(name)
        self._emit(EventKind.DELETED, rec)

    # ---------------------------------------------------------------- reads

    def _follow(self, name: str) -> tuple[str, _Rec]:
        """Final name of the chain and the last record held here; they differ
        when the chain leaves this store."""
        rec = self._get(name)
        for _ in range(MAX_CHAIN):
            if rec.state is not DELEGATED:
                return rec.name, rec
            nxt = self._recs.get(rec.target)  # type: ignore[arg-type]
            if nxt is None:
                return rec.target, rec  # type: ignore[return-value]
            rec = nxt
        raise DelegationCycle(f"delegation chain from object {name!r} does not end", name=name)

    def resolve(self, name: str) -> tuple[str, ObjectInfo]:
        """Follow delegation within this store.

        Returns (final name, its info). If the chain leads to a name this store
        does not hold, returns (that name, info of the last delegated object
        here), recognisable by `info.state == delegated`: look elsewhere.
        """
        final, rec = self._follow(name)
        return final, rec.info()

    def read(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        """Bytes [offset, offset+length) of the object the chain from `name` ends at.

        Partial objects return the bytes so far; b"" at or past the end. With no
        length at most READ_CHUNK bytes are returned: loop to stream.
        """
        return self._read(name, offset, length, False)

    def read_view(self, name: str, offset: int = 0, length: int | None = None) -> bytes | memoryview:
        """Like read(), but a range of a finished object's file comes as a view
        of the file mapped into memory: sent from there (bus.codec.attach), its
        bytes go from the page cache to the socket with no copy in between.

        Only finished content is mapped: it never shrinks (a delete unlinks
        the file, and a mapping outlives that), whereas a partial object's file
        can be cut back, and touching a mapped page past the end of a file
        kills the process (SIGBUS).
        """
        return self._read(name, offset, length, True)

    def _read(self, name: str, offset: int, length: int | None, view: bool) -> bytes | memoryview:
        if offset < 0 or (length is not None and length < 0):
            raise NotReadable(
                f"bad range for object {name!r}: offset {offset}, length {length}", name=name
            )
        final, rec = self._follow(name)
        if final != rec.name:
            raise NotReadable(
                f"object {name!r} delegates to {final!r}, which this store does not hold",
                name=name,
                target=final,
            )
        n = rec.size - offset
        if n <= 0:
            return b""
        n = min(n, READ_CHUNK if length is None else length)
        if rec.inline:
            if rec.buf is not None:
                return bytes(rec.buf[offset : offset + n])
            return self._meta.read_range(final, offset, n)
        return self._files.read(final, offset, n, view and rec.state is FINISHED)

    def stat(self, name: str) -> ObjectInfo:
        return self._get(name).info()

    def list(self, prefix: str = "", states: set[ObjectState] | None = None) -> list[ObjectInfo]:
        return [info for info, _ in self.list_times(prefix, states)]

    def list_times(self, prefix: str = "", states: set[ObjectState] | None = None) -> list[tuple[ObjectInfo, float]]:
        """`list`, each object with when it was finished (created, if it is not)."""
        # Filtered before sorted: a prefix usually picks few of many objects.
        picked = [(name, rec) for name, rec in self._recs.items()
                  if name.startswith(prefix) and (states is None or rec.state in states)]
        picked.sort(key=lambda item: item[0])
        return [(rec.info(), rec.finished or rec.created) for _, rec in picked]

    def usage(self) -> dict[str, int]:
        return {
            "objects": len(self._recs),
            "bytes": self._bytes,
            "free": shutil.disk_usage(self.data_dir).free,
        }

    # ------------------------------------------------------------ durability

    def flush(self) -> list[str]:
        """Make everything staged durable; return the names whose finish now is.

        Order matters: content is fsynced before the rows that declare it
        finished are committed, so a durable "finished" row never points at
        content that is not on disk. On failure nothing is unstaged, so a later
        flush retries it all.
        """
        batch = self.flush_begin()
        try:
            self.flush_write(batch)
        except BaseException:
            self.flush_abort(batch)
            raise
        return self.flush_end(batch)

    # The three phases of a flush, so that the slow middle one (fsyncs and the
    # SQLite commit) can run in a worker thread while the event loop keeps
    # staging the next batch: begin and end run in the loop, write anywhere.

    def flush_begin(self) -> FlushBatch:
        """Snapshot and clear what is staged (loop side)."""
        batch = FlushBatch()
        batch.dirty, self._dirty = self._dirty, set()
        batch.sync_files, self._sync_files = self._sync_files, set()
        batch.sync_dirs, self._files.sync_dirs = self._files.sync_dirs, set()
        batch.finished, self._finished_pending = self._finished_pending, set()
        for name in batch.sync_files:
            rec = self._recs.get(name)
            if rec is None or rec.inline or rec.state is not FINISHED:
                continue
            # The write handle goes with the batch: the thread fsyncs and closes it.
            batch.files.append((self._files.take_fd(name), self._files.path(name), rec.size))
        for name in batch.dirty:
            rec = self._recs.get(name)
            if rec is None:
                batch.gone.append((name,))
                continue
            data = bytes(rec.buf) if rec.inline and rec.buf is not None else None
            if rec.inline and rec.state is FINISHED and data is None:
                continue  # already in its row (only the in-memory copy is dropped)
            batch.rows.append(
                (name, rec.state.value, rec.size, rec.token, rec.target, rec.created,
                 rec.finished, int(rec.inline), data)
            )
        return batch

    def flush_write(self, batch: FlushBatch) -> None:
        """fsync the batch's files and directories, then commit its rows (any thread)."""
        self._files.sync(batch.files, batch.sync_dirs)
        if batch.rows or batch.gone:
            self._meta.commit(batch.rows, batch.gone)

    def prime_wal(self) -> None:
        """Pre-size the metadata's write-ahead log (blocking: a worker thread; meta.py)."""
        self._meta.prime_wal()

    def flush_abort(self, batch: FlushBatch) -> None:
        """The write failed: stage the batch again so the next flush retries it."""
        self._dirty |= batch.dirty
        self._sync_files |= batch.sync_files
        self._files.sync_dirs |= batch.sync_dirs
        self._finished_pending |= batch.finished

    def flush_end(self, batch: FlushBatch) -> list[str]:
        """After a successful write (loop side): names whose finish is now durable."""
        for name in batch.dirty:
            rec = self._recs.get(name)
            # Finished inline content now lives in its row; drop the second
            # copy, unless the object changed again since the snapshot.
            if rec is not None and rec.inline and rec.state is FINISHED and name not in self._dirty:
                rec.buf = None
        return [n for n in batch.finished if n in self._recs]

    def close(self) -> None:
        if self._closed:
            return
        try:
            self.flush()
        finally:
            self._closed = True
            self._files.close()
            self._meta.close()
