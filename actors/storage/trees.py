"""Moving content objects (actors/trees.py) between local files and storage
nodes: the client's `put`, compute's directory and executable outputs, and
both reading trees back.

A manifest's files are stored on the same storage nodes as the manifest, so
whoever holds the manifest's locations can read its files: a reader tries
each of the manifest's copies for each file. Each node is asked (`stat`)
before a file is written to it: a file already there is not written again.
Content objects are written with token 0 (nobody fences them: the same name
always means the same bytes).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from weft.actors.trees import TreeError, content_object
from weft.bus.errors import BusError, CallTimeout, RemoteError
from weft.bus.rpc import Peer, PeerClosed
from weft.protocol.enums import ErrorCode, ObjectState
from weft.protocol.objects import Create, ObjectInfo, ObjectRef, Put

from .client import PUT_MAX, ObjectWriter, ReplicatedWriter, read_object

# Read this much at a time: the writer sends a read's whole chunks with
# several in flight (ObjectWriter's window), not one round trip per chunk.
_READ = 4 << 20


async def _state(peer: Peer, obj: str) -> ObjectState | None:
    try:
        return ObjectInfo.from_wire(await peer.call("stat", ObjectRef(obj).to_wire())).state
    except RemoteError as e:
        if e.code == ErrorCode.MISSING:
            return None
        raise


async def store_file(peers: list[Peer], sha: str, path: Path, size: int) -> list[str]:
    """Store a local file's bytes as content object `sha` on every peer that
    lacks it (checking the bytes still hash to `sha`); the endpoints written."""
    obj = content_object(sha)
    todo: list[Peer] = []
    for peer in peers:
        state = await _state(peer, obj)
        if state == ObjectState.FINISHED:
            continue
        if state is not None:  # a partial copy from a put that died: start it over
            try:
                await peer.call("create", Create(obj, 0, replace=True).to_wire())
            except RemoteError as e:
                if e.code != ErrorCode.IMMUTABLE:  # finished meanwhile by another writer
                    raise
                continue
        todo.append(peer)
    if not todo:
        return []
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            if size <= PUT_MAX:
                data = f.read(PUT_MAX + 1)
                h.update(data)
                _check(h, sha, path)
                for peer in todo:
                    await peer.call("put", Put(obj, data, 0).to_wire())
                return [p.endpoint for p in todo]
            writers = [ObjectWriter(p, obj, 0) for p in todo]
            w: ObjectWriter | ReplicatedWriter = writers[0] if len(writers) == 1 else ReplicatedWriter(writers)
            while chunk := f.read(_READ):
                h.update(chunk)
                await w.write(chunk)
            _check(h, sha, path)  # before finishing: a changed file is never stored under the old name
            await w.close()
    except OSError as e:
        raise TreeError(f"cannot read {path}: {e.strerror}") from None
    return [p.endpoint for p in todo]


def _check(h: hashlib._Hash, sha: str, path: Path) -> None:
    if h.hexdigest() != sha:
        raise TreeError(f"{path} changed while it was being stored: put it again")


async def store_bytes(peers: list[Peer], obj: str, data: bytes) -> None:
    """A manifest (small, immutable) on every peer."""
    for peer in peers:
        await peer.call("put", Put(obj, data, 0).to_wire())


async def fetch_file(peers: list[Peer], sha: str, path: Path) -> None:
    """Content object `sha` into the file `path`, from the first peer that has it."""
    obj = content_object(sha)
    last: Exception | None = None
    for peer in peers:
        try:
            with open(path, "wb") as f:
                await read_object(peer, obj, f.write)
            return
        except (CallTimeout, PeerClosed, BusError) as e:
            last = e
    raise BusError(f"file {sha[:12]}... of a tree is on none of its storage nodes ({last})",
                   code=ErrorCode.MISSING)
