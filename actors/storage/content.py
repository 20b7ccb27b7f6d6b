"""Content files of the object store, and what is done to their pages.

Objects larger than the store's `inline_max` keep their content in
`objects/<job-id>/<output>` under the data dir: appended as chunks arrive
(write handles kept open between chunks), fsynced by the flush that finishes
them, then left in or dropped from the page cache (PageCacheBudget), and read
by byte range, finished ones from a mapping of the file (read_view). Which
objects have a file, and when, is the store's business (see store.py).
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import logging
import mmap
import os
import re
from collections import deque
from collections.abc import Callable
from pathlib import Path

from weft.protocol.enums import ErrorCode

from .errors import OutOfSpace, StoreError

log = logging.getLogger("weft.storage")

# Write handles of large objects are kept open between chunks; past this many
# the oldest is closed (and reopened on demand) so fds cannot run out.
MAX_OPEN_FILES = 256
# Content of the most recently flushed files left in the page cache, where a
# consumer reading an output made a little earlier finds it; older content is
# dropped from the cache (see PageCacheBudget). Measured with `weft bench`'s
# handoff (1 GiB a run over 2 storage nodes): 32 MiB made consumers read from
# disk, no limit made every write take fresh pages; 512 MiB did best.
PAGE_CACHE_BUDGET = 512 << 20
# Reads of finished content at least this large are served from a mapping of
# the file (read_view); smaller ones cost less as a plain read.
MAP_MIN = 1 << 16

_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
FORBIDDEN = "forbidden"

# Indirections so tests can inject ENOSPC without filling a real disk.
_os_write = os.write
_os_sendfile = os.sendfile
# sendfile refusing a pair of files (not a failure of the write): write from a mapping instead.
_NO_SENDFILE = (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EXDEV)


class SealedFile:
    """A value's bytes as a file sealed against writes (a memory file passed by
    a compute node on this host, fdchannel.py), owned here until `close`.

    Written into an object file by sendfile, not from a mapping: the kernel
    copies its pages straight into the page cache, with no page faults on a
    mapping (10 MiB with fsync: 6.2-6.6 -> 4.2-4.6 ms of CPU, measured alone).
    """

    def __init__(self, fd: int, size: int) -> None:
        self.fd, self.size = fd, size
        self._map: mmap.mmap | None = None

    def __len__(self) -> int:
        return self.size

    def view(self) -> memoryview:
        """Its bytes, mapped read-only (to hash them, or where sendfile cannot write)."""
        if self._map is None:
            self._map = mmap.mmap(self.fd, self.size, mmap.MAP_SHARED, mmap.PROT_READ)
        return memoryview(self._map)

    def __bytes__(self) -> bytes:
        return bytes(self.view())

    def close(self) -> None:
        if self._map is not None:
            try:
                self._map.close()
            except BufferError:
                pass  # a failed write's traceback still holds a view: unmapped when it goes
            self._map = None
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _write_all(fd: int, data: bytes | bytearray | memoryview | SealedFile) -> None:
    if isinstance(data, SealedFile):
        if _send_all(fd, data):
            return
        data = data.view()
    view = memoryview(data)
    while view:
        n = _os_write(fd, view)
        view = view[n:]


def _send_all(fd: int, src: SealedFile) -> bool:
    """Copy all of `src` to `fd`'s end by sendfile; False if sendfile refuses
    these files before writing anything (the caller then writes it)."""
    # Write handles are O_APPEND, which sendfile refuses (EINVAL); the file's
    # position is its end (appends move it there, one writer per object), so
    # it writes at the same place with the flag off for the call.
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    fcntl.fcntl(fd, fcntl.F_SETFL, flags & ~os.O_APPEND)
    try:
        os.lseek(fd, 0, os.SEEK_END)
        offset = 0
        while offset < src.size:
            try:
                n = _os_sendfile(fd, src.fd, offset, src.size - offset)
            except OSError as e:
                if offset == 0 and e.errno in _NO_SENDFILE:
                    return False
                raise
            if n == 0:
                raise OSError(errno.EIO, f"its sealed file ended after {offset} of {src.size} bytes")
            offset += n
        return True
    finally:
        fcntl.fcntl(fd, fcntl.F_SETFL, flags)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return  # removed since (its objects were deleted): nothing to make durable
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _map(fd: int, offset: int, n: int) -> memoryview | None:
    """Bytes [offset, offset+n) of the file, mapped; None if the file is
    shorter than that (changed behind our back: read it the plain way)."""
    if os.fstat(fd).st_size < offset + n:
        return None
    start = offset - offset % mmap.ALLOCATIONGRANULARITY
    # The view keeps the mapping alive until whoever holds it (ZeroMQ, until
    # the bytes are sent) lets go; closing fd does not end the mapping.
    m = mmap.mmap(fd, offset + n - start, prot=mmap.PROT_READ, offset=start)
    return memoryview(m)[offset - start:]


class PageCacheBudget:
    """Keeps the page cache of durable content files to the newest `budget` bytes.

    Left alone, every byte ever written stays cached until the kernel needs
    the memory, so a node streaming large outputs takes a fresh page for each
    of them. Measured on the 2-core VM these numbers come from (whose free
    memory is handed back to the host): writing 100 files of 10 MiB with
    fsync cost 4.3 s of CPU as the cache grew, 0.6 s when the oldest files
    were dropped from the cache after their fsync, because the kernel then
    reuses the same warm pages. Clean pages only: a file is admitted after
    its fsync, so dropping it never forces a write. A budget of 0 drops
    every file right after its fsync.

    Used by one flush at a time (the storage node holds its flush lock).
    """

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self._files: deque[tuple[Path, int]] = deque()
        self._bytes = 0

    def admit(self, path: Path, size: int) -> None:
        self._files.append((path, size))
        self._bytes += size
        while self._bytes > self.budget and self._files:
            old, n = self._files.popleft()
            self._bytes -= n
            _drop_cached(old)


def _drop_cached(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return  # deleted since: its pages went with it
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    except OSError:
        pass  # only advice
    finally:
        os.close(fd)



class ContentFiles:
    """The content files under `objects_dir`: their open write handles, the
    directories whose new entries await an fsync, and the page-cache budget."""

    def __init__(self, objects_dir: Path, *, page_cache: int = PAGE_CACHE_BUDGET) -> None:
        self.dir = objects_dir
        self.dir.mkdir(parents=True, exist_ok=True)
        self._cached = PageCacheBudget(page_cache)
        self._fds: dict[str, int] = {}  # open write handles, oldest first
        # Directories with new entries, staged for the next flush (which takes
        # the set, and gives it back if it fails).
        self.sync_dirs: set[Path] = set()

    def path(self, name: str) -> Path:
        job, output = name.split("/", 1)
        return self.dir / job / output

    def size_on_disk(self, name: str) -> int:
        """Bytes in the object's file; -1 if it has none."""
        try:
            return self.path(name).stat().st_size
        except FileNotFoundError:
            return -1

    def _open_write(self, name: str, *, truncate: bool) -> int:
        fd = self._fds.get(name)
        if fd is not None and not truncate:
            return fd
        if fd is not None:
            os.close(self._fds.pop(name))
        path = self.path(name)
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
        if truncate:
            flags |= os.O_TRUNC
            try:
                path.parent.mkdir()
                self.sync_dirs.add(self.dir)
            except FileExistsError:
                pass
            self.sync_dirs.add(path.parent)
        fd = os.open(path, flags, 0o644)
        self._fds[name] = fd
        if len(self._fds) > MAX_OPEN_FILES:
            oldest = next(iter(self._fds))
            os.close(self._fds.pop(oldest))
        return fd

    def _close_fd(self, name: str) -> None:
        fd = self._fds.pop(name, None)
        if fd is not None:
            os.close(fd)

    def take_fd(self, name: str) -> int | None:
        """The object's write handle, if open, now the caller's to close."""
        return self._fds.pop(name, None)

    def remove(self, name: str) -> None:
        self._close_fd(name)
        self.path(name).unlink(missing_ok=True)

    def append(
        self, name: str, size: int, *parts: bytes | bytearray | memoryview | SealedFile, new: bool
    ) -> None:
        """Write to the content file of `name`, which holds `size` bytes (`new`:
        create it, e.g. when spilling); on failure cut it back so the object
        stays exactly what it was before."""
        fd = self._open_write(name, truncate=new)
        try:
            for part in parts:
                _write_all(fd, part)
        except OSError as e:
            try:
                os.ftruncate(fd, 0 if new else size)
            except OSError:
                log.exception("could not cut back %s after a failed write", name)
            if new:
                self.remove(name)
            if e.errno in _NO_SPACE:
                raise OutOfSpace(
                    f"no space left on device writing object {name!r}"
                    f" (kept the first {size} bytes): {e.strerror}",
                    name=name,
                ) from e
            raise

    def read(self, name: str, offset: int, n: int, mappable: bool) -> bytes | memoryview:
        """Up to `n` bytes of the file from `offset`; a mapped view when
        `mappable` (finished content, which never shrinks) and worth it."""
        fd = os.open(self.path(name), os.O_RDONLY)
        try:
            if mappable and n >= MAP_MIN:
                mapped = _map(fd, offset, n)
                if mapped is not None:
                    return mapped
            chunks = []
            while n > 0:
                chunk = os.pread(fd, n, offset)
                if not chunk:
                    break
                chunks.append(chunk)
                n -= len(chunk)
                offset += len(chunk)
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)
        finally:
            os.close(fd)

    def sync(self, files: list[tuple[int | None, Path, int]], dirs: set[Path]) -> None:
        """fsync `files` (write handle or None, path, size; each handle is
        closed and its entry cleared) and `dirs` (any thread; one at a time)."""
        try:
            for i, (fd, path, size) in enumerate(files):
                if fd is None:
                    # fsync syncs the inode, whichever descriptor asks.
                    fd = os.open(path, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
                    files[i] = (None, path, size)
                self._cached.admit(path, size)
            for d in dirs:
                _fsync_dir(d)
        except FileNotFoundError:
            pass  # deleted meanwhile: its row is going away too
        except OSError as e:
            if e.errno in _NO_SPACE:
                raise OutOfSpace(f"no space left on device flushing objects: {e.strerror}") from e
            raise

    def sweep_orphans(self, owns_file: Callable[[str], bool]) -> None:
        """Remove every file whose object name `owns_file` disowns."""
        # Files written after the last flush by objects whose rows never made it
        # (or that are inline in the row) would otherwise leak disk forever.
        removed = 0
        for job_dir in self.dir.iterdir():
            if not job_dir.is_dir():
                continue
            for f in job_dir.iterdir():
                if not owns_file(f"{job_dir.name}/{f.name}"):
                    f.unlink(missing_ok=True)
                    removed += 1
            try:
                job_dir.rmdir()
            except OSError:
                pass  # not empty: still in use
        if removed:
            log.info("removed %d orphaned content files", removed)

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()


# -- uploads by `user` keys (docs/security.md, "User uploads") ---------------------------
# A user key may write only content objects, `sha256-<hex>/content`, and the
# bytes must hash to <hex> before the object is finished: a user can add
# content to the cluster but never forge what a name stands for (a job's
# output, or other bytes under a content name). Node keys are not checked:
# their writes are the hot path, and their outputs are named by job.
_UPLOAD_NAME = re.compile(r"sha256-([0-9a-f]{64})/content")


def is_upload_name(name: str) -> bool:
    """A content object's name (`sha256-<hex>/content`): readable by whoever knows it."""
    return _UPLOAD_NAME.fullmatch(name) is not None


# Bytes hashed per read when checking a streamed upload.
_HASH_READ = 1 << 20


def upload_digest(name: str, op: str, user: str) -> str:
    """The hex digest a user's write to `name` must match; a `forbidden`
    StoreError for a name that is not a content object."""
    m = _UPLOAD_NAME.fullmatch(name) if isinstance(name, str) else None
    if m is None:
        raise StoreError(f"{op!r} of object {name!r} is not allowed for a user key ({user}): users may write "
                         "only content objects, sha256-<hex>/content (weft put)", name=name, code=FORBIDDEN)
    return m.group(1)


def check_upload(name: str, digest: str, data: bytes | bytearray | memoryview) -> None:
    """A user's bytes for `name` must hash to its `digest`: a StoreError (bad-spec) if not."""
    got = hashlib.sha256(data).hexdigest()
    if got != digest:
        raise StoreError(f"refused {name}: its bytes hash to sha256-{got}, not to its name; nothing was kept",
                         name=name, code=ErrorCode.BAD_SPEC)


def stored_digest(read: Callable[[int, int], bytes], size: int) -> str:
    """SHA-256 (hex) of `size` bytes read by `read(offset, length)` (a partial object's so far)."""
    h = hashlib.sha256()
    offset = 0
    while offset < size:
        chunk = read(offset, min(_HASH_READ, size - offset))
        if not chunk:
            break
        h.update(chunk)
        offset += len(chunk)
    return h.hexdigest()
