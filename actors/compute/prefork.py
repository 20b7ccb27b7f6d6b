"""A compute node's first workers, forked from the node before it serves.

Each worker the pool starts is a new interpreter (`python -m
weft.actors.compute.worker`): ~30 ms of CPU apiece (interpreter, site, the
worker's imports; measured), paid while a local cluster is starting and every
daemon wants the same two cores. The node has already imported everything a
worker runs, so a compute daemon, while it is still one thread (built,
before trio or ZeroMQ start: `Node.before_run`, which only `run_forever`
calls, so a node built inside another program forks nothing), forks the
pool's first workers instead: a fork and a few page copies each. The pool
takes them as if it had just spawned them (same pipes, memory files,
environment and argv, same ready handshake); replacements later are
spawned as before, since by then the node has threads.

Not used where a worker must not share the node's memory or image: a secure
node (its secret key is in that memory), and `fresh` callables (each call
forks a worker that has only imported, isolation.py).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from typing import NamedTuple, NoReturn

import trio

from weft.runtime.forked import run_and_exit

from .importable import path_head
from .lookup import look_up
from .spawn import Reaped
from .workerfds import WorkerFds

_CAN = hasattr(os, "fork") and hasattr(os, "pidfd_open") and sys.platform == "linux"


class ForkedProc(Reaped):
    """A forked worker, with the part of trio.Process's API the pool uses (and its waiting rules)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._pidfd = os.pidfd_open(pid)
        self._rc: int | None = None
        self._wait_lock: trio.Lock | None = None  # made in trio: this object is made before trio runs

    def _exited(self) -> None:
        if self._pidfd >= 0:
            try:
                trio.lowlevel.notify_closing(self._pidfd)  # a task waiting on it wakes
            except RuntimeError:
                pass  # outside trio: nobody waits on it
            os.close(self._pidfd)
            self._pidfd = -1

    async def wait(self) -> int:
        if self._wait_lock is None:
            self._wait_lock = trio.Lock()
        async with self._wait_lock:
            if self.returncode is None:
                with contextlib.suppress(trio.ClosedResourceError):  # reaped meanwhile by a poll
                    await trio.lowlevel.wait_readable(self._pidfd)
                if self._rc is None:
                    self._reap(0)  # the pidfd said it exited: this does not block
        assert self._rc is not None
        return self._rc

    def send_signal(self, sig: int) -> None:
        if self.returncode is None:
            os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class Prespawned(NamedTuple):
    """A forked worker and its descriptors (child side closed), as WorkerPool._spawn makes them."""

    proc: ForkedProc
    fds: WorkerFds
    progress: str | None


def usable(secure: bool, fresh: bool) -> bool:
    """Whether this node may fork its first workers (see the module's doc)."""
    return _CAN and not secure and not fresh and threading.active_count() == 1


def fork_workers(n: int, env: dict[str, str], progress_dir: str | None) -> list[Prespawned]:
    """Fork `n` workers now (the process must still be single-threaded); [] if one cannot be."""
    out: list[Prespawned] = []
    for i in range(1, n + 1):
        progress = None if progress_dir is None else f"{progress_dir}/worker-{i}"
        try:
            out.append(_fork_one(env if progress is None else {**env, "WEFT_PROGRESS": progress}, progress))
        except OSError:
            break  # the pool spawns the rest as usual
    return out


def _fork_one(env: dict[str, str], progress: str | None) -> Prespawned:
    fds = WorkerFds()
    try:
        pid = os.fork()
    except BaseException:
        fds.close()
        raise
    if pid == 0:
        _become_worker(fds.req_r, fds.rep_w, fds.passed, env)
    fds.close_child_side()
    try:
        proc = ForkedProc(pid)
    except OSError:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        fds.close()
        raise
    return Prespawned(proc, fds, progress)


