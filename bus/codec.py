"""The one envelope every message travels in.

A msgpack map `{v, kind, id, op, from, body}`. `kind` is call, reply, error or
post; `id` correlates a reply or error with its call (0 for posts); `from` is
the sender's node id; `body` is any msgpack value (a map for calls by
convention, the handler's result for replies, `{code, message}` for errors).
"""

from __future__ import annotations

from typing import Any

import msgpack

from .errors import ProtocolError

VERSION = 1
DEFAULT_MAX_MESSAGE = 64 * 1024 * 1024

CALL = "call"
REPLY = "reply"
ERROR = "error"
POST = "post"
KINDS = frozenset((CALL, REPLY, ERROR, POST))

# One packer for the thread: packb() would build a new one per message.
_packer = msgpack.Packer(use_bin_type=True)


class Envelope:
    __slots__ = ("kind", "id", "op", "sender", "body")

    def __init__(self, kind: str, id: int, op: str, sender: str, body: Any) -> None:
        self.kind = kind
        self.id = id
        self.op = op
        self.sender = sender
        self.body = body

    def __repr__(self) -> str:
        return f"Envelope({self.kind} #{self.id} {self.op!r} from {self.sender!r})"


def encode(kind: str, id: int, op: str, sender: str, body: Any = None) -> bytes:
    try:
        return _packer.pack(
            {"v": VERSION, "kind": kind, "id": id, "op": op, "from": sender, "body": body}
        )
    except (TypeError, ValueError, OverflowError) as e:
        _packer.reset()
        raise ProtocolError(f"cannot encode {op!r} body: {e}") from None


def decode(frame: bytes | memoryview, max_size: int = DEFAULT_MAX_MESSAGE) -> Envelope:
    """Decode and validate one envelope; raise ProtocolError naming the fault."""
    size = len(frame)
    if size > max_size:
        raise ProtocolError(f"message of {size} bytes exceeds the limit of {max_size}")
    try:
        m = msgpack.unpackb(frame, raw=False, strict_map_key=True)
    except Exception as e:  # msgpack raises several unrelated types on garbage
        raise ProtocolError(f"not a msgpack envelope: {type(e).__name__}: {e}") from None
    if type(m) is not dict:
        raise ProtocolError(f"envelope must be a map, got {type(m).__name__}")
    try:
        v, kind, id_, op, sender = m["v"], m["kind"], m["id"], m["op"], m["from"]
    except KeyError as e:
        raise ProtocolError(f"envelope lacks field {e.args[0]!r}") from None
    if type(v) is not int or v != VERSION:
        raise ProtocolError(f"unsupported envelope version {v!r} (this node speaks {VERSION})")
    if type(kind) is not str or kind not in KINDS:
        raise ProtocolError(f"unknown envelope kind {kind!r}")
    if type(id_) is not int or id_ < 0:
        raise ProtocolError(f"envelope id must be a non-negative integer, got {id_!r}")
    if type(op) is not str:
        raise ProtocolError(f"envelope op must be a string, got {type(op).__name__}")
    if type(sender) is not str:
        raise ProtocolError(f"envelope 'from' must be a string, got {type(sender).__name__}")
    return Envelope(kind, id_, op, sender, m.get("body"))


def salvage_id(frame: bytes | memoryview) -> int | None:
    """The call id of a frame that failed validation, if one can be read.

    Lets an actor answer a malformed call with an error instead of silence.
    """
    if len(frame) > 1 << 20:
        return None
    try:
        m = msgpack.unpackb(frame, raw=False, strict_map_key=False)
    except Exception:
        return None
    if isinstance(m, dict) and m.get("kind") == CALL:
        i = m.get("id")
        if type(i) is int and i > 0:
            return i
    return None
