"""The envelope codec: round trips, every malformed class, the size limit."""

from __future__ import annotations

import os

import msgpack
import pytest

from weft.bus.codec import (
    ATTACH_MIN,
    CALL,
    DEFAULT_MAX_MESSAGE,
    ERROR,
    KINDS,
    POST,
    REPLY,
    VERSION,
    attach,
    decode,
    encode,
    encode_frames,
    salvage_id,
)
from weft.bus.errors import ProtocolError


def raw(**overrides: object) -> bytes:
    """A packed envelope map, with fields replaced or (value ...) removed."""
    m: dict[str, object] = {"v": VERSION, "kind": CALL, "id": 7, "op": "echo", "from": "n1", "body": {"x": 1}}
    for k, v in overrides.items():
        if v is ...:
            m.pop(k)
        else:
            m[k] = v
    return msgpack.packb(m, use_bin_type=True)


BODIES = [
    None,
    0,
    -1,
    2**63 - 1,
    1.5,
    "text",
    "ünïcødé",
    b"\x00\xffbytes",
    [1, "two", None],
    {"nested": {"list": [1, 2, {"b": b"x"}]}, "empty": {}},
    b"x" * 100_000,
]


@pytest.mark.parametrize("body", BODIES, ids=lambda b: type(b).__name__)
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_round_trip(kind: str, body: object) -> None:
    env = decode(encode(kind, 42, "some.op", "node-1", body))
    assert (env.kind, env.id, env.op, env.sender) == (kind, 42, "some.op", "node-1")
    assert env.body == body
    assert type(env.body) is type(body)  # bytes stay bytes, str stays str


def test_body_is_optional() -> None:
    env = decode(raw(body=...))
    assert env.body is None


def test_unencodable_body_raises_protocol_error_and_encoder_recovers() -> None:
    with pytest.raises(ProtocolError, match="cannot encode 'op' body"):
        encode(CALL, 1, "op", "n", {"bad": object()})
    with pytest.raises(ProtocolError, match="cannot encode"):
        encode(CALL, 1, "op", "n", 2**64)  # beyond msgpack's integers
    # The shared packer was reset: the next message is whole and clean.
    assert decode(encode(REPLY, 2, "op", "n", [1, 2])).body == [1, 2]


MALFORMED = [
    # (frame, what the message must say)
    (b"", "not a msgpack envelope"),
    (b"\xc1", "not a msgpack envelope"),  # never-used msgpack byte
    (msgpack.packb({"v": 1})[:-1], "not a msgpack envelope"),  # truncated
    (raw() + b"\x00", "not a msgpack envelope"),  # trailing garbage
    (msgpack.packb([1, "call", 7, "echo", "n1"]), "must be a map, got list"),
    (msgpack.packb("call"), "must be a map, got str"),
    (msgpack.packb(7), "must be a map, got int"),
    (msgpack.packb(None), "must be a map, got NoneType"),
    (msgpack.packb({1: "a"}), "not a msgpack envelope"),  # non-string keys
    (raw(v=...), "lacks field 'v'"),
    (raw(kind=...), "lacks field 'kind'"),
    (raw(id=...), "lacks field 'id'"),
    (raw(op=...), "lacks field 'op'"),
    (raw(**{"from": ...}), "lacks field 'from'"),
    (raw(v=2), "unsupported envelope version 2"),
    (raw(v="1"), "unsupported envelope version '1'"),
    (raw(kind="shout"), "unknown envelope kind 'shout'"),
    (raw(kind="CALL"), "unknown envelope kind 'CALL'"),
    (raw(kind=1), "unknown envelope kind 1"),
    (raw(kind=None), "unknown envelope kind None"),
    (raw(id=-1), "non-negative integer, got -1"),
    (raw(id="7"), "non-negative integer, got '7'"),
    (raw(id=7.0), "non-negative integer, got 7.0"),
    (raw(id=True), "non-negative integer, got True"),
    (raw(id=None), "non-negative integer, got None"),
    (raw(op=5), "op must be a string, got int"),
    (raw(op=b"echo"), "op must be a string, got bytes"),
    (raw(op=None), "op must be a string, got NoneType"),
    (raw(**{"from": 3}), "'from' must be a string, got int"),
    (raw(**{"from": ["n"]}), "'from' must be a string, got list"),
]


@pytest.mark.parametrize("frame,message", MALFORMED, ids=[m for _, m in MALFORMED])
def test_malformed_raises_protocol_error_naming_the_fault(frame: bytes, message: str) -> None:
    with pytest.raises(ProtocolError) as info:
        decode(frame)
    assert message in info.value.message
    assert info.value.code == "bad-message"


