"""The one envelope every message travels in.

A msgpack map `{v, kind, id, op, from, body}`. `kind` is call, reply, error or
post; `id` correlates a reply or error with its call (0 for posts); `from` is
the sender's node id; `body` is any msgpack value (a map for calls by
convention, the handler's result for replies, `{code, message}` for errors).

Large byte values travel as frames of their own after the envelope: a sender
wraps them with `attach()`, the envelope holds an extension value (type 1, the
frame's index) in their place, and the receiver gets a memoryview of the
received frame there. Neither side copies them into or out of msgpack, and a
receiving socket that takes frames without copying (bus.zsock) hands the
bytes straight from ZeroMQ's buffer to, say, a file write.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
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

# Values at least this large are worth a frame of their own: below it the
# frame costs more than copying the bytes into the envelope.
ATTACH_MIN = 1 << 16
_BLOB = 1  # msgpack extension type of an attached frame's index
_INDEX = struct.Struct("<I")


class Blob:
    """Bytes to send as an attached frame (see `attach`)."""

    __slots__ = ("data",)

    def __init__(self, data: bytes | bytearray | memoryview) -> None:
        self.data = data


def attach(data: bytes | bytearray | memoryview) -> Any:
    """`data` as a body value: attached as its own frame when it is large."""
    return Blob(data) if len(data) >= ATTACH_MIN else data


# Frames attached by the encode in progress (encoding is not re-entrant).
_attached: list[Any] = []


def _pack_blob(obj: Any) -> Any:
    if type(obj) is Blob:
        _attached.append(obj.data)
        return msgpack.ExtType(_BLOB, _INDEX.pack(len(_attached) - 1))
    raise TypeError(f"can not serialize {type(obj).__name__!r} object")


# One packer for the thread: packb() would build a new one per message.
_packer = msgpack.Packer(use_bin_type=True, default=_pack_blob)


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


def encode_frames(kind: str, id: int, op: str, sender: str, body: Any = None) -> list[Any]:
    """The envelope frame followed by the frames `body` attached."""
    try:
        head = _packer.pack(
            {"v": VERSION, "kind": kind, "id": id, "op": op, "from": sender, "body": body}
        )
    except (TypeError, ValueError, OverflowError) as e:
        _packer.reset()
        _attached.clear()
        raise ProtocolError(f"cannot encode {op!r} body: {e}") from None
    if not _attached:
        return [head]
    frames = [head, *_attached]
    _attached.clear()
    return frames


def encode(kind: str, id: int, op: str, sender: str, body: Any = None) -> bytes:
    """One envelope frame; `body` must attach nothing (see encode_frames)."""
    frames = encode_frames(kind, id, op, sender, body)
    if len(frames) != 1:
        raise ProtocolError(f"{op!r} body attaches frames: send it with encode_frames")
    return frames[0]


class _Attachments:
    """Resolves the extension values of one envelope to its attached frames."""

    __slots__ = ("frames", "used")

    def __init__(self, frames: Sequence[Any]) -> None:
        self.frames = frames
        self.used = 0

    def __call__(self, code: int, data: bytes) -> memoryview:
        if code != _BLOB or len(data) != _INDEX.size:
            raise ProtocolError(f"unknown msgpack extension type {code}")
        (i,) = _INDEX.unpack(data)
        if i >= len(self.frames):
            raise ProtocolError(f"value refers to attached frame {i}, but {len(self.frames)} came")
        self.used += 1
        return memoryview(self.frames[i])  # of bytes, or of a zmq.Frame's own buffer


_NONE_ATTACHED = _Attachments(())


def decode(
    frame: bytes | memoryview, max_size: int = DEFAULT_MAX_MESSAGE, attached: Sequence[Any] = ()
) -> Envelope:
    """Decode and validate one envelope and the frames `attached` after it;
    raise ProtocolError naming the fault."""
    size = len(frame)
    for f in attached:
        size += len(f)
    if size > max_size:
        raise ProtocolError(f"message of {size} bytes exceeds the limit of {max_size}")
    # Without attachments any extension value is an error, and the shared
    # hook is never changed: no object per message on the hot path.
    hook = _Attachments(attached) if attached else _NONE_ATTACHED
    try:
        m = msgpack.unpackb(frame, raw=False, strict_map_key=True, ext_hook=hook)
    except ProtocolError:
        raise
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
    if hook.used != len(attached):
        raise ProtocolError(f"{len(attached)} frames came after the envelope, {hook.used} are used")
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
