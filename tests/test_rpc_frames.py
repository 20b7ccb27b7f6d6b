"""Calls between actors over real ROUTER/DEALER sockets on loopback: large values
as attached frames, message size limits, and malformed input at a live actor.
(Calls, posts, busy and errors: test_rpc.py; shared helpers: rpc_support.py.)"""

from __future__ import annotations

import itertools
import os
import random
from collections import Counter
from typing import Any

import msgpack
import pytest
import trio
import trio.lowlevel
import trio.testing
import zmq
from rpc_support import Serve, Teapot, echo_server, raw_dealer

from weft.bus.codec import (
    ATTACH_MIN,
    CALL,
    ERROR,
    POST,
    REPLY,
    attach,
    decode,
    encode,
    encode_frames,
    salvage_id,
)
from weft.bus.errors import ConnectionLost, RemoteError
from weft.bus.peers import connect
from weft.bus.rpc import CallContext, Server
from weft.bus.zsock import ZSocket, context

from helpers import await_for

KiB = 1024


# -- large values --------------------------------------------------------------------


async def test_large_values_cross_as_attached_frames_both_ways(serve: Serve) -> None:
    server = Server("srv")
    seen: list[type] = []

    def store(body: Any, ctx: CallContext) -> Any:
        seen.append(type(body["data"]))
        # What a storage node does with it: write it somewhere, hand back a copy.
        return {"n": len(body["data"]), "data": attach(bytes(body["data"])[::-1])}

    server.add("store", store)
    ep = await serve(server)
    blobs = [os.urandom(n) for n in (ATTACH_MIN, 1 << 20, 5 << 20)]
    with trio.fail_after(10):
        async with connect(ep, "client") as peer:
            for data in blobs:
                got = await peer.call("store", {"data": attach(data)})
                assert got["n"] == len(data)
                assert type(got["data"]) is memoryview and got["data"] == data[::-1]
            # posts carry them too
            assert peer.post("store", {"data": attach(blobs[0])})
            await await_for(lambda: len(seen) == 4)
    # The handler got the received frame's own buffer, not a copy made by msgpack.
    assert seen == [memoryview] * 4
    assert server.stats.malformed == 0


async def test_stray_frames_after_an_envelope_get_a_clear_error(serve: Serve) -> None:
    server = echo_server()
    ep = await serve(server)
    with trio.fail_after(5):
        with raw_dealer(ep) as zs:
            await zs.send([encode(CALL, 3, "echo", "raw", 1), b"stray"])
            env = decode((await zs.recv())[0])
            assert (env.id, env.kind, env.body["code"]) == (3, ERROR, "bad-message")
            assert "1 frames came after the envelope, 0 are used" in env.body["message"]
            # and a well-formed call with an attachment still works on the same socket
            await zs.send(encode_frames(CALL, 4, "echo", "raw", {"d": attach(b"z" * ATTACH_MIN)}))
            frames = await zs.recv()
            assert decode(frames[0], attached=frames[1:]).body == {"d": b"z" * ATTACH_MIN}
    assert server.stats.malformed == 1


# -- limits and malformed input --------------------------------------------------------


async def test_message_size_limit(serve: Serve) -> None:
    server = echo_server(max_message=64 * KiB)
    ep = await serve(server)
    with trio.fail_after(5):
        async with connect(ep, "client") as peer:
            assert await peer.call("echo", b"x" * (60 * KiB)) == b"x" * (60 * KiB)
            with pytest.raises(RemoteError) as info:
                await peer.call("echo", b"x" * (66 * KiB))
            assert info.value.code == "bad-message"
            assert "exceeds the limit of 65536" in info.value.message
            assert await peer.call("echo", "ok") == "ok"
    assert server.stats.malformed == 1


async def test_frame_far_beyond_the_limit_drops_only_its_sender(serve: Serve) -> None:
    # ZeroMQ's MAXMSGSIZE cuts the connection of a sender whose frame is far
    # over the limit before anything reads it: the sender sees its call fail
    # with ConnectionLost (not a `bad-message` answer, not a timeout).
    server = echo_server(max_message=64 * KiB)
    ep = await serve(server)
    with trio.fail_after(10):
        async with connect(ep, "client") as peer, connect(ep, "big-sender", timeout=30) as big:
            assert await peer.call("echo", 1) == 1
            with pytest.raises(ConnectionLost):
                await big.call("echo", b"y" * (1 << 20))
            for i in range(20):
                assert await peer.call("echo", i) == i
            # The dropped sender reconnects; only that message was lost.
            assert await big.call("echo", "again") == "again"
    assert server.stats.calls == 22


