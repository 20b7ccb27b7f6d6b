"""A daemon's data directory: made usable, then locked for the process's life.

Two daemons on one directory destroy each other's state (a second compute
node kills the first one's tasks as "left over", two coordinators share one
journal), so each daemon holds an exclusive flock on DIR/.lock while it
runs. The kernel drops the lock when the process dies, however it dies, so
a crashed daemon never leaves a stale lock behind; the file holds the pid
only to name the holder in the refusal.
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

from .settings import SettingError

LOCK_NAME = ".lock"
# Open lock files of this process: kept for its life (closing one drops its lock).
_held: dict[Path, int] = {}


class DataDirError(SettingError):
    """The data directory cannot be used: one line for the user, exit 2."""


def default_data_dir(role: str) -> Path:
    return Path(os.environ.get("WEFT_DATA_DIR", ".weft")) / role


def prepare(path: Path) -> Path:
    """`path` made absolute, created if missing, and checked to be a writable directory."""
    d = Path(path).expanduser().absolute()
    try:
        d.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise DataDirError(f"data directory {d} is not a directory") from None
    except NotADirectoryError:
        raise DataDirError(f"data directory {d}: a parent of it is a file, not a directory") from None
    except OSError as e:
        raise DataDirError(f"cannot create data directory {d}: {e.strerror or e}") from None
    if not d.is_dir():
        raise DataDirError(f"data directory {d} is not a directory")
    # Writable for real (not only by its mode bits: root ignores those, a
    # read-only mount does not): the lock file is the probe.
    try:
        fd = os.open(d / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as e:
        raise DataDirError(f"data directory {d} is not writable: {e.strerror or e}") from None
    os.close(fd)
    return d.resolve()


def holder(path: Path) -> str:
    """The pid written in `path`'s lock file, or "unknown"."""
    try:
        text = (Path(path) / LOCK_NAME).read_text().strip()
    except OSError:
        return "unknown"
    return text if text.isdigit() else "unknown"


def lock(path: Path) -> None:
    """Lock data directory `path` (prepared) for this process's life; DataDirError if another holds it."""
    d = Path(path)
    if d in _held:
        return
    try:
        fd = os.open(d / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as e:
        raise DataDirError(f"data directory {d} is not writable: {e.strerror or e}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        os.close(fd)
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise DataDirError(f"data directory {d} is in use by pid {holder(d)}; "
                               "one daemon per data directory") from None
        raise DataDirError(f"cannot lock data directory {d}: {e.strerror or e}") from None
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
    except OSError as e:
        os.close(fd)
        raise DataDirError(f"data directory {d} is not writable: {e.strerror or e}") from None
    _held[d] = fd


def check_free(path: Path) -> None:
    """DataDirError if a live process holds `path`'s lock (a probe: takes and drops it)."""
    d = Path(path)
    if d in _held or not (d / LOCK_NAME).exists():
        return
    try:
        fd = os.open(d / LOCK_NAME, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        raise DataDirError(f"data directory {d} is in use by pid {holder(d)}; "
                           "one daemon per data directory") from None
    finally:
        os.close(fd)
