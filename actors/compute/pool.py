"""A pool of warm worker processes that run callable jobs.

Workers are started once and reused, so running a tiny function costs a pipe
round trip, not a process start. Each worker runs one call at a time; `run`
waits for a free one. Requests are length-prefixed msgpack; results come back
raw when they are bytes or str (the common case) and as pickle protocol 5
otherwise (see weft.actors.compute.worker).

A worker whose call is cancelled or times out is killed and replaced: a stuck
function cannot be interrupted any other way. So is a worker that dies.
"""

from __future__ import annotations

import logging
import math
import os
import pickle
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack
import trio

from . import segments
from .isolation import FRESH_ENV
from .poolerrors import CallableError, CallableNotFound, WorkerLost  # noqa: F401
from .poolerrors import describe_exit as _describe_exit
from .requests import Parts, encode_request  # noqa: F401 (Parts: where the node's modules take it from)
from .worker import (
    BYTES,
    ERROR,
    IOV_MAX,
    LOGGED,
    NOT_FOUND,
    PICKLE,
    PIPE_CHUNK,
    READY,
    REP,
    SHM,
    STR,
    pread_exact,
    pwrite_all,
)
from .workerfds import WorkerFds

log = logging.getLogger("weft.compute")

_READ = 1 << 16
_SMALL = 1 << 12  # a request head written in one piece with its length (send)
_RESULT_KINDS = frozenset((BYTES, STR, PICKLE, ERROR, NOT_FOUND))
_ROOT = str(Path(__file__).resolve().parents[2])
# A worker's memory files keep their pages between calls (that is the point);
# one that grew past this for a huge value gives them back afterwards.
_SHM_KEEP = 64 << 20
_HAVE_MEMFD = hasattr(os, "memfd_create")


def worker_env() -> dict[str, str]:
    """The environment workers run in (the node's probe starts its look-ups
    in the same one: see probe.py)."""
    env = dict(os.environ)
    # Workers must import the same code as the node, installed or not.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_ROOT, env.get("PYTHONPATH")) if p)
    return env