async def test_unhashable_kind_does_not_crash_the_actor(serve: Serve) -> None:
    server = echo_server()
    ep = await serve(server)
    bad = msgpack.packb({"v": 1, "kind": ["call"], "id": 5, "op": "echo", "from": "raw"})
    with trio.fail_after(5):
        with raw_dealer(ep) as zs:
            await zs.send([bad])
            await zs.send([encode(CALL, 6, "echo", "raw", "alive")])
            env = decode((await zs.recv())[0])
    assert (env.kind, env.id, env.body) == (REPLY, 6, "alive")
    assert server.stats.malformed == 1


def _malformed_frames(n: int, seed: int = 7) -> list[tuple[list[bytes], tuple[int, str] | None, str]]:
    """`n` bad messages as (frames, expected (id, error code) or None, stats bucket)."""
    rng = random.Random(seed)
    ids = itertools.count(1000)
    good = {"v": 1, "kind": CALL, "op": "echo", "from": "fuzz", "body": None}

    def pack(**kw: Any) -> bytes:
        m = dict(good)
        for k, v in kw.items():
            if v is ...:
                m.pop(k, None)
            else:
                m[k] = v
        return msgpack.packb(m)

    def random_bytes() -> tuple:
        while True:
            frame = rng.randbytes(rng.randrange(0, 300))
            if salvage_id(frame) is None:
                try:
                    decode(frame)
                except Exception:
                    return [frame], None, "malformed"

    def wrong_types() -> tuple:
        i = next(ids)
        field, value = rng.choice([
            ("op", 5), ("op", None), ("op", b"echo"), ("from", 7), ("from", [1]), ("v", "1"), ("v", 2),
        ])
        return [pack(id=i, **{field: value})], (i, "bad-message"), "malformed"

    def non_map() -> tuple:
        value = rng.choice([[1, "call", 3, "echo"], "call", 17, None, 2.5, b"bin", [], True])
        return [msgpack.packb(value)], None, "malformed"

    def missing_field() -> tuple:
        i = next(ids)
        field = rng.choice(["v", "op", "from"])
        return [pack(id=i, **{field: ...})], (i, "bad-message"), "malformed"

    def missing_id_or_kind() -> tuple:
        return [pack(**{rng.choice(["id", "kind"]): ...})], None, "malformed"

    def bad_kind() -> tuple:
        return [pack(id=next(ids), kind=rng.choice(["shout", "CALL", "", 3, None, 1.5]))], None, "malformed"

    def answer_kinds() -> tuple:  # replies and errors are not for a server
        return [pack(id=next(ids), kind=rng.choice([REPLY, ERROR]))], None, "malformed"

    def negative_id() -> tuple:
        return [pack(id=-rng.randrange(1, 2**40))], None, "malformed"

    def oversize() -> tuple:
        i = next(ids)
        body = b"z" * (64 * KiB + rng.randrange(1, 3000))
        return [pack(id=i, body=body)], (i, "bad-message"), "malformed"

    def unknown_call() -> tuple:
        i = next(ids)
        return [pack(id=i, op=f"no.such.op.{i}")], (i, "unknown-op"), "unknown_ops"

    def unknown_post() -> tuple:
        return [pack(id=0, kind=POST, op="no.such.post")], None, "unknown_ops"

    def multi_frame() -> tuple:
        i = next(ids)
        return [pack(id=i), b"extra", b"frames"], (i, "bad-message"), "malformed"

    def multi_frame_delimiter() -> tuple:  # a REQ-style empty delimiter first
        return [b"", pack(id=next(ids))], None, "malformed"

    def raising_call() -> tuple:
        i = next(ids)
        op, code = rng.choice([("boom", "internal"), ("aboom", "internal"), ("teapot", "teapot")])
        return [pack(id=i, op=op)], (i, code), "errors"

    def raising_post() -> tuple:
        return [pack(id=0, kind=POST, op=rng.choice(["boom", "teapot"]))], None, "errors"

    makers = [
        random_bytes, wrong_types, non_map, missing_field, missing_id_or_kind, bad_kind,
        answer_kinds, negative_id, oversize, unknown_call, unknown_post, multi_frame,
        multi_frame_delimiter, raising_call, raising_post,
    ]
    out = [maker() for maker in makers]  # every class at least once
    out += [rng.choice(makers)() for _ in range(n - len(out))]
    rng.shuffle(out)
    return out


