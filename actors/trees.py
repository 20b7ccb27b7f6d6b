"""Content-named objects and directory trees: the format, and scanning local files.

A file put into weft (`weft put`, an `@./path` input) is stored as an object
named by its content: `sha256-<hex>/content`, where `<hex>` is the SHA-256 of
its bytes. The user sees `sha256-<hex>` alone. The same bytes put twice get
the same name, so they are stored once.

Anything with structure or a mode is stored as a *manifest*, an object whose
bytes start with MAGIC, then canonical JSON:

    {"kind": "tree", "entries": [{"p": "src/a.c", "t": "f", "m": 420, "s": 12, "h": "<sha256>"},
                                 {"p": "src", "t": "d"}, {"p": "lib", "t": "l", "l": "src"}]}
    {"kind": "file", "entries": [{"p": "", "t": "f", "m": 493, "s": 12, "h": "<sha256>"}]}

A tree lists its files (path, mode, size, content hash), directories and
symlinks (only those pointing inside the tree); a "file" manifest is one
executable file (a plain file without the executable bit is just its bytes).
File contents are content objects, so a file unchanged between two trees is
stored once. Modes are normalised to 0o755 (any executable bit) or 0o644, so
the same checkout under another umask has the same name. The manifest's own
name is the SHA-256 of its bytes.

Readers tell a manifest from plain bytes by MAGIC (it starts with a NUL, which
no text file does); a job output whose bytes start with MAGIC would be taken
for a manifest.

Nothing here does network I/O: actors/storage/trees.py moves blobs.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
from collections.abc import Awaitable, Callable
from dataclasses import field
from pathlib import Path
from typing import Any

import trio

from weft.protocol.record import record

from .model import SpecError

MAGIC = b"\x00weft-tree\x001\n"
CONTENT = "content"  # the output part of a content object's name
_CONTENT_RE = re.compile(r"sha256-[0-9a-f]{64}")
_HEX_RE = re.compile(r"[0-9a-f]{64}")
EXEC_MODE, FILE_MODE = 0o755, 0o644
_READ = 1 << 20
# Files of a tree fetched at once when it is laid out.
FETCHES = 8


class TreeError(SpecError):
    """A local path or a manifest that cannot be stored or laid out."""


def content_object(digest: str) -> str:
    """The object holding the bytes whose SHA-256 is `digest` (hex)."""
    return f"sha256-{digest}/{CONTENT}"


def is_content_name(name: str) -> bool:
    return bool(_CONTENT_RE.fullmatch(name))


def is_content_object(obj: str) -> bool:
    """Is `obj` a content object (`sha256-<hex>/content`)?"""
    job, _, out = obj.partition("/")
    return out == CONTENT and is_content_name(job)


def object_of(ref: str) -> str:
    """A reference as an object name: `sha256-<hex>` is its content object."""
    return f"{ref}/{CONTENT}" if is_content_name(ref) else ref


def short_name(obj: str) -> str:
    """`sha256-<hex>/content` as the user sees it: `sha256-<hex>`."""
    job, _, out = obj.partition("/")
    return job if out == CONTENT and is_content_name(job) else obj


def norm_mode(st_mode: int) -> int:
    return EXEC_MODE if st_mode & 0o111 else FILE_MODE


def is_manifest(data: bytes | bytearray | memoryview) -> bool:
    return bytes(data[:len(MAGIC)]) == MAGIC


@record
class Entry:
    path: str  # relative, '/'-separated; "" for a file manifest's one file
    kind: str  # "f" file, "d" directory, "l" symlink
    mode: int = FILE_MODE
    size: int = 0
    sha: str = ""
    target: str = ""

    def to_json(self) -> dict[str, Any]:
        if self.kind == "f":
            return {"p": self.path, "t": "f", "m": self.mode, "s": self.size, "h": self.sha}
        if self.kind == "l":
            return {"p": self.path, "t": "l", "l": self.target}
        return {"p": self.path, "t": "d"}


@record
class Manifest:
    kind: str  # "tree" or "file"
    entries: list[Entry] = field(default_factory=list)

    def encode(self) -> bytes:
        body = {"kind": self.kind, "entries": [e.to_json() for e in sorted(self.entries, key=lambda e: e.path)]}
        return MAGIC + json.dumps(body, sort_keys=True, separators=(",", ":")).encode()

    @property
    def files(self) -> list[Entry]:
        return [e for e in self.entries if e.kind == "f"]

    @classmethod
    def decode(cls, data: bytes | bytearray | memoryview) -> Manifest:
        """Parse and check a manifest: every path stays inside the tree."""
        if not is_manifest(data):
            raise TreeError("not a tree manifest")
        try:
            body = json.loads(bytes(data[len(MAGIC):]))
        except (ValueError, RecursionError) as e:
            raise TreeError(f"tree manifest is not valid JSON: {e}") from None
        if not isinstance(body, dict) or body.get("kind") not in ("tree", "file") \
                or not isinstance(body.get("entries"), list):
            raise TreeError("tree manifest: expected {kind: tree|file, entries: [...]}")
        m = cls(body["kind"])
        seen: set[str] = set()
        for raw in body["entries"]:
            e = _entry(raw, m.kind)
            if e.path in seen:
                raise TreeError(f"tree manifest: path {e.path!r} is listed twice")
            seen.add(e.path)
            m.entries.append(e)
        if m.kind == "file" and (len(m.entries) != 1 or m.entries[0].kind != "f"):
            raise TreeError("file manifest: expected exactly one file")
        for e in m.entries:  # a file under a file, or under a symlink, could never be laid out
            parent = e.path.rpartition("/")[0]
            while parent:
                if parent in seen and not any(x.path == parent and x.kind == "d" for x in m.entries):
                    raise TreeError(f"tree manifest: {e.path!r} is under {parent!r}, which is not a directory")
                parent = parent.rpartition("/")[0]
        return m


def _entry(raw: Any, kind: str) -> Entry:
    if not isinstance(raw, dict) or not isinstance(raw.get("p"), str) or raw.get("t") not in ("f", "d", "l"):
        raise TreeError(f"tree manifest: bad entry {raw!r}")
    path = raw["p"]
    if kind == "tree":
        check_rel_path(path)
    elif path:
        raise TreeError("file manifest: its file has no path")
    if raw["t"] == "f":
        mode, size, sha = raw.get("m"), raw.get("s"), raw.get("h")
        if mode not in (EXEC_MODE, FILE_MODE) or type(size) is not int or size < 0 \
                or not isinstance(sha, str) or not _HEX_RE.fullmatch(sha):
            raise TreeError(f"tree manifest: bad file entry {raw!r}")
        return Entry(path, "f", mode, size, sha)
    if raw["t"] == "l":
        target = raw.get("l")
        if not isinstance(target, str) or not _inside(path, target):
            raise TreeError(f"tree manifest: symlink {path!r} points outside the tree")
        return Entry(path, "l", target=target)
    return Entry(path, "d")


def check_rel_path(path: str) -> str:
    parts = path.split("/")
    if not path or any(p in ("", ".", "..") or "\0" in p for p in parts):
        raise TreeError(f"tree manifest: unsafe path {path!r}")
    return path


def _inside(link_path: str, target: str) -> bool:
    """Does a symlink at `link_path` (relative to the tree) with `target` stay in the tree?"""
    if not target or target.startswith("/"):
        return False
    depth = link_path.count("/")  # directories above the link inside the tree
    for part in target.split("/"):
        if part == "..":
            depth -= 1
            if depth < 0:
                return False
        elif part not in ("", "."):
            depth += 1
    return True


# -- scanning local files ---------------------------------------------------------------------------
def hash_file(path: Path) -> tuple[str, int]:
    """(SHA-256 hex, size) of a file's bytes."""
    h = hashlib.sha256()
    size = 0
    try:
        with open(path, "rb") as f:
            while chunk := f.read(_READ):
                h.update(chunk)
                size += len(chunk)
    except PermissionError:
        raise TreeError(f"cannot read {path}: permission denied") from None
    except OSError as e:
        raise TreeError(f"cannot read {path}: {e.strerror}") from None
    return h.hexdigest(), size


