"""A callable's request to a worker: what goes down its pipe, into its input
memory file, and which values go as memory files of their own (the worker's
side of it is worker.read_request)."""

from __future__ import annotations

from typing import Any

import msgpack

from . import segments
from .worker import REQ, SHM_MIN

# Byte inputs from this size on travel raw after the request head, never copied into it.
_OUT_OF_BAND = 1 << 15


class Parts(list):
    """One bytes value in pieces, e.g. as it came from storage: the worker
    gets it joined, but the node never joins it."""

    @property
    def nbytes(self) -> int:
        return sum(memoryview(p).nbytes for p in self)


def encode_request(call: str, kwargs: dict[str, Any], shm: bool,
                   env: dict[str, str] | None = None) -> tuple[list[Any], list[Any], list[int]]:
    """What goes down the pipe, what goes into the input memory file
    (`shm`: the workers have one) from offset 0, and the memory files of
    values that have their own (segments.py; workers without memory files
    have no socket for them either: those values go down the pipe). `env`:
    the call's own environment variables (worker.read_request)."""
    inline: dict[str, Any] = {}
    blobs: list[list[Any]] = []
    parts: list[Any] = [b"", b""]
    shared: list[Any] = []
    passed: list[int] = []
    at = 0
    for name, value in kwargs.items():
        if type(value) is segments.Segment and shm:
            blobs.append([name, len(value), segments.PASSED])
            passed.append(value.fd)
            continue
        if type(value) is Parts:
            pieces, size = value, value.nbytes
        elif isinstance(value, bytes | bytearray | memoryview | segments.Segment):
            pieces, size = [value], memoryview(value).nbytes
            if size < _OUT_OF_BAND:
                inline[name] = value
                continue
        else:
            inline[name] = value
            continue
        if shm and size >= SHM_MIN:
            blobs.append([name, size, at])
            shared += pieces
            at += size
        else:
            blobs.append([name, size, -1])
            parts += pieces
    head = msgpack.packb([call, inline, blobs, env] if env else [call, inline, blobs])
    parts[0] = REQ.pack(len(head))
    parts[1] = head
    return parts, shared, passed