async def test_1000_malformed_frames_leave_the_actor_serving(serve: Serve) -> None:
    server = echo_server(max_message=64 * KiB)

    def boom(body: Any, ctx: CallContext) -> None:
        raise ValueError("boom")

    async def aboom(body: Any, ctx: CallContext) -> None:
        raise RuntimeError("aboom")

    def teapot(body: Any, ctx: CallContext) -> None:
        raise Teapot("I am a teapot")

    server.add("boom", boom)
    server.add("aboom", aboom)
    server.add("teapot", teapot)
    ep = await serve(server)
    bad = _malformed_frames(1000)
    expected = {exp[0]: exp[1] for _, exp, _ in bad if exp is not None}
    buckets = Counter(bucket for _, _, bucket in bad)
    good_ids = list(range(1, 51))

    with trio.fail_after(15):
        with raw_dealer(ep) as zs:
            for k, (frames, _, _) in enumerate(bad):
                await zs.send(frames)
                if k % 20 == 0:  # normal calls interleaved with the garbage
                    i = good_ids[k // 20]
                    await zs.send([encode(CALL, i, "echo", "fuzz", i)])
            answers: dict[int, Any] = {}
            while len(answers) < len(expected) + len(good_ids):
                env = decode((await zs.recv())[0])
                assert env.id not in answers, f"two answers to call {env.id}"
                answers[env.id] = env
            with trio.move_on_after(0.3):
                extra = decode((await zs.recv())[0])
                pytest.fail(f"unexpected extra answer {extra!r}")

        for i in good_ids:
            assert (answers[i].kind, answers[i].body) == (REPLY, i)
        for i, code in expected.items():
            env = answers[i]
            assert env.kind == ERROR, env
            assert env.body["code"] == code, (env, env.body)
            assert isinstance(env.body["message"], str) and env.body["message"]

        # And a well-behaved client notices nothing.
        async with connect(ep, "client") as peer:
            for i in range(100):
                assert await peer.call("echo", i) == i

    stats = server.stats
    assert stats.malformed == buckets["malformed"]
    assert stats.unknown_ops == buckets["unknown_ops"]
    assert stats.errors == buckets["errors"]
    assert stats.calls == len(good_ids) + 100 + sum(
        1 for _, exp, bucket in bad if bucket == "errors" and exp is not None
    )
    assert set(buckets) == {"malformed", "unknown_ops", "errors"}


async def test_garbage_replies_do_not_confuse_a_peer(serve: Serve) -> None:
    """A server that answers with junk first, then the right reply."""
    router = ZSocket(context().socket(zmq.ROUTER), linger_ms=0)
    with router:
        router.sock.bind("tcp://127.0.0.1:0")
        ep = router.sock.getsockopt_string(zmq.LAST_ENDPOINT)

        async def junk_server() -> None:
            while True:
                ident, frame = await router.recv()
                env = decode(frame)
                for junk in (
                    [ident, os.urandom(50)],
                    [ident, msgpack.packb([1, 2])],
                    [ident, b"a", b"b"],
                    [ident, encode(REPLY, env.id + 1000, env.op, "srv", "not yours")],
                    [ident, encode(POST, 0, "x", "srv", None)],
                    [ident, encode(ERROR, env.id, env.op, "srv", "not a map")],
                ):
                    await router.send(junk)

        with trio.fail_after(5):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(junk_server)
                async with connect(ep, "client") as peer:
                    with pytest.raises(RemoteError) as info:
                        await peer.call("op")
                    assert info.value.code == "error"
                nursery.cancel_scope.cancel()
