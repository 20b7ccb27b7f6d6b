"""A compute node's in-memory cache of the callable outputs it stored.

A consumer that runs on the node that made its input takes the bytes from
here instead of reading them back from storage: no storage read, no trip
through two sockets, two copies fewer (storage's mapping into the socket,
the socket into this node). Only values storage already acknowledged
durable go in (the write's close returned), so a consumer sees exactly what
a storage read would have given it: the rule that a dependent never sees a
value a storage failure could take back holds unchanged.

Bounded by a byte budget (the compute setting `--value-cache-mb`). A new
value that does not fit evicts values already read at least once, oldest
first, then values nobody read for UNREAD_KEEP seconds (an output only a
client fetches, from storage, must not pin the cache forever); values
younger than that and unread are kept (their consumer is probably queued
here: that is what the coordinator's locality preference is for), and a
value that still does not fit is simply not cached: its consumer reads it
from storage the old way. So the cache never holds more than its budget.

The values are the bytes objects the worker pool returned, or for large ones
the read-only mappings of their own memory files (segments.py), which a
consumer's worker here is handed as they are (no copy is made to cache
them). A rerun of the producer on this node drops its entries
(`forget_job`), so a consumer never takes an older attempt's bytes from
here once a newer attempt ran here.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any

from weft.bus.errors import BusError
from weft.bus.rpc import CallContext
from weft.protocol.enums import ErrorCode, ObjectState
from weft.protocol.objects import Read, ReadReply

from . import segments
from .segments import Segment

# Smaller values travel inline in the coordinator's start already (see
# transfers.STORED_INLINE_MAX): caching them would only cost memory.
CACHE_MIN = 64 << 10
# A node's budget unless set (the compute setting --value-cache-mb).
DEFAULT_VALUE_CACHE = 512 << 20
# An unread value is kept this long against newer ones (see above).
UNREAD_KEEP = 60.0
# What one `read` of a cached value may return: more than storage's 1 MiB
# (its reads come from files), since the bytes are in memory anyway and each
# reply costs both nodes a message and wake-ups; well under the codec's limit.
NEAR_READ = 16 << 20


class ValueCache:
    """Object name -> bytes, at most `budget` bytes in all (0: off)."""

    __slots__ = ("budget", "used", "_values", "_read", "_since", "_by_job", "clock", "hits", "misses", "bytes_served", "refused", "evicted",
                 "lent", "files", "max_files")

    def __init__(self, budget: int) -> None:
        if budget < 0:
            raise ValueError("a value cache budget must be 0 or more bytes")
        self.budget = budget
        self.used = 0
        self._values: OrderedDict[str, bytes | Segment] = OrderedDict()  # oldest first
        self._read: set[str] = set()  # served at least once: the first to go
        self._since: dict[str, float] = {}  # when each value came in
        # Job -> its cached outputs: forget_job runs at every task start, so
        # it must not look through the whole cache.
        self._by_job: dict[str, list[str]] = {}
        self.clock = time.monotonic
        # Counters, read by describe() and the bench notes, never per message.
        self.hits = 0
        self.misses = 0
        self.bytes_served = 0
        self.refused = 0
        self.evicted = 0
        self.lent = 0  # bytes read by other compute nodes (serve_read)
        # Values in memory files of their own hold two descriptors each (the
        # file and its mapping's): kept to a quarter of the node's limit.
        self.files = 0
        self.max_files = segments.descriptor_room() // 8

    @classmethod
    def sized(cls, budget: int | None, memory: int) -> ValueCache:
        """`budget` bytes, or by default DEFAULT_VALUE_CACHE or an eighth of
        the `memory` the node offers, whichever is less (a small node must
        not give its jobs' memory to cached values)."""
        return cls(min(DEFAULT_VALUE_CACHE, memory // 8) if budget is None else budget)

    def __len__(self) -> int:
        return len(self._values)

    def put(self, obj: str, value: object, *, read: bool = False) -> bool:
        """Keep `value` (bytes, or a Segment: a value in its own memory
        file, segments.py) for object `obj` if it fits; True if kept.
        `read`: a consumer here took it already (a follower, from the
        producer's memory): evicted first, like a value read, instead of
        kept UNREAD_KEEP seconds against newer ones."""
        if (type(value) is not bytes and type(value) is not Segment) or not self.budget:
            return False
        size = len(value)
        if size < CACHE_MIN:
            return False
        self.drop(obj)
        seg = type(value) is Segment
        if (size > self.budget or (self.used + size > self.budget and not self._make_room(size))
                or (seg and self.files >= self.max_files)):
            self.refused += 1
            return False
        self.files += seg
        self._values[obj] = value
        self._since[obj] = self.clock()
        if read:
            self._read.add(obj)
        self._by_job.setdefault(obj.partition("/")[0], []).append(obj)
        self.used += size
        return True

    def _make_room(self, size: int) -> bool:
        """Evict values already read, oldest first, then unread ones older
        than UNREAD_KEEP, until `size` more fit; False (and nothing evicted)
        if they would not make enough room."""
        stale = self.clock() - UNREAD_KEEP
        read, since = self._read, self._since
        victims = [o for o in self._values if o in read] + [o for o in self._values
                                                            if o not in read and since[o] <= stale]
        if self.used - sum(len(self._values[o]) for o in victims) + size > self.budget:
            return False
        for obj in victims:
            if self.used + size <= self.budget:
                break
            self.drop(obj)
            self.evicted += 1
        return True

    def get(self, obj: str) -> bytes | Segment | None:
        value = self._values.get(obj)
        if value is None:
            self.misses += 1
            return None
        self._read.add(obj)
        self.hits += 1
        self.bytes_served += len(value)
        return value

    def lend(self, obj: str) -> bytes | Segment | None:
        """`obj`'s bytes for another node's read (counted apart from hits)."""
        value = self._values.get(obj)
        if value is not None:
            self._read.add(obj)
        return value

    def drop(self, obj: str) -> None:
        value = self._values.pop(obj, None)
        if value is not None:
            self.used -= len(value)
            self.files -= type(value) is Segment
            self._read.discard(obj)
            del self._since[obj]
            job = obj.partition("/")[0]
            outputs = self._by_job[job]
            outputs.remove(obj)
            if not outputs:
                del self._by_job[job]

    def forget_job(self, job: str) -> None:
        """Drop every output of `job` (a new attempt of it starts here)."""
        for obj in self._by_job.get(job, ())[:]:
            self.drop(obj)

    def view(self) -> dict[str, int]:
        return {"values": len(self._values), "bytes": self.used, "budget": self.budget, "hits": self.hits,
                "misses": self.misses, "bytes_served": self.bytes_served, "refused": self.refused,
                "evicted": self.evicted, "lent": self.lent}


def serve_read(node: Any, body: Any, ctx: CallContext) -> dict[str, Any]:
    """A compute node's `read` op: storage's `read` (the same records), for
    the values in its cache only, so another compute node's consumer takes
    the bytes straight from here; sent as views of the cached bytes (an
    attached frame, zero-copy). A value not here is `missing`: the reader
    goes to storage, which has every value this node ever cached."""
    req = Read.from_wire(body)
    cache: ValueCache = node.values
    value = cache.lend(req.name)
    if value is None:
        raise BusError(f"compute {node.node_id} holds no value {req.name!r} in memory", code=ErrorCode.MISSING)
    view = memoryview(value)[req.offset:req.offset + min(req.length, NEAR_READ)]
    cache.lent += len(view)
    return ReadReply(req.name, ObjectState.FINISHED, view, req.offset + len(view) >= len(value), len(value)).to_wire()