class _Worker:
    """One worker process, our ends of its two pipes (non-blocking), its
    memory files (-1 without them) and of its socket for values' own memory
    files (segments.py; None without)."""

    __slots__ = ("proc", "rfd", "wfd", "shm_in", "shm_out", "shm_log", "progress", "printed", "sock")

    def __init__(self, proc: trio.Process, rfd: int, wfd: int, shm_in: int = -1, shm_out: int = -1,
                 shm_log: int = -1) -> None:
        self.sock: Any = None
        self.proc = proc
        self.rfd = rfd
        self.wfd = wfd
        self.shm_in = shm_in
        self.shm_out = shm_out
        # The worker's stdout and stderr (a memory file): a call's prints, its log.
        self.shm_log = shm_log
        self.progress: str | None = None  # its $WEFT_PROGRESS
        self.printed = False  # the last reply said the call printed something

    @property
    def pid(self) -> int:
        return self.proc.pid

    async def send(self, parts: list[Any]) -> None:
        fd = self.wfd
        if len(parts) == 2 and len(parts[1]) < _SMALL:
            # A request with no raw inputs (most: the head and its length):
            # one small write, no views to make and walk.
            data = parts[0] + parts[1]
            try:
                n = os.write(fd, data)
            except BlockingIOError:
                n = 0
            except OSError:
                raise WorkerLost(f"worker {self.pid} stopped reading") from None
            if n == len(data):
                return
            parts = [memoryview(data)[n:]]
        views = [memoryview(p).cast("B") for p in parts]
        while views:
            try:
                n = os.writev(fd, views[:IOV_MAX])
            except BlockingIOError:
                await trio.lowlevel.wait_writable(fd)
                continue
            except OSError:
                raise WorkerLost(f"worker {self.pid} stopped reading") from None
            while views and n >= len(views[0]):
                n -= len(views[0])
                views.pop(0)
            if n:
                views[0] = views[0][n:]

    async def _read(self, size: int) -> bytes:
        fd = self.rfd
        while True:
            try:
                data = os.read(fd, size)
            except BlockingIOError:
                await trio.lowlevel.wait_readable(fd)
                continue
            except OSError:
                data = b""
            if not data:
                raise WorkerLost(f"worker {self.pid} closed its pipe")
            return data

    async def receive(self) -> tuple[int, bytes | memoryview]:
        # One read usually brings the whole reply: one call is in flight per worker.
        data = await self._read(_READ)
        while len(data) < REP.size:
            data += await self._read(_READ)
        kind, n = REP.unpack_from(data)
        if kind & LOGGED:
            self.printed = True
            kind &= ~LOGGED
        if kind & segments.SEG:
            if self.sock is None:
                raise WorkerLost(f"worker {self.pid} broke the protocol (a memory file of its own)")
            return kind & ~segments.SEG, await segments.adopt_from(self.sock, n)
        if kind & SHM:
            if self.shm_out < 0:
                raise WorkerLost(f"worker {self.pid} broke the protocol (a memory file reply)")
            payload = pread_exact(self.shm_out, n, 0)
            if n > _SHM_KEEP:
                os.ftruncate(self.shm_out, 0)
            return kind & ~SHM, payload
        have = len(data) - REP.size
        if have >= n:
            return kind, memoryview(data)[REP.size : REP.size + n]
        # Large reply: collect pipe-sized chunks and join once. Reading into a
        # preallocated bytearray looks cheaper but costs more: bytearray(n)
        # zero-fills (faulting in every page) and bytes() then copies it all again.
        chunks = [memoryview(data)[REP.size :]]
        remaining = n - have
        while remaining:
            chunk = await self._read(min(remaining, PIPE_CHUNK))
            chunks.append(chunk)
            remaining -= len(chunk)
        return kind, b"".join(chunks)

    def close_request(self) -> None:
        """Tell the worker to exit after its current call (it reads EOF)."""
        if self.wfd >= 0:
            trio.lowlevel.notify_closing(self.wfd)
            os.close(self.wfd)
            self.wfd = -1

    def close(self) -> None:
        self.close_request()
        if self.rfd >= 0:
            trio.lowlevel.notify_closing(self.rfd)
            os.close(self.rfd)
            self.rfd = -1
        for fd in (self.shm_in, self.shm_out, self.shm_log):
            if fd >= 0:
                os.close(fd)
        self.shm_in = self.shm_out = self.shm_log = -1
        if self.sock is not None:
            trio.lowlevel.notify_closing(self.sock)
            self.sock.close()
            self.sock = None

    def kill(self) -> None:
        self.close()
        if self.proc.returncode is None:
            self.proc.kill()

    @classmethod
    def adopt(cls, proc: Any, fds: WorkerFds, progress: str | None) -> _Worker:
        """The worker `proc`, started with `fds` (their child side closed)."""
        worker = cls(proc, fds.rep_r, fds.req_w, *fds.shm)
        worker.sock = fds.sock
        worker.progress = progress
        return worker