def _clean_process(keep: set[int], env: dict[str, str]) -> None:
    """In a forked child: only the fds an exec'd one would get (not the node's
    lock, journal, log or sockets), the environment and path it would have,
    and default handlers for the signals the node may have caught."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass
    # Only what differs: clearing and refilling all of it (each a putenv, an
    # encode, a page of the image written) cost ~0.5 ms per child, against ~0.2.
    for name in [name for name in os.environ if name not in env]:
        del os.environ[name]
    for name, value in env.items():
        if os.environ.get(name) != value:
            os.environ[name] = value
    # As an exec'd one would have it.
    sys.path[:0] = [p for p in path_head(env) if p not in sys.path]
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD):
        signal.signal(sig, signal.SIG_DFL)


def _become_worker(req_r: int, rep_w: int, shm: list[int], env: dict[str, str]) -> NoReturn:
    """In the child: what `python -m weft.actors.compute.worker SHM...` would be."""

    def become() -> None:
        os.dup2(req_r, 0)
        os.dup2(rep_w, 1)
        _clean_process({0, 1, 2, *shm}, env)
        for fd in shm:
            os.set_inheritable(fd, True)  # as pass_fds leaves them in an exec'd worker
        from . import worker

        sys.argv = [worker.__file__, *map(str, shm)]
        worker.main()

    # Not the node's exit handlers (its logging, its journal): only ours.
    run_and_exit(become)


class SpareProbe:
    """A one-shot probe interpreter forked with the workers (probe.py's `_SCRIPT`, in a fork).

    The first submit of a callable on a fresh cluster asks every compute node
    to look its module up, each in a new interpreter (~25 ms of CPU, started
    while the job waits). This one was forked before the node served, from
    an image that has imported nothing of the user's, with the workers' path
    and environment: it answers that first probe and exits; later ones start
    interpreters as before.
    """

    def __init__(self, proc: ForkedProc, req_w: int, rep_r: int) -> None:
        self.proc = proc
        self._req_w = req_w
        self._rep_r = rep_r

    async def ask(self, modules: list[str], timeout: float) -> str:
        """One digit per module (1 found, 0 missing); "" if it failed or took past `timeout`."""
        answer = b""
        try:
            with trio.move_on_after(timeout):
                os.write(self._req_w, "\n".join(modules).encode())
                os.close(self._req_w)
                self._req_w = -1
                async with trio.lowlevel.FdStream(self._rep_r) as reply:
                    self._rep_r = -1  # the stream owns it now
                    while chunk := await reply.receive_some():
                        answer += chunk
        except OSError:
            answer = b""
        finally:
            self.close()
        return answer.decode("ascii", "replace") if len(answer) == len(modules) else ""

    def close(self) -> None:
        for fd in (self._req_w, self._rep_r):
            if fd >= 0:
                os.close(fd)
        self._req_w = self._rep_r = -1
        if self.proc.returncode is None:
            self.proc.kill()
            self.proc._reap(0)


def fork_probe(env: dict[str, str]) -> SpareProbe | None:
    """Fork the spare probe now (the process must still be single-threaded); None if it cannot be."""
    try:
        req_r, req_w = os.pipe()
    except OSError:
        return None
    try:
        rep_r, rep_w = os.pipe()
    except OSError:
        os.close(req_r)
        os.close(req_w)
        return None
    try:
        pid = os.fork()
    except OSError:
        for fd in (req_r, req_w, rep_r, rep_w):
            os.close(fd)
        return None
    if pid == 0:
        _become_probe(req_r, rep_w, env)
    os.close(req_r)
    os.close(rep_w)
    os.set_blocking(rep_r, False)
    try:
        return SpareProbe(ForkedProc(pid), req_w, rep_r)
    except OSError:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(req_w)
        os.close(rep_r)
        return None


def _become_probe(req_r: int, rep_w: int, env: dict[str, str]) -> NoReturn:
    """In the child: wait for the module names, answer as probe.py's `_SCRIPT` does."""

    def become() -> None:
        _clean_process({req_r, rep_w, 2}, env)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(2, 1)  # what a package's __init__ prints goes to the node's stderr
        if devnull > 2:
            os.close(devnull)
        names = b""
        while chunk := os.read(req_r, 65536):
            names += chunk
        if not names:
            return  # the node stopped without asking
        import importlib

        importlib.invalidate_caches()  # modules installed since the fork are found
        os.write(rep_w, look_up(names.decode().split("\n")).encode())

    run_and_exit(become)
