"""The descriptors a callable worker is started with, made in one place.

A worker (worker.py) gets a request pipe on fd 0, a reply pipe on fd 1 and,
where the OS has them, three memory files and one end of a socket for values'
own memory files (segments.py), those four as its arguments. The pool starts
it two ways, exec'd (pool.py) or forked from the node (prefork.py); both
build its descriptors here, so a forked worker and an exec'd one cannot
drift apart (forked ones once lacked the socket).
"""

from __future__ import annotations

import os
from typing import Any

from . import segments
from .worker import grow_pipe

_HAVE_MEMFD = hasattr(os, "memfd_create")


class WorkerFds:
    """Both sides of one worker's channels. The child's side: `req_r`, `rep_w`
    and `passed` (its argv fds); ours: `req_w`, `rep_r`, `shm` (in, out, log;
    [] without memory files) and `sock` (None without)."""

    __slots__ = ("req_r", "req_w", "rep_r", "rep_w", "shm", "sock", "_theirs")

    def __init__(self) -> None:
        self.req_r = self.req_w = self.rep_r = self.rep_w = -1
        self.shm: list[int] = []
        self.sock: Any = None
        self._theirs: Any = None
        try:
            self.req_r, self.req_w = os.pipe()
            self.rep_r, self.rep_w = os.pipe()
            grow_pipe(self.req_w)
            if _HAVE_MEMFD:
                # Close-on-exec: pass_fds (or the fork's own cleanup) hands them to this worker only.
                for name in ("weft-worker-in", "weft-worker-out", "weft-worker-log"):
                    self.shm.append(os.memfd_create(name))
                if segments.AVAILABLE:
                    self.sock, self._theirs = segments.socket_pair()
        except BaseException:
            self.close()
            raise

    @property
    def passed(self) -> list[int]:
        """The fds the worker gets as its arguments (and must inherit)."""
        if self._theirs is None:
            return list(self.shm)
        return [*self.shm, self._theirs.fileno()]

    def close_child_side(self) -> None:
        """Once the worker has its copies: close ours of its ends, and make
        our ends non-blocking (trio waits on them)."""
        for fd in (self.req_r, self.rep_w):
            if fd >= 0:
                os.close(fd)
        self.req_r = self.rep_w = -1
        if self._theirs is not None:
            self._theirs.close()
            self._theirs = None
        os.set_blocking(self.req_w, False)
        os.set_blocking(self.rep_r, False)

    def close(self) -> None:
        """Close every descriptor still open (a worker that could not start)."""
        for fd in (self.req_r, self.req_w, self.rep_r, self.rep_w, *self.shm):
            if fd >= 0:
                os.close(fd)
        self.req_r = self.req_w = self.rep_r = self.rep_w = -1
        self.shm = []
        for sock in (self.sock, self._theirs):
            if sock is not None:
                sock.close()
        self.sock = self._theirs = None
