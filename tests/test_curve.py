"""CurveZMQ on the bus: real ROUTER/DEALER sockets on loopback, a real ZAP handler, a TCP tap.

What a user of a secure cluster relies on: a key on the allow-list gets in and
is known by its role and name in every call; any other key, or none, is refused
at once with a line saying why (not a timeout); what crosses the network is
not readable.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

from weft.bus.curve import (
    AllowList,
    Identity,
    KeyFileError,
    Security,
    ZapHandler,
    generate,
    load_daemon,
    write_identity,
)
from weft.bus.errors import BusError
from weft.bus.peers import connect
from weft.bus.rpc import CallContext, Server

from helpers import Tap

SECRET_WORDS = b"rm -rf /srv/payroll-2026"


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    """A keys directory as `weft up --secure` makes it: cluster key, node key, allow-list with alice."""
    d = tmp_path / "keys"
    cluster = generate("cluster", "node")
    write_identity(d, cluster)
    for name, role in (("node", "node"), ("alice", "user")):
        write_identity(d, generate(name, role), cluster_public=cluster.public)
    allow = AllowList(d / "allow")
    allow.path.write_text("")
    for name in ("node", "alice"):
        from weft.bus.curve import read_identity

        allow.add(read_identity(d / f"{name}.secret"))
    return d


def _client(keys: Path, name: str) -> Security:
    from weft.bus.curve import load_client

    return load_client(keys / f"{name}.secret")


@pytest.fixture
async def secure_server(keys: Path, nursery: trio.Nursery) -> AsyncIterator[tuple[str, list[CallContext], ZapHandler]]:
    """A CURVE server whose `whoami` op returns the caller's User-Id; its ZAP handler."""
    sec = load_daemon(keys)
    zap = ZapHandler(sec.allow)
    zap.bind()
    nursery.start_soon(zap.serve)
    seen: list[CallContext] = []
    server = Server("secure-test", security=sec)
    server.access = lambda op, user: op != "admin_only" or user.startswith("admin:")

    def whoami(body: Any, ctx: CallContext) -> Any:
        seen.append(ctx)
        return {"user": ctx.user, "echo": body}

    server.add("whoami", whoami)
    server.add("admin_only", whoami)
    endpoint = await nursery.start(server.serve, "tcp://127.0.0.1:0")
    try:
        yield endpoint, seen, zap
    finally:
        zap.close()


async def test_an_allowed_key_gets_in_and_every_call_carries_its_role_and_name(secure_server, keys: Path) -> None:
    endpoint, seen, _ = secure_server
    async with connect(endpoint, "alice-client", timeout=5, security=_client(keys, "alice")) as peer:
        reply = await peer.call("whoami", "hi")
    assert reply == {"user": "user:alice", "echo": "hi"}
    assert [ctx.user for ctx in seen] == ["user:alice"]


async def test_an_op_beyond_the_keys_role_is_answered_forbidden(secure_server, keys: Path) -> None:
    endpoint, seen, _ = secure_server
    async with connect(endpoint, "alice-client", timeout=5, security=_client(keys, "alice")) as peer:
        with pytest.raises(BusError) as err:
            await peer.call("admin_only")
        assert await peer.call("whoami") == {"user": "user:alice", "echo": None}  # the connection goes on
    assert err.value.code == "forbidden"
    assert "'admin_only'" in err.value.message and "user key (user:alice)" in err.value.message
    assert len(seen) == 1  # the handler never ran for the refused call


async def test_a_key_not_on_the_allow_list_is_refused_at_once_with_the_reason(secure_server, keys: Path) -> None:
    endpoint, seen, zap = secure_server
    mallory = generate("mallory", "admin")
    write_identity(keys / "elsewhere", mallory, cluster_public=_client(keys, "alice").cluster_public)
    async with connect(endpoint, "mallory", timeout=30, security=_client(keys / "elsewhere", "mallory")) as peer:
        with trio.fail_after(10):  # the call's own timeout is 30 s: the refusal must come from the handshake
            with pytest.raises(BusError) as err:
                await peer.call("whoami", "let me in")
    assert err.value.code == "auth-failed"
    assert "not on the cluster's allow-list" in err.value.message
    assert seen == [] and zap.refused >= 1