@record
class Scan:
    """A local file or directory as it will be stored: its object, the
    manifest bytes (None for a plain file), and the files behind each content hash."""

    path: Path
    obj: str
    manifest: bytes | None
    blobs: dict[str, tuple[Path, int]]

    @property
    def name(self) -> str:
        return short_name(self.obj)


def scan(path: Path | str) -> Scan:
    """Hash a local file or tree; TreeError (one line) for what cannot be stored."""
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise TreeError(f"{path}: no such file or directory") from None
    except OSError as e:
        raise TreeError(f"{path}: {e.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        m = Manifest("tree")
        blobs: dict[str, tuple[Path, int]] = {}
        _walk(path, path, "", m, blobs)
        data = m.encode()
        return Scan(path, content_object(hashlib.sha256(data).hexdigest()), data, blobs)
    if not stat.S_ISREG(st.st_mode):
        raise TreeError(f"{path}: not a regular file or directory")
    sha, size = hash_file(path)
    if norm_mode(st.st_mode) == FILE_MODE:
        return Scan(path, content_object(sha), None, {sha: (path, size)})
    data = Manifest("file", [Entry("", "f", EXEC_MODE, size, sha)]).encode()
    return Scan(path, content_object(hashlib.sha256(data).hexdigest()), data, {sha: (path, size)})


def _walk(root: Path, d: Path, prefix: str, m: Manifest, blobs: dict[str, tuple[Path, int]]) -> None:
    try:
        names = sorted(os.listdir(d))
    except OSError as e:
        raise TreeError(f"cannot read directory {d}: {e.strerror}") from None
    for name in names:
        p = d / name
        rel = f"{prefix}{name}"
        st = p.lstat()
        if stat.S_ISLNK(st.st_mode):
            target = os.readlink(p)
            if not _inside(rel, target):
                raise TreeError(f"{root}: symlink {rel} points outside the tree ({target})")
            m.entries.append(Entry(rel, "l", target=target))
        elif stat.S_ISDIR(st.st_mode):
            m.entries.append(Entry(rel, "d"))
            _walk(root, p, rel + "/", m, blobs)
        elif stat.S_ISREG(st.st_mode):
            sha, size = hash_file(p)
            m.entries.append(Entry(rel, "f", norm_mode(st.st_mode), size, sha))
            blobs.setdefault(sha, (p, size))
        else:
            raise TreeError(f"{root}: {rel} is not a regular file, directory or symlink")


# -- laying a manifest out --------------------------------------------------------------------------
Fetch = Callable[[str, Path], Awaitable[None]]


async def lay_out(m: Manifest, dest: Path, fetch: Fetch) -> None:
    """Write a manifest's files at `dest` (a tree: a directory, made if
    missing; a file manifest: the file), each file's bytes by `fetch(sha, path)`,
    with its mode. A content hash shared by several files is fetched once;
    up to FETCHES files are fetched at once (a tree of many small headers
    would otherwise cost a round trip each, one after another)."""
    if m.kind == "file":
        e = m.entries[0]
        await fetch(e.sha, dest)
        os.chmod(dest, e.mode)
        return
    _make_dir(dest, dest)
    by_sha: dict[str, list[tuple[Path, int]]] = {}
    for e in sorted(m.entries, key=lambda e: e.path):
        p = dest / e.path
        if e.kind == "d":
            _make_dir(p, dest)
            continue
        _make_dir(p.parent, dest)
        if p.is_dir() and not p.is_symlink():
            raise TreeError(f"cannot write {p}: a directory is in the way")
        if p.is_symlink() or (e.kind == "l" and p.exists()):
            p.unlink()  # never write through a link that was there
        if e.kind == "l":
            p.symlink_to(e.target)
        else:
            by_sha.setdefault(e.sha, []).append((p, e.mode))
    limit = trio.CapacityLimiter(FETCHES)

    async def one(sha: str, files: list[tuple[Path, int]]) -> None:
        async with limit:
            await fetch(sha, files[0][0])
        for p, _mode in files[1:]:
            shutil.copyfile(files[0][0], p)
        for p, mode in files:
            os.chmod(p, mode)

    try:
        async with trio.open_nursery() as nursery:
            for sha, files in by_sha.items():
                nursery.start_soon(one, sha, files)
    except ExceptionGroup as group:  # the first failure as itself, for the caller to judge
        first: BaseException = group
        while isinstance(first, ExceptionGroup):
            first = first.exceptions[0]
        raise first from None


def _make_dir(p: Path, root: Path) -> None:
    """mkdir -p, refusing in one line a file (or a symlink) where a directory goes."""
    if p.is_dir() and (p == root or not p.is_symlink()):
        return
    if p.is_symlink() or p.exists():
        raise TreeError(f"cannot write {p}: a file is in the way of a directory of the tree")
    if p == root:
        p.mkdir(parents=True, exist_ok=True)
        return
    _make_dir(p.parent, root)
    p.mkdir(exist_ok=True)