class WorkerPool:
    """`size` warm worker processes; use as `async with WorkerPool(n) as pool`."""

    def __init__(
        self,
        size: int,
        *,
        python: str = sys.executable,
        startup_timeout: float = 30.0,
        stop_grace: float = 1.0,
        progress_dir: str | None = None,
        fresh: bool = False,  # each call in a fork of a clean worker (isolation.py)
        prespawned: list[Any] | None = None,  # workers the node forked before it served (prefork.py)
    ) -> None:
        if size < 1:
            raise ValueError("a worker pool needs at least one worker")
        self._size = size
        self._python = python
        self._startup_timeout = startup_timeout
        self._stop_grace = stop_grace
        self._idle_send, self._idle_recv = trio.open_memory_channel[_Worker](math.inf)
        self._workers: set[_Worker] = set()  # every process not yet reaped
        self._busy = 0
        self._closed = False
        self._started = False
        # Replacements run as system tasks, not in a nursery of ours: the pool
        # enters no cancel scope in __aenter__, so it may be entered and exited
        # from different tasks.
        self._bg_scopes: set[trio.CancelScope] = set()
        self._bg_done: trio.Event | None = None
        self._env = {**worker_env(), FRESH_ENV: "1"} if fresh else worker_env()
        # Each worker reports progress to a file of its own, named once in its
        # environment at start: nothing per call (see weft.actors.progress).
        self._progress_dir = progress_dir
        self._spawned = 0
        self._prespawned = list(prespawned or ())

    @property
    def size(self) -> int:
        return self._size

    @property
    def busy(self) -> int:
        return self._busy

    @property
    def pids(self) -> list[int]:
        """Process ids of the workers in service (not those killed or being replaced)."""
        return [w.pid for w in self._workers if w.rfd >= 0]

    async def __aenter__(self) -> WorkerPool:
        if self._started:
            raise RuntimeError("a WorkerPool can be entered only once")
        self._started = True
        try:
            await self._start_all()
        except BaseException:
            await self._close()
            raise
        log.debug("worker pool started: %d workers", self._size)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._close()

    async def _start_all(self) -> None:
        errors: list[BaseException] = []

        async def start_one() -> None:
            try:
                self._idle_send.send_nowait(await self._spawn())
            except Exception as e:
                # Collected rather than raised: one clear error, not an ExceptionGroup.
                errors.append(e)
                nursery.cancel_scope.cancel()

        async with trio.open_nursery() as nursery:
            for _ in range(self._size):
                nursery.start_soon(start_one)
        if errors:
            raise errors[0]

    async def _spawn(self) -> _Worker:
        if self._prespawned:
            self._spawned += 1
            proc, fds, progress = self._prespawned.pop(0)
            return await self._handshake(_Worker.adopt(proc, fds, progress))
        fds = WorkerFds()
        try:
            self._spawned += 1
            progress = None if self._progress_dir is None else f"{self._progress_dir}/worker-{self._spawned}"
            passed = fds.passed
            proc = await trio.lowlevel.open_process(
                [self._python, "-m", "weft.actors.compute.worker", *map(str, passed)],
                stdin=fds.req_r,
                stdout=fds.rep_w,
                env=self._env if progress is None else {**self._env, "WEFT_PROGRESS": progress},
                pass_fds=passed,
            )
        except BaseException:
            fds.close()
            raise
        fds.close_child_side()
        return await self._handshake(_Worker.adopt(proc, fds, progress))

    async def _handshake(self, worker: _Worker) -> _Worker:
        proc = worker.proc
        self._workers.add(worker)
        try:
            with trio.fail_after(self._startup_timeout):
                try:
                    kind, _ = await worker.receive()
                except WorkerLost:
                    await proc.wait()
                    raise WorkerLost(
                        f"worker failed to start: {_describe_exit(proc.returncode)} "
                        "(its error is on the node's stderr)"
                    ) from None
            if kind != READY:
                raise WorkerLost(f"worker {proc.pid} sent {kind} instead of its ready message")
        except trio.TooSlowError:
            with trio.CancelScope(shield=True):
                await self._reap(worker)
            raise WorkerLost(
                f"worker {proc.pid} did not start within {self._startup_timeout:g}s"
            ) from None
        except BaseException:
            with trio.CancelScope(shield=True):
                await self._reap(worker)
            raise
        return worker

    async def _reap(self, worker: _Worker) -> None:
        worker.kill()
        await worker.proc.wait()
        self._workers.discard(worker)

    def _retire(self, worker: _Worker) -> None:
        worker.kill()
        if not self._closed:
            trio.lowlevel.spawn_system_task(self._replace, worker, name="weft-worker-replace")

    async def _replace(self, dead: _Worker) -> None:
        with trio.CancelScope() as scope:
            self._bg_scopes.add(scope)
            try:
                await self._reap(dead)
                delay = 0.1
                while not self._closed:
                    try:
                        worker = await self._spawn()
                    except Exception as e:
                        log.warning(
                            "cannot start a replacement worker: %s; retrying in %.1fs", e, delay
                        )
                        await trio.sleep(delay)
                        delay = min(delay * 2, 5.0)
                        continue
                    try:
                        self._idle_send.send_nowait(worker)
                    except trio.ClosedResourceError:
                        await self._reap(worker)
                    return
            except Exception:
                # A system task must not raise: that would crash the whole trio run.
                log.exception("worker replacement failed")
            finally:
                self._bg_scopes.discard(scope)
                if not self._bg_scopes and self._bg_done is not None:
                    self._bg_done.set()

    async def _close(self) -> None:
        self._closed = True
        self._idle_send.close()
        with trio.CancelScope(shield=True):
            if self._bg_scopes:
                self._bg_done = trio.Event()
                for scope in self._bg_scopes:
                    scope.cancel()
                await self._bg_done.wait()  # each reaps the process it was starting
            await self._stop_workers()

    async def _stop_workers(self) -> None:
        workers = list(self._workers)
        for w in workers:
            w.close_request()
        # A clean exit first (the worker flushes its stderr); a stuck call gets killed.
        with trio.move_on_after(self._stop_grace):
            for w in workers:
                await w.proc.wait()
        for w in workers:
            await self._reap(w)
        log.debug("worker pool stopped")

    async def _exchange(
        self, worker: _Worker, call: str, request: list[Any], shared: list[Any], passed: list[int]
    ) -> tuple[int, bytes | memoryview]:
        try:
            end = pwrite_all(worker.shm_in, shared, 0) if shared else 0
            if passed:  # before the request: the worker takes them as it reads it
                await segments.send_async(worker.sock, passed)
            await worker.send(request)
            kind, payload = await worker.receive()
            if end > _SHM_KEEP:
                os.ftruncate(worker.shm_in, 0)  # read before the reply came
        except (WorkerLost, trio.ClosedResourceError, OSError, EOFError):  # (OSError, EOFError: its socket)
            with trio.move_on_after(0.5):
                await worker.proc.wait()  # for the exit status; it is closing already
            raise WorkerLost(
                f"worker {worker.pid} running {call!r} died: "
                f"{_describe_exit(worker.proc.returncode)}"
            ) from None
        if kind not in _RESULT_KINDS:
            raise WorkerLost(f"worker {worker.pid} broke the protocol (reply kind {kind})")
        return kind, payload

    async def run(self, call: str, kwargs: dict[str, Any], *, timeout: float | None = None,
                  log: CallLog | None = None, grace: Callable[[], float] | None = None,
                  env: dict[str, str] | None = None) -> Any:
        """Run `call` ("module:function") with `kwargs` in a free worker; return its value.

        `timeout` bounds the call itself, not the wait for a free worker; past
        it the worker is killed and trio.TooSlowError raised. Raises
        CallableError (the function raised), CallableNotFound, WorkerLost.
        `log` receives what the call printed and names the file its
        weft.progress() writes to (see CallLog). A call cancelled midway gets
        SIGTERM, then SIGKILL `grace()` s later (at once without `grace`).
        `env`: environment variables of this call (its job id).
        """
        if self._closed or not self._started:
            raise trio.ClosedResourceError("the worker pool is not running")
        request, shared, passed = encode_request(call, kwargs, _HAVE_MEMFD, env)
        try:
            # A free worker is taken without a trip through the scheduler (a
            # chain's next call goes out in the same wake-up as its producer's
            # reply); the exchange below yields anyway. A cancelled caller
            # still stops here, before it takes a worker.
            await trio.lowlevel.checkpoint_if_cancelled()
            try:
                worker = self._idle_recv.receive_nowait()
            except trio.WouldBlock:
                worker = await self._idle_recv.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise trio.ClosedResourceError("the worker pool is closed") from None
        self._busy += 1
        healthy = False
        if log is not None:
            log.fd = worker.shm_log
            log.progress = worker.progress
        try:
            if timeout is None:
                # No cancel scope when there is no deadline: this is the hot path.
                kind, payload = await self._exchange(worker, call, request, shared, passed)
            else:
                with trio.move_on_after(timeout) as scope:
                    kind, payload = await self._exchange(worker, call, request, shared, passed)
                if scope.cancelled_caught:
                    raise trio.TooSlowError(f"{call!r} did not finish within {timeout:g}s")
            healthy = True
        except trio.Cancelled:
            if grace is not None:
                with trio.CancelScope(shield=True):
                    await _terminate(worker, grace())
            raise
        finally:
            self._busy -= 1
            # The worker says when a call printed (most print nothing): only
            # then, or when the call broke off, is its log file looked at.
            if worker.printed or not healthy:
                worker.printed = False
                _take_log(worker, log)
            elif log is not None:
                log.fd = -1
            if healthy:
                try:
                    self._idle_send.send_nowait(worker)
                except trio.ClosedResourceError:
                    pass  # closing: the pool reaps every worker it started
            else:
                self._retire(worker)
        return _decode(call, kind, payload)


