"""A Unix socket's path that fits the kernel's `sun_path`.

Linux holds a socket's path in 108 bytes, and a data directory deep in a
home or build tree goes past that: bind and connect then fail with
"AF_UNIX path too long". A longer path is reached through the directory's
descriptor instead (`/proc/self/fd/N/name`, resolved by the kernel like any
path), so the socket still lives, with its file mode, in the data directory.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SUN_PATH_MAX = 107  # bytes, without the terminating NUL


@contextmanager
def unix_path(path: str | Path) -> Iterator[str]:
    """A path to bind or connect to for `path`, valid inside the block."""
    text = os.fspath(path)
    if len(os.fsencode(text)) <= SUN_PATH_MAX:
        yield text
        return
    head, name = os.path.split(text)
    fd = os.open(head or ".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        yield f"/proc/self/fd/{fd}/{name}"
    finally:
        os.close(fd)
