"""Trees and modes on a compute node (actors/trees.py has the format).

Inputs: an input whose bytes are a manifest is laid out in its place: a
tree as the directory `$WEFT_INPUTS/<name>/` with its structure, modes and
symlinks; an executable file as the file `$WEFT_INPUTS/<name>` with its
mode. A callable gets a tree as the path (str) of such a directory and an
executable file as its bytes. The files are read from the storage nodes
holding the manifest (actors/storage/trees.py).

Outputs: a directory the command leaves as `$WEFT_OUTPUTS/<name>` (made
empty beforehand for `--output-dir`), or an executable file, is stored as
its files (each content once per storage node) and a manifest, which becomes
the output's bytes. A plain non-executable file is stored as before.

A mixin of ComputeNode beside Transfers.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path
from typing import Any

from weft.actors.depfiles import (
    DEPS_OUTPUT,
    MAX_DEPFILE,
    encode_record,
    files_read,
    narrowed_key,
    parse_depfile,
)
from weft.actors.storage.client import ObjectWriter
from weft.actors.storage.trees import fetch_file, store_file
from weft.actors.trees import MAGIC, Manifest, TreeError, hash_file, is_manifest, lay_out, scan
from weft.bus.errors import BusError, RemoteError
from weft.protocol.enums import ErrorCode
from weft.protocol.objects import Create

from .pool import Parts
from .task import HardFailure, SoftFailure, Task

log = logging.getLogger("weft.compute")


class Layout:
    """Needs from the node: `peers`, `_copies`, `_storage_soft` (Transfers)."""

    def _input_peers(self, task: Task, name: str) -> list[Any]:
        return [self.peers.get(ep) for ep in self._copies(task.inputs[name][0])]

    async def _lay_out(self, task: Task, name: str, data: bytes | bytearray | memoryview, dest: Path) -> None:
        try:
            m = Manifest.decode(data)
        except TreeError as e:
            raise HardFailure(f"input {name!r}: {e}", ErrorCode.BAD_SPEC) from None
        peers = self._input_peers(task, name)
        try:
            await lay_out(m, dest, lambda sha, path: fetch_file(peers, sha, path))
        except BusError as e:
            raise self._storage_soft(e, f"input {name!r}") from None
        except (OSError, TreeError) as e:  # this node's disk (full?): another node may do
            raise SoftFailure(f"input {name!r}: cannot lay it out on this node: {e}", ErrorCode.IO_ERROR) from None

    async def _expand_file(self, task: Task, name: str, path: Path) -> None:
        """A fetched input file that is a manifest becomes its tree or file."""
        with open(path, "rb") as f:
            head = f.read(len(MAGIC))
        if not is_manifest(head):
            return
        data = path.read_bytes()
        path.unlink()
        await self._lay_out(task, name, data, path)

    async def _expand_value(self, task: Task, name: str, value: bytes | Parts, tree_dir: Path) -> Any:
        """A callable's input: a tree as its directory's path, an executable file as its bytes."""
        head = value[0] if isinstance(value, Parts) and value else value
        if not is_manifest(head if head is not None else b""):
            return value
        data = b"".join(bytes(p) for p in value) if isinstance(value, Parts) else value
        dest = tree_dir / name
        await self._lay_out(task, name, data, dest)
        if dest.is_dir():
            return str(dest)
        out = dest.read_bytes()
        dest.unlink()
        return out

    async def _store_tree(self, task: Task, name: str, path: Path) -> bytes | None:
        """A directory or executable output's files stored; its manifest
        (the output's bytes), or None for a plain file."""
        st = os.stat(path)
        if not stat.S_ISDIR(st.st_mode) and not st.st_mode & 0o111:
            return None
        try:
            s = scan(path)
        except TreeError as e:  # e.g. a symlink out of it: not an output weft can keep
            raise HardFailure(f"output {name!r}: {e}", "output-missing") from None
        peers = [self.peers.get(ep) for ep in task.outputs[name]]
        try:
            for sha, (p, size) in s.blobs.items():
                await store_file(peers, sha, p, size)
        except TreeError as e:
            raise HardFailure(f"output {name!r}: {e}", "output-missing") from None
        except BusError as e:
            raise self._storage_soft(e, f"output {name!r}") from None
        return s.manifest

    async def _keep_deps(self, task: Task, workdir: Path) -> None:
        """The files a succeeded command listed in $WEFT_DEPFILE, kept as
        `JOB/_deps` (actors/depfiles.py). Not worth failing the job for."""
        if not task.outputs:
            return
        try:
            # A string and os.stat: this runs after every command, most write no depfile.
            if os.stat(f"{workdir}/results/deps").st_size > MAX_DEPFILE:
                return
            path = workdir / "results" / "deps"
            inputs = workdir / "inputs"
            trees = [n for n in task.spec.refs if (inputs / n).is_dir() and not (inputs / n).is_symlink()]
            deps = files_read(parse_depfile(path.read_text(errors="replace")), workdir / "work", inputs, trees)
            contents = {n: {p: _sha(inputs / n / p) for p in paths} for n, paths in deps.items()}
            record = encode_record(narrowed_key(task.spec, contents), deps)
        except (OSError, ValueError):  # unreadable: as if it wrote none
            return
        endpoint = next(iter(task.outputs.values()))[0]
        name = f"{task.job}/{DEPS_OUTPUT}"
        # Not quiet: storage's own `finished` tells the coordinator at once
        # (a quiet one waits for other news), so the next submit finds it.
        try:
            try:
                await _put(ObjectWriter(self.peers.get(endpoint), name, task.token), record)
            except RemoteError as e:
                if e.code != ErrorCode.IMMUTABLE:
                    raise
                # An earlier attempt's: this attempt's replaces it.
                await self.peers.get(endpoint).call("create", Create(name, task.token, True).to_wire())
                await _put(ObjectWriter(self.peers.get(endpoint), name, task.token), record)
        except BusError as e:
            log.info("task %s: its depfile was not kept: %s", task.job, e)


def _sha(path: Path) -> str:
    try:
        return hash_file(path)[0]
    except (TreeError, ValueError):
        return ""  # listed but absent (or unreadable): part of the key as such


async def _put(w: ObjectWriter, data: bytes) -> None:
    await w.write(data)
    await w.close()