async def test_a_client_without_a_key_is_told_the_cluster_is_secure(secure_server) -> None:
    endpoint, seen, _ = secure_server
    async with connect(endpoint, "plain", timeout=30) as peer:
        with trio.fail_after(10):
            with pytest.raises(BusError) as err:
                await peer.call("whoami")
    assert err.value.code == "auth-failed" and "--key FILE or WEFT_KEY" in err.value.message
    assert seen == []


async def test_a_key_added_to_the_allow_list_gets_in_after_a_reload(secure_server, keys: Path) -> None:
    endpoint, _, zap = secure_server
    from weft.bus.curve import read_identity

    bob = generate("bob", "user")
    write_identity(keys, bob, cluster_public=_client(keys, "alice").cluster_public)
    async with connect(endpoint, "bob", timeout=5, security=_client(keys, "bob")) as peer:
        with pytest.raises(BusError):
            await peer.call("whoami")
    zap.allow.add(read_identity(keys / "bob.public", secret=False))  # what `weft keys allow` does to the file
    zap.allow.load()  # what SIGHUP does
    async with connect(endpoint, "bob", timeout=5, security=_client(keys, "bob")) as peer:
        assert (await peer.call("whoami"))["user"] == "user:bob"


@pytest.fixture
def tap() -> Iterator[list[Tap]]:
    taps: list[Tap] = []
    yield taps
    for t in taps:
        t.close()


async def test_bytes_on_the_wire_do_not_contain_the_command(secure_server, keys: Path, tap: list[Tap],
                                                            serve) -> None:
    # The tap sees a plain server's traffic in the clear (so it would see a leak)...
    plain = Server("plain-test")
    plain.add("submit", lambda body, ctx: len(body))
    plain_tap = Tap(await serve(plain))
    tap.append(plain_tap)
    async with connect(plain_tap.endpoint, "c", timeout=5) as peer:
        assert await peer.call("submit", SECRET_WORDS) == len(SECRET_WORDS)
    assert SECRET_WORDS in plain_tap.seen
    # ...and only ciphertext of the secure one's.
    endpoint, _, _ = secure_server
    secure_tap = Tap(endpoint)
    tap.append(secure_tap)
    async with connect(secure_tap.endpoint, "alice", timeout=5, security=_client(keys, "alice")) as peer:
        assert (await peer.call("whoami", SECRET_WORDS))["echo"] == SECRET_WORDS
    assert len(secure_tap.seen) > len(SECRET_WORDS)
    assert SECRET_WORDS not in secure_tap.seen and b"whoami" not in secure_tap.seen


def test_a_malformed_allow_list_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "allow"
    path.write_text("# comment\nnot-a-key admin root\n")
    with pytest.raises(KeyFileError, match=r"allow:2: expected 'PUBLIC-KEY ROLE NAME'"):
        AllowList(path).load()


def test_a_daemon_refuses_a_user_key_as_its_own(keys: Path) -> None:
    with pytest.raises(KeyFileError, match="needs a node key"):
        load_daemon(keys, keys / "alice.secret")


def test_key_files_round_trip_and_the_secret_is_private(tmp_path: Path) -> None:
    from weft.bus.curve import read_identity

    ident = generate("carol", "user")
    secret, public = write_identity(tmp_path, ident)
    assert read_identity(secret) == Identity("carol", "user", ident.public, ident.secret)
    assert read_identity(public, secret=False).secret is None
    assert secret.stat().st_mode & 0o077 == 0
    with pytest.raises(KeyFileError, match="holds no secret key"):
        read_identity(public)
    with pytest.raises(KeyFileError, match="exists already"):
        write_identity(tmp_path, ident)
