"""What the wire-record tests share (test_protocol.py, test_protocol_malformed.py,
and through test_protocol test_protocol_submission.py): two storage endpoints,
a representative spec, a value large enough to travel as an attached frame,
and the real codec's trip and bytes."""

from __future__ import annotations

from typing import Any

from weft.actors.model import JobSpec
from weft.bus.codec import CALL, decode, encode_frames

A, B = "tcp://127.0.0.1:7001", "tcp://127.0.0.1:7002"
SPEC = JobSpec(call="weft.actors.builtins:concat", refs={"x": "p1/result"}, outputs=["result"], priority=3)
BIG = bytes(range(256)) * 1024  # 256 KiB: travels as an attached frame


def trip(body: Any) -> Any:
    """`body` after a real encode and decode, attached frames and all."""
    frames = encode_frames(CALL, 7, "op", "test", body)
    return decode(frames[0], attached=frames[1:]).body


def wire_bytes(op: str, body: Any) -> list[bytes]:
    return [bytes(f) for f in encode_frames(CALL, 7, op, "test", body)]
