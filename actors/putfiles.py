"""The client's side of local files: `Client.put(path)` and writing trees back out.

A mixin of Client (actors/client.py): it uses the client's loop (`_run`),
coordinator calls (`_call`) and peer pool. Bytes go from the file straight to
storage nodes in chunks (actors/storage/trees.py), never through the
coordinator; the coordinator hears of the new objects from storage as of any
object, and `put` returns once it has (a job submitted next may read them).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import trio

from weft.actors.storage.client import read_all, read_body
from weft.actors.storage.trees import fetch_file, store_bytes, store_file
from weft.actors.trees import (
    MAGIC,
    Manifest,
    Scan,
    TreeError,
    is_manifest,
    lay_out,
    object_of,
    scan,
)
from weft.bus.errors import BusError, CallTimeout, RemoteError
from weft.bus.rpc import Peer, PeerClosed
from weft.protocol.enums import ErrorCode
from weft.protocol.jobs import Locate, LocateReply
from weft.protocol.objects import ReadReply

# How long `put` waits for the coordinator to hear of what it stored.
_KNOWN_WITHIN = 15.0


class PutFiles:
    """Needs from the client: `_run`, `_call`, `_pool`, `locate`."""

    def put(self, path: str | Path, *, replicas: int = 1) -> str:
        """Store a local file or directory tree as a content-named object and
        return its name (`sha256-<hex>`), usable as an input (`ObjectRef(name)`,
        `--input x=@NAME`). The same content put twice is stored once.
        Raises TreeError (a SpecError) for a missing path, an unreadable file
        or a symlink pointing outside the tree."""
        s = scan(path)
        self.put_scans([s], replicas=replicas)
        return s.name

    def put_scans(self, scans: Iterable[Scan], *, replicas: int = 1) -> None:
        """Store scanned files (actors/trees.scan) not stored yet."""
        if replicas < 1:
            raise ValueError(f"replicas must be at least 1, got {replicas}")
        scans = list({s.obj: s for s in scans}.values())
        if scans:
            self._run(lambda: self._put_scans(scans, replicas))

    async def _put_scans(self, scans: list[Scan], replicas: int) -> None:
        targets: list[str] | None = None
        stored = []
        for s in scans:
            if await self._known(s.obj):
                continue  # the cluster has it: nothing to send
            if targets is None:
                targets = await self._targets(replicas)
            peers = [self._pool.get(ep) for ep in targets]
            for sha, (path, size) in s.blobs.items():
                await store_file(peers, sha, path, size)
            if s.manifest is not None:
                await store_bytes(peers, s.obj, s.manifest)
            stored.append(s.obj)
        # Storage announces them to the coordinator on its own: wait until it
        # did, or a submit reading them next could be refused as unknown.
        deadline = trio.current_time() + _KNOWN_WITHIN
        for obj in stored:
            while not await self._known(obj):
                if trio.current_time() > deadline:
                    raise BusError(f"stored {obj} but the coordinator has not heard of it after {_KNOWN_WITHIN:g}s")
                await trio.sleep(0.02)

    async def _known(self, obj: str) -> bool:
        try:
            where = LocateReply.from_wire(await self._call("locate", Locate(obj).to_wire()))
        except RemoteError as e:
            if e.code == ErrorCode.MISSING:
                return False
            raise
        return where.state == "finished" and bool(where.copies)

    async def _targets(self, replicas: int) -> list[str]:
        """The storage nodes a put writes to: the same ones every time (by node
        id), so content already stored is found there and not sent again."""
        nodes = (await self._call("nodes", {}))["nodes"]
        ready = sorted((n for n in nodes if n.get("role") == "storage" and n.get("ready")), key=lambda n: n["node"])
        if not ready:
            raise BusError("no storage node is ready to store the file", code="unavailable")
        return [n["endpoint"] for n in ready[:replicas]]

    # -- reading back ----------------------------------------------------------------
    def get_tree(self, name: str, dest: str | Path) -> int:
        """Write object `name` out at `dest`: a tree as a directory (made if
        missing; files already there under other paths are left alone), an
        executable file with its mode, plain bytes as a file (streamed).
        Returns the number of files written."""
        dest = Path(dest)
        raw = self._where(object_of(name))
        where = LocateReply.from_wire(raw)
        data = where.data
        if data is None:
            token = raw.get("rt")  # a user key's read token (actors/storage/readtoken.py)
            head = self._run(lambda: self._from_copies(where, lambda peer: _head(peer, where.name), token))
            if not is_manifest(head):
                with open(dest, "wb") as f:
                    self.get_to(where.name, f.write)
                return 1
            data = self._run(lambda: self._from_copies(where, lambda peer: read_all(peer, where.name), token))
        if not is_manifest(data):
            dest.write_bytes(data)
            return 1
        m = Manifest.decode(data)
        if m.kind == "tree" and dest.exists() and not dest.is_dir():
            raise TreeError(f"{dest} exists and is not a directory: {name} is a directory tree")

        async def lay() -> None:
            peers = [self._pool.get(ep) for ep in where.copies]
            await lay_out(m, dest, lambda sha, path: fetch_file(peers, sha, path))

        self._run(lay)
        return len(m.files)

    def is_tree(self, name: str) -> bool:
        """Is object `name` a directory tree?"""
        where = LocateReply.from_wire(self._where(object_of(name)))
        data = where.data
        if data is None:
            data = self._run(lambda: self._from_copies(where, lambda peer: _head(peer, where.name)))
            if not is_manifest(data):
                return False
            data = self._run(lambda: self._from_copies(where, lambda peer: read_all(peer, where.name)))
        return is_manifest(data) and Manifest.decode(data).kind == "tree"

    def _resolved_bytes(self, where: LocateReply, data: Any) -> Any:
        """An executable file's manifest read as its file's bytes; a tree refused."""
        m = Manifest.decode(data)
        if m.kind == "tree":
            raise TreeError(f"{where.name} is a directory tree: write it out with weft get {where.name} -o DIR "
                            "(Client.get_tree)")

        async def read() -> bytes:
            obj = f"sha256-{m.entries[0].sha}/content"
            for ep in where.copies:
                try:
                    return await read_all(self._pool.get(ep), obj)
                except (CallTimeout, PeerClosed, BusError):
                    continue
            raise BusError(f"the file of {where.name} is on none of its storage nodes", code=ErrorCode.MISSING)

        return self._run(read)


async def _head(peer: Peer, name: str) -> bytes:
    """The first bytes of an object: enough to tell a manifest."""
    r = ReadReply.from_wire(await peer.call("read", read_body(name, 0, len(MAGIC))))
    return bytes(r.data)