async def _terminate(worker: _Worker, grace: float) -> None:
    """SIGTERM a cancelled call's worker and give it `grace` seconds (a
    callable may handle SIGTERM to clean up). Killed and replaced after
    either way; its request pipe is closed first so it takes no next call."""
    worker.close_request()
    if worker.proc.returncode is not None:
        return
    try:
        worker.proc.send_signal(signal.SIGTERM)
    except ProcessLookupError:
        return
    with trio.move_on_after(grace):
        await worker.proc.wait()


class CallLog:
    """What a callable printed (stdout and stderr, as written): `fd` is the
    worker's log memory file while the call runs (read it live with pread),
    `data` its bytes once the call ended."""

    __slots__ = ("fd", "data", "progress")

    def __init__(self) -> None:
        self.fd = -1
        self.data = b""
        self.progress: str | None = None  # the worker's $WEFT_PROGRESS, once it runs


# A call's log beyond this keeps its last bytes only.
CALL_LOG_MAX = 16 << 20


def _take_log(worker: _Worker, log: CallLog | None) -> None:
    """Collect the call's prints and empty the worker's log file for the next call."""
    fd = worker.shm_log
    if log is not None:
        log.fd = -1
    if fd < 0:
        return
    try:
        size = os.fstat(fd).st_size
        if not size:
            return
        if log is not None:
            keep = min(size, CALL_LOG_MAX)
            log.data = pread_exact(fd, keep, size - keep)
        # The worker's stdout and stderr share this file's offset with us: back to 0.
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
    except OSError:
        pass


def _decode(call: str, kind: int, payload: bytes | memoryview) -> Any:
    if kind == BYTES:  # (a Segment as it is: the node reads it like bytes)
        return payload if type(payload) in (bytes, segments.Segment) else bytes(payload)
    if kind == STR:
        return str(payload, "utf-8", "surrogatepass")
    if kind == PICKLE:
        try:
            return pickle.loads(payload)
        except Exception as e:
            raise CallableError(
                f"the result of {call} could not be unpickled on the node: {type(e).__name__}: {e}"
            ) from None
    if kind in (ERROR, NOT_FOUND):
        message, tb = msgpack.unpackb(payload)
        raise (CallableNotFound if kind == NOT_FOUND else CallableError)(message, tb)
    raise AssertionError(kind)  # run() checked it
