"""A large value in a sealed memory file reaches a storage node on the same
host as the file (storage/fdchannel.py, fdclient.py): a real storage node
on real sockets, the writer compute nodes use. The object must read back
byte-exact whichever way its bytes came, storage's own checks (sealing,
size, the fencing token) still apply, and every failure of the descriptor
path sends the bytes on the bus instead."""

from __future__ import annotations

import errno
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from weft.actors.compute import segments
from weft.actors.storage import content as content_mod
from weft.actors.storage import fdchannel, fdclient
from weft.actors.storage.client import ObjectWriter, read_object
from weft.actors.storage.node import StorageNode
from weft.bus.errors import RemoteError
from weft.bus.peers import connect
from weft.bus.rpc import Peer
from weft.protocol.enums import ErrorCode
from weft.protocol.objects import Create, Populate
from weft.runtime.metrics_roles import StorageCollector
from weft.runtime.node import NodeConfig

pytestmark = pytest.mark.skipif(not (segments.AVAILABLE and fdchannel.AVAILABLE),
                                reason="needs memfd, sealing and descriptor passing")

MIB = 1 << 20


@asynccontextmanager
async def storage_at(data_dir: Path, nursery: trio.Nursery) -> AsyncIterator[tuple[StorageNode, Peer]]:
    """A real storage node in `data_dir` and a peer connected to it."""
    fdclient._channels.clear()  # (each test's node is new: ask it afresh)
    node = StorageNode(NodeConfig(data_dir=data_dir, beacon=False))
    with trio.fail_after(10):
        await nursery.start(node.run)
    async with connect(node.endpoint, "test-fdchannel") as peer:
        yield node, peer
    node.stop()


@pytest.fixture
async def storage(tmp_path: Path, nursery: trio.Nursery) -> AsyncIterator[tuple[StorageNode, Peer]]:
    async with storage_at(tmp_path / "storage", nursery) as both:
        yield both


