"""`weft prune`: deleting content objects nothing refers to.

Content objects (`sha256-<hex>/content`: what `weft put` and `@./path` inputs
store, and the files of directory outputs) have no job that made them, so
garbage collection, which forgets jobs and their outputs, never deletes
them. `prune`, an admin's call, deletes those that nothing the coordinator
keeps refers to:

* referred to are the content objects named by a kept job's inputs (every
  job the coordinator still knows, finished or not), by a recurring job's
  spec and by an exit action's flow; each of those that is a manifest (a
  tree, an executable file) keeps its files too, and so does every directory
  output of a kept job (a manifest itself);
* a manifest is read from storage to know its files (once: content never
  changes under its name, so what it lists is cached); one no copy of which
  can be read stops the prune before anything is deleted, since its files
  would otherwise look unreferenced;
* of the rest, only objects finished more than `recent` seconds ago go (a
  client puts a tree's files before its manifest and submits the job after:
  an hour by default covers that), and none finished after a running job
  with directory outputs began (it stores its files before its manifest).

Each ready storage node lists its finished content objects with their times;
the unreferenced ones leave the coordinator's objects and are deleted there
in batches. A storage node that is not ready is not asked: its copies stay
until the next prune. Deleting user data is the point, so it runs only when
an admin asks, and `dry_run` says what would go first.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import trio

from weft.actors.model import SpecError
from weft.actors.trees import MAGIC, Manifest, TreeError, content_object, is_content_object
from weft.bus.errors import BusError
from weft.protocol.enums import ObjectState
from weft.protocol.objects import (
    PRUNE_NAMES,
    ListObjects,
    Prune,
    PruneReply,
    Read,
    ReadReply,
    listed_times,
)

from .gc import Forgotten
from .graph import FINISHED, RUNNING
from .records import Job, Obj

if TYPE_CHECKING:
    from .nodeview import CoordinatorNode

log = logging.getLogger("weft.coordinator")

_CONTENT_NAME = re.compile(r"sha256-[0-9a-f]{64}")
_CALL = 30.0  # seconds for one storage call
_MANIFEST_MAX = 256 << 20  # a manifest read whole at most (a tree of ~2M files)
_SLICE = 5000  # jobs looked at between two checkpoints of the event loop


class PruneError(SpecError):
    """A prune that cannot know what is referenced: nothing was deleted."""


def _names_in(value: Any, out: set[str]) -> None:
    """Every content name (`sha256-<hex>`) in a spec's wire form or a flow, as its object."""
    if isinstance(value, str):
        out.update(content_object(m[7:]) for m in _CONTENT_NAME.findall(value))
    elif isinstance(value, dict):
        for k, v in value.items():
            _names_in(k, out)
            _names_in(v, out)
    elif isinstance(value, list | tuple):
        for v in value:
            _names_in(v, out)


def _scan(jobs: Iterable[Job], content: set[str], dirs: set[str]) -> float:
    """Add what `jobs` refer to; the start of the earliest of them running
    with directory outputs (inf if none)."""
    running = float("inf")
    for job in jobs:
        spec = job.spec
        for ref in spec.refs.values():
            if is_content_object(ref):
                content.add(ref)
        if spec.on_exit:
            _names_in(spec.on_exit, content)
        if spec.dirs:
            dirs.update(f"{job.id}/{d}" for d in spec.dirs)
            if job.state == RUNNING:
                running = min(running, job.started or job.submitted)
    return running


async def roots(state: Any) -> tuple[set[str], set[str], float, int]:
    """(content objects referred to directly, directory outputs of kept jobs,
    the start of the earliest running job with directory outputs or inf, the
    newest job's seq). In slices: a million jobs would hold the event loop
    past the heartbeat timeout."""
    content: set[str] = set()
    dirs: set[str] = set()
    jobs = list(state.graph.jobs.values())
    running = float("inf")
    for i in range(0, len(jobs), _SLICE):
        running = min(running, _scan(jobs[i:i + _SLICE], content, dirs))
        await trio.lowlevel.checkpoint()
    for d in state.recurring.values():
        _names_in(d.get("spec"), content)
    return content, dirs, running, max((j.seq for j in jobs), default=-1)


def roots_since(state: Any, seq: int) -> tuple[set[str], set[str], float, int]:
    """`roots` of the jobs submitted after `seq` (and every recurring job), at once."""
    content: set[str] = set()
    dirs: set[str] = set()
    new = [j for j in state.graph.jobs.values() if j.seq > seq]
    running = _scan(new, content, dirs)
    for d in state.recurring.values():
        _names_in(d.get("spec"), content)
    return content, dirs, running, max((j.seq for j in new), default=seq)