@pytest.mark.parametrize("kind", [["call"], {"k": "call"}], ids=["list", "map"])
def test_unhashable_kind_raises_protocol_error(kind: object) -> None:
    # A list or map as `kind` must be reported like any other bad kind,
    # not escape decode() as a TypeError (which the server does not catch).
    with pytest.raises(ProtocolError, match="unknown envelope kind"):
        decode(raw(kind=kind))


@pytest.mark.parametrize("v", [True, 1.0], ids=["bool", "float"])
def test_version_must_be_an_integer(v: object) -> None:
    # True == 1 == 1.0 in Python; the wire version is an integer (as in the beacon).
    with pytest.raises(ProtocolError, match="version"):
        decode(raw(v=v))


def test_size_limit() -> None:
    limit = 64 * 1024
    body = b"x" * limit
    frame = encode(CALL, 1, "put", "n", body)
    with pytest.raises(ProtocolError) as info:
        decode(frame, limit)
    assert f"message of {len(frame)} bytes exceeds the limit of {limit}" == info.value.message
    # Exactly at the limit is fine; one byte over is not.
    assert decode(frame, len(frame)).body == body
    with pytest.raises(ProtocolError, match="exceeds the limit"):
        decode(frame, len(frame) - 1)
    # The default limit takes large messages.
    big = encode(REPLY, 1, "get", "n", b"y" * (8 << 20))
    assert len(decode(big).body) == 8 << 20
    assert DEFAULT_MAX_MESSAGE >= 8 << 20


def test_salvage_id_finds_call_ids_only() -> None:
    assert salvage_id(raw(v=99)) == 7  # a call with a bad version still gets an answer
    assert salvage_id(raw(op=5, id=12)) == 12
    assert salvage_id(msgpack.packb({"kind": "call", "id": 3})) == 3
    assert salvage_id(raw(kind=POST)) is None  # posts are never answered
    assert salvage_id(raw(kind=REPLY)) is None
    assert salvage_id(raw(kind=ERROR)) is None
    assert salvage_id(raw(id=0)) is None
    assert salvage_id(raw(id=-4)) is None
    assert salvage_id(raw(id="7")) is None
    assert salvage_id(raw(id=True)) is None
    assert salvage_id(b"\xc1garbage") is None
    assert salvage_id(msgpack.packb([1, 2])) is None
    assert salvage_id(encode(CALL, 5, "op", "n", b"z" * (2 << 20))) is None  # too big to look at


# -- attached frames --------------------------------------------------------------


def test_large_values_travel_as_frames_of_their_own() -> None:
    big, other, small = os.urandom(ATTACH_MIN), os.urandom(3 * ATTACH_MIN), b"tiny"
    frames = encode_frames(CALL, 4, "populate", "n", {"data": attach(big), "more": [attach(other)], "s": attach(small)})
    # The envelope holds neither large value; small ones stay inline.
    assert len(frames) == 3 and len(frames[0]) < 200
    env = decode(frames[0], attached=frames[1:])
    assert type(env.body["data"]) is memoryview and env.body["data"] == big
    assert env.body["more"][0] == other
    assert env.body["s"] == small
    # A body with no attachment is one frame, as before.
    assert encode_frames(REPLY, 1, "x", "n", {"data": small}) == [encode(REPLY, 1, "x", "n", {"data": small})]


def test_attached_frames_must_match_the_envelope() -> None:
    frames = encode_frames(CALL, 4, "populate", "n", {"data": attach(b"a" * ATTACH_MIN)})
    with pytest.raises(ProtocolError, match="refers to attached frame 0, but 0 came"):
        decode(frames[0])
    with pytest.raises(ProtocolError, match="2 frames came after the envelope, 1 are used"):
        decode(frames[0], attached=[frames[1], b"stray"])
    with pytest.raises(ProtocolError, match="1 frames came after the envelope, 0 are used"):
        decode(encode(CALL, 1, "x", "n", 1), attached=[b"stray"])
    # An extension value that is not an attachment is malformed, not a crash.
    bad = raw(body=msgpack.ExtType(7, b"1234"))
    with pytest.raises(ProtocolError, match="extension type 7"):
        decode(bad)
    # The size limit counts the attached frames too.
    with pytest.raises(ProtocolError, match="exceeds the limit"):
        decode(frames[0], ATTACH_MIN, frames[1:])


def test_encode_refuses_attachments_it_cannot_carry() -> None:
    with pytest.raises(ProtocolError, match="attaches frames"):
        encode(CALL, 1, "x", "n", attach(b"a" * ATTACH_MIN))
    # and the next encode is not polluted by the refused one
    assert encode_frames(CALL, 2, "y", "n", 5) == [encode(CALL, 2, "y", "n", 5)]