def value(n: int, seed: bytes) -> bytes:
    return (seed * (n // len(seed) + 1))[:n]


def sealed(data: bytes) -> segments.Segment:
    seg = segments.adopt(segments.make(data), len(data))
    assert isinstance(seg, segments.Segment)
    return seg


async def write(peer: Peer, name: str, data: Any, token: int = 0) -> dict:
    w = ObjectWriter(peer, name, token)
    with trio.fail_after(20):
        await w.write(data)
        return await w.close()


async def read_back(peer: Peer, name: str) -> bytes:
    got = bytearray()
    with trio.fail_after(20):
        await read_object(peer, name, got.extend)
    return bytes(got)


async def test_a_sealed_value_goes_by_descriptor_and_reads_back_exact(storage: tuple[StorageNode, Peer]) -> None:
    node, peer = storage
    info = await peer.call("info")
    assert info["values_socket"] == str(node.data_dir / fdchannel.SOCKET_NAME)
    assert os.stat(info["values_socket"]).st_mode & 0o777 == 0o600
    data = value(3 * MIB + 5, b"fd-path")
    reply = await write(peer, "job1/result", sealed(data))
    assert reply["size"] == len(data) and reply["state"] == "finished"
    assert (await peer.call("info"))["fd_puts"] == 1
    assert await read_back(peer, "job1/result") == data
    [fam] = [m for m in StorageCollector(node).collect() if m.name == "weft_storage_fd_puts"]
    assert [s.value for s in fam.samples if s.name == "weft_storage_fd_puts_total"] == [1]


async def test_a_data_dir_deeper_than_a_socket_path_still_takes_descriptors(tmp_path: Path,
                                                                           nursery: trio.Nursery) -> None:
    # A socket's path holds 107 bytes; a data directory deep in a build tree is longer.
    deep = tmp_path / ("d" * 60) / ("e" * 60) / "storage"
    assert len(os.fsencode(deep / fdchannel.SOCKET_NAME)) > 107
    async with storage_at(deep, nursery) as (_node, peer):
        info = await peer.call("info")
        assert info["values_socket"] == str(deep / fdchannel.SOCKET_NAME)
        assert os.stat(info["values_socket"]).st_mode & 0o777 == 0o600
        data = value(3 * MIB + 1, b"deep-dir")
        await write(peer, "job9/result", sealed(data))
        assert (await peer.call("info"))["fd_puts"] == 1
        assert await read_back(peer, "job9/result") == data


async def test_without_the_socket_the_value_goes_on_the_bus(storage: tuple[StorageNode, Peer]) -> None:
    node, peer = storage
    (node.data_dir / fdchannel.SOCKET_NAME).unlink()
    data = value(2 * MIB, b"bus-path")
    await write(peer, "job2/result", sealed(data))
    assert (await peer.call("info"))["fd_puts"] == 0
    assert await read_back(peer, "job2/result") == data


async def test_an_unsealed_memory_file_is_refused_and_the_bytes_go_on_the_bus(
        storage: tuple[StorageNode, Peer]) -> None:
    _node, peer = storage
    data = value(2 * MIB, b"unsealed")

    class Unsealed(bytes):
        fd = segments.make(data)  # its writer could still change it under storage's write

    try:
        await write(peer, "job3/result", Unsealed(data))
    finally:
        os.close(Unsealed.fd)
    assert (await peer.call("info"))["fd_puts"] == 0
    assert await read_back(peer, "job3/result") == data


async def test_a_stale_token_is_fenced_by_descriptor_too(storage: tuple[StorageNode, Peer]) -> None:
    _node, peer = storage
    await peer.call("create", {"name": "job4/result", "token": 5})
    with pytest.raises(RemoteError) as e:
        await write(peer, "job4/result", sealed(value(2 * MIB, b"stale")), token=4)
    assert e.value.code == ErrorCode.FENCED
    assert (await peer.call("info"))["fd_puts"] == 0


async def test_more_after_a_large_value_goes_on_the_bus_in_order(storage: tuple[StorageNode, Peer]) -> None:
    _node, peer = storage
    head, tail = value(2 * MIB, b"head"), b"and the tail"
    w = ObjectWriter(peer, "job5/result", 0)
    with trio.fail_after(20):
        await w.write(sealed(head))
        await w.write(tail)
        await w.close()
    assert await read_back(peer, "job5/result") == head + tail


async def test_descriptors_no_put_claims_are_closed_past_the_bound(storage: tuple[StorageNode, Peer]) -> None:
    node, peer = storage
    ch = await fdclient.channel(peer)
    assert ch is not None
    fd = segments.make(b"unclaimed")
    try:
        for _ in range(fdchannel.MAX_PENDING + 6):
            await ch.send(fd)
    finally:
        os.close(fd)
    with trio.fail_after(10):
        while node.inbox.received < fdchannel.MAX_PENDING + 6:
            await trio.sleep(0.01)
    assert len(node.inbox._fds) == fdchannel.MAX_PENDING  # each pins its memory until closed


async def test_a_malformed_message_on_the_socket_closes_that_connection_only(
        storage: tuple[StorageNode, Peer]) -> None:
    node, peer = storage
    raw = trio.socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    a, b = segments.make(b"one"), segments.make(b"two")
    try:
        with trio.fail_after(10):
            await raw.connect(str(node.inbox.path))
            assert await raw.recv(256) == node.node_id.encode()  # its greeting
            socket.send_fds(raw._sock, [os.urandom(fdchannel.KEY_BYTES)], [a, b])  # two descriptors in one
            assert await raw.recv(256) == b""  # closed by storage
    finally:
        raw.close()
        os.close(a)
        os.close(b)
    assert node.inbox.received == 0
    data = value(2 * MIB, b"still")  # the socket still serves other connections
    await write(peer, "job6/result", sealed(data))
    assert (await peer.call("info"))["fd_puts"] == 1
    assert await read_back(peer, "job6/result") == data


_NOBODY_CONNECTS = """
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.settimeout(10)
try:
    s.connect(sys.argv[1])
except PermissionError:
    print("refused by its mode")
else:
    print(repr(s.recv(256)))
"""


# Any python the other user can run (the venv's may live under /root).
_PLAIN_PYTHON = shutil.which("python3", path="/usr/bin:/bin")


@pytest.mark.skipif(os.getuid() != 0 or _PLAIN_PYTHON is None,
                    reason="needs root (to connect as another user) and a system python3")
async def test_another_user_cannot_pass_descriptors(nursery: trio.Nursery) -> None:
    base = Path(tempfile.mkdtemp(prefix="weft-fd-"))  # (pytest's tmp dirs are not traversable by others)
    try:
        os.chmod(base, 0o711)
        node = StorageNode(NodeConfig(data_dir=base / "storage", beacon=False))
        with trio.fail_after(10):
            await nursery.start(node.run)
        os.chmod(node.data_dir, 0o711)

        def as_nobody() -> str:
            p = subprocess.run([str(_PLAIN_PYTHON), "-c", _NOBODY_CONNECTS, str(node.inbox.path)],
                               capture_output=True, text=True, timeout=20, user=65534, group=65534)
            return p.stdout.strip() or p.stderr.strip()

        assert await trio.to_thread.run_sync(as_nobody) == "refused by its mode"  # 0600
        os.chmod(node.inbox.path, 0o666)  # a mistake in its mode: the uid check still holds
        assert await trio.to_thread.run_sync(as_nobody) == "b''"  # closed at once, no greeting
        node.stop()
    finally:
        shutil.rmtree(base, ignore_errors=True)


async def test_a_full_disk_is_no_space_by_descriptor_too(storage: tuple[StorageNode, Peer],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    _node, peer = storage

    def disk_full(fd: int, data: Any) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(content_mod, "_os_write", disk_full)
    monkeypatch.setattr(content_mod, "_os_sendfile", lambda fd, src, offset, n: disk_full(fd, b""))
    with pytest.raises(RemoteError) as e:
        await write(peer, "job7/result", sealed(value(2 * MIB, b"full")))
    assert e.value.code == ErrorCode.NO_SPACE  # the writer's error, as for bytes on the bus
    assert (await peer.call("info"))["fd_puts"] == 0


async def test_a_value_sendfile_refuses_is_written_from_its_mapping(storage: tuple[StorageNode, Peer],
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    _node, peer = storage
    sent: list[int] = []

    def refuse(fd: int, src: int, offset: int, n: int) -> int:
        sent.append(n)
        raise OSError(errno.EINVAL, "Invalid argument")

    monkeypatch.setattr(content_mod, "_os_sendfile", refuse)
    data = value(2 * MIB + 3, b"mapped")
    await write(peer, "job8/result", sealed(data))
    assert sent and (await peer.call("info"))["fd_puts"] == 1  # by descriptor still, written the other way
    assert await read_back(peer, "job8/result") == data


async def test_a_put_by_descriptor_over_a_partial_object_keeps_only_the_new_bytes(
        storage: tuple[StorageNode, Peer]) -> None:
    _node, peer = storage
    # A first attempt streamed part of a value on the bus, then the same owner puts it whole.
    with trio.fail_after(20):
        await peer.call("create", Create("job9/result", token=3).to_wire())
        await peer.call("populate", Populate("job9/result", b"x" * (3 * MIB), token=3).to_wire())
    data = value(2 * MIB + 7, b"whole")
    await write(peer, "job9/result", sealed(data), token=3)
    assert (await peer.call("info"))["fd_puts"] == 1
    assert await read_back(peer, "job9/result") == data