async def _manifest_bytes(node: CoordinatorNode, obj: Obj) -> bytes | None:
    """`obj`'s bytes if it is a manifest, b"" if it is plain bytes (only its
    head is read), None if no copy answers."""
    if obj.data is not None:
        data = bytes(obj.data)
        return data if data.startswith(MAGIC) else b""
    for ref in node.state.planner.live_locations(obj):
        peer = node.peers.get(ref.endpoint)
        try:
            r = ReadReply.from_wire(await peer.call("read", Read(obj.name, 0, len(MAGIC)).to_wire(), timeout=_CALL))
            if r.state != ObjectState.FINISHED:
                continue
            if bytes(r.data) != MAGIC:
                return b""
            chunks = [MAGIC]
            offset = len(MAGIC)
            while not r.eof and offset <= _MANIFEST_MAX:
                r = ReadReply.from_wire(await peer.call("read", Read(obj.name, offset).to_wire(), timeout=_CALL))
                if not r.data:
                    break
                chunks.append(bytes(r.data))
                offset += len(r.data)
            return b"".join(chunks)
        except BusError as e:
            log.debug("prune: reading %s on %s: %s", obj.name, ref.node, e)
    return None


async def _files_of(node: CoordinatorNode, name: str) -> tuple[str, ...]:
    """The content objects manifest `name` lists (() for plain bytes), cached."""
    cache: dict[str, tuple[str, ...]] = node.manifests  # content manifests only: their name is their bytes
    known = cache.get(name)
    if known is not None:
        return known
    g = node.graph
    obj = g.resolve(name) if name in g.objects else None  # (resolve makes an unknown name)
    if obj is None or obj.state != FINISHED:
        if is_content_object(name):
            # Referred to but on no storage node we know: whatever it listed
            # cannot be known, so nothing may go.
            raise PruneError(f"{name} is referred to but no storage node holds it (a node is down, or it was "
                             "lost): nothing pruned; the jobs reading it keep it until they are deleted")
        return ()  # a directory output not made (yet, or ever): it lists nothing
    data = await _manifest_bytes(node, obj)
    if data is None:
        raise PruneError(f"cannot read {obj.name} from any storage node (it may list files): nothing pruned")
    files: tuple[str, ...] = ()
    if data:
        try:
            files = tuple(content_object(e.sha) for e in Manifest.decode(data).files)
        except TreeError as e:
            log.warning("prune: %s starts like a manifest but is not one (%s): taken as plain bytes", obj.name, e)
    if is_content_object(name):
        cache[name] = files  # (a job's output may be made again, differently: not cached)
    return files


async def referenced(node: CoordinatorNode) -> tuple[set[str], float, int]:
    """Every content object something kept refers to, the time before which
    a finished object cannot belong to a running directory output, and the
    seq of the newest job looked at."""
    content, dirs, running_dirs, seq = await roots(node.state)
    keep = set(content)
    for name in (*content, *dirs):
        keep.update(await _files_of(node, name))
    # Jobs submitted while manifests were read: theirs too (cached now, or read here).
    again, dirs2, running2, seq = roots_since(node.state, seq)
    for name in (again - content) | (dirs2 - dirs):
        keep.update(await _files_of(node, name))
    keep |= again
    return keep, min(running_dirs, running2), seq


async def prune(node: CoordinatorNode, req: Prune) -> PruneReply:
    async with node.gc_lock:
        keep, running_dirs, seq = await referenced(node)
        before = min(time.time() - req.recent, running_dirs)
        f = Forgotten()
        sizes: dict[str, int] = {}  # candidate -> its size (the first copy listed)
        skipped: list[str] = []
        for ref in list(node.state.storages.values()):
            if not ref.ready:
                skipped.append(ref.node)
                continue
            try:
                listed = listed_times(await node.peers.get(ref.endpoint).call(
                    "list", ListObjects("sha256-", frozenset({ObjectState.FINISHED}), times=True).to_wire(),
                    timeout=_CALL))
            except BusError as e:
                log.warning("prune: listing %s: %s (its copies stay)", ref.node, e)
                skipped.append(ref.node)
                continue
            for name, n, at in listed:
                if name in keep or at >= before or not is_content_object(name):
                    continue
                f.objects.setdefault(ref.node, []).append(name)
                sizes.setdefault(name, n)
        # A job submitted while storage was listing may refer to content
        # looked at already (it stays, with a manifest's files) or not (its
        # files cannot be known without a read: nothing goes this time).
        late = roots_since(node.state, seq)[0]
        unseen = sorted(n for n in late if n not in node.manifests)
        if unseen:
            raise PruneError(f"jobs submitted during the prune refer to content it had not looked at "
                             f"(e.g. {unseen[0]}): nothing pruned; run it again")
        spared = late.union(*(node.manifests[n] for n in late))
        names = sorted(n for n in sizes if n not in spared)
        size = sum(sizes[n] for n in names)
        for node_id, listed_there in f.objects.items():
            f.objects[node_id] = [n for n in listed_there if n not in spared]
        reply = PruneReply(len(names), size, names[:PRUNE_NAMES], len(keep), skipped, req.dry_run)
        if req.dry_run or not names:
            return reply
        objects = node.graph.objects
        for name in names:
            objects.pop(name, None)
            node.state.repair.forget(name)
            node.manifests.pop(name, None)
        from .gc_ops import _delete_objects  # (one delete loop for gc and prune)

        deleted = await _delete_objects(node, f)
        stats = node.state.stats
        stats["prune_objects_deleted"] += len(names)
        stats["prune_last"] = int(time.time())
        node.commits.mark()  # (the counters are journaled with a commit)
        log.info("prune: %d content objects (%d bytes) deleted on storage (%d copies); %d referred to",
                 len(names), size, deleted, len(keep))
        return reply

