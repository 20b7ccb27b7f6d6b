"""A warm worker process for callable jobs: `python -m weft.actors.compute.worker`.

Started by WorkerPool with a request pipe on fd 0 and a reply pipe on fd 1,
and, where the OS has them, three memory files (memfd) whose fds are its
arguments: one for large inputs, one for a large result, and one that becomes
its stdout and stderr (a call's log: the pool reads and empties it after
each call, so the log costs a silent call one fstat); and a unix socket (the
fourth argument) on which values of SEG_MIN and more travel as memory files
of their own, in both directions (segments.py). It runs one call at a
time, forever, until the request pipe closes.

Requests:  u64 n | msgpack [call, kwargs, [[name, size, at], ...], env?] (n bytes) | raw inputs
           Byte inputs of some size travel outside the msgpack head: at -1
           raw after it on the pipe, in the order listed; at >= 0 in the input
           memory file from that offset; at -2 (PASSED) a memory file of its
           own, sent on the socket before the request (in the order listed). `env`,
           when given, is the call's own environment variables (WEFT_JOB_ID,
           WEFT_COORDINATOR: a callable submits children as a command does),
           set for the call and left for the next one to change.
Replies:   u8 kind | u64 length | payload   (kinds below; READY once at start)
           With the SHM bit set in kind the payload is not on the pipe: it is
           the first `length` bytes of the result memory file; with the SEG
           bit, a memory file of its own sent on the socket before the reply.

Why memory files: a large value through a pipe is copied in, copied out in
pipe-sized pieces and joined; through a memory file it is copied in once and
read out once into the bytes object the other side needs, and the file's pages
are reused call after call instead of fresh memory being faulted in.

This module is imported into the worker before any user code, so it keeps to
the standard library, msgpack, runtime.memory and segments (both standard
library only).
"""

from __future__ import annotations

import importlib
import os
import pickle
import signal
import struct
import sys
import traceback
from collections.abc import Callable
from typing import Any

import msgpack

from weft.runtime.memory import keep_freed_memory

from . import segments

REQ = struct.Struct("<Q")
REP = struct.Struct("<BQ")

READY = 0
BYTES = 1  # payload is the returned bytes, raw: the common case skips pickle entirely
STR = 2  # payload is the returned str, utf-8
PICKLE = 3  # payload is pickle protocol 5 of any other value
ERROR = 4  # payload is msgpack [message, traceback]
NOT_FOUND = 5  # same payload; the callable could not be imported
SHM = 0x80  # or'ed into a kind: the payload is in the result memory file
LOGGED = 0x40  # or'ed into a kind: the call printed (its log file is not empty)

# Payloads from this size on go through the memory files when there are any.
SHM_MIN = 1 << 18

_READ = 1 << 16
PIPE_CHUNK = 1 << 20
IOV_MAX = 512
# A bigger pipe means fewer wake-ups per large message on both sides; the
# kernel caps it (fs.pipe-max-size), and a smaller pipe only costs speed.
_PIPE_SIZE = 1 << 20
_F_SETPIPE_SZ = 1031


def grow_pipe(fd: int) -> None:
    try:
        import fcntl

        fcntl.fcntl(fd, _F_SETPIPE_SZ, _PIPE_SIZE)
    except (OSError, ImportError):
        pass


def write_all(fd: int, parts: list[Any]) -> None:
    """Write without joining, so a large payload is never copied in user space."""
    views = [memoryview(p).cast("B") for p in parts if len(p)]
    while views:
        n = os.writev(fd, views[:IOV_MAX])
        while views and n >= len(views[0]):
            n -= len(views[0])
            views.pop(0)
        if n:
            views[0] = views[0][n:]


class Reader:
    """Exact reads from a pipe, without copying large frames more than once."""

    __slots__ = ("fd", "buf")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buf = b""

    def exact(self, n: int) -> bytes:
        buf = self.buf
        if len(buf) >= n:
            self.buf = buf[n:]
            return buf if len(buf) == n else buf[:n]
        if n - len(buf) < _READ:
            # Small: read greedily, so a header and what follows come in one syscall.
            while len(buf) < n:
                more = os.read(self.fd, _READ)
                if not more:
                    raise EOFError
                buf += more
            self.buf = buf[n:]
            return buf[:n]
        # Large: pipe-sized reads joined once (a zero-filled bytearray to read
        # into would touch every page one more time).
        self.buf = b""
        chunks = [buf]
        have = len(buf)
        while have < n:
            more = os.read(self.fd, min(n - have, PIPE_CHUNK))
            if not more:
                raise EOFError
            chunks.append(more)
            have += len(more)
        return b"".join(chunks)


def pread_exact(fd: int, n: int, offset: int) -> bytes:
    """`n` bytes at `offset` of a regular file, in one piece (one read, usually)."""
    data = os.pread(fd, n, offset)
    if len(data) == n:
        return data
    parts = [data]
    have = len(data)
    while have < n:
        more = os.pread(fd, n - have, offset + have)
        if not more:
            raise EOFError(f"memory file ends at {offset + have}, {n - have} bytes short")
        parts.append(more)
        have += len(more)
    return b"".join(parts)


def pwrite_all(fd: int, parts: list[Any], offset: int) -> int:
    """Write `parts` one after the other from `offset`; returns the end offset."""
    views = [memoryview(p).cast("B") for p in parts if len(p)]
    while views:
        n = os.pwritev(fd, views[:IOV_MAX], offset)
        offset += n
        while views and n >= len(views[0]):
            n -= len(views[0])
            views.pop(0)
        if n:
            views[0] = views[0][n:]
    return offset


def read_request(reader: Reader, shm_in: int = -1, sock: Any = None) -> tuple[str, dict[str, Any]]:
    (n,) = REQ.unpack(reader.exact(REQ.size))
    head = msgpack.unpackb(reader.exact(n))
    call, kwargs, blobs = head[0], head[1], head[2]
    if len(head) > 3:
        _set_env(head[3])
    passed = sum(1 for b in blobs if b[2] == segments.PASSED)
    fds = segments.receive(sock, passed) if passed else []
    try:
        i = 0
        for name, size, at in blobs:
            if at == segments.PASSED:
                kwargs[name] = pread_exact(fds[i], size, 0)
                i += 1
                continue
            kwargs[name] = reader.exact(size) if at < 0 else pread_exact(shm_in, size, at)
    finally:
        for fd in fds:
            os.close(fd)
    return call, kwargs


# The variables the last call's `env` set: a call that brings none clears them.
_CALL_ENV: set[str] = set()


def _set_env(env: dict[str, str] | None) -> None:
    environ = os.environ
    for key in _CALL_ENV - (env.keys() if env else set()):
        environ.pop(key, None)
    _CALL_ENV.clear()
    for key, value in (env or {}).items():
        if environ.get(key) != value:  # (putenv only when it changes: the coordinator's stays)
            environ[key] = value
        _CALL_ENV.add(key)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    name = type(exc).__name__
    return f"{name}: {text[0]}" if text else name


class _NotFound(Exception):
    pass


def _load(call: str) -> Callable[..., Any]:
    module_name, _, attr = call.partition(":")
    try:
        module = importlib.import_module(module_name)
        fn = getattr(module, attr)
    except BaseException as e:
        raise _NotFound(f"no callable {call!r}: {_one_line(e)}") from e
    if not callable(fn):
        raise _NotFound(f"no callable {call!r}: {type(fn).__name__} is not callable")
    return fn


# Whether fds 1 and 2 are the log memory file (see main).
_LOG_FILE = False


def _flush() -> int:
    """End of a call: its prints reach the log file before the reply (the pool
    reads the file then), and its progress report is cleared for the next
    call. LOGGED if the call printed: the pool looks at the file only then."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass  # user code replaced or closed it: not ours to fail over
    progress = sys.modules.get("weft.actors.progress")
    if progress is not None and progress.reported:
        progress.clear()
    try:
        return LOGGED if _LOG_FILE and os.fstat(1).st_size else 0
    except OSError:
        return 0


def _reply_error(fd: int, kind: int, message: str, tb: str) -> None:
    kind |= _flush()
    payload = msgpack.packb([message, tb])
    write_all(fd, [REP.pack(kind, len(payload)), payload])


# The socket memory files travel on (segments.py), when the pool gave one.
_SOCK: Any = None


def _send_segment(data: bytes) -> bool:
    """`data` in a memory file of its own, sent to the node; False if no
    file could be made (out of memory or descriptors: the reused file then)."""
    try:
        fd = segments.make(data)
    except OSError:
        return False
    try:
        segments.send(_SOCK, [fd])
    finally:
        os.close(fd)
    return True


def _reply(wfd: int, kind: int, data: bytes, shm_out: int) -> None:
    kind |= _flush()
    if _SOCK is not None and kind & ~LOGGED == BYTES and len(data) >= segments.SEG_MIN and _send_segment(data):
        write_all(wfd, [REP.pack(kind | segments.SEG, len(data))])
    elif shm_out >= 0 and len(data) >= SHM_MIN:
        pwrite_all(shm_out, [data], 0)
        write_all(wfd, [REP.pack(kind | SHM, len(data))])
    else:
        write_all(wfd, [REP.pack(kind, len(data)), data])


def _answer(wfd: int, fn: Callable[..., Any], call: str, kwargs: dict[str, Any], shm_out: int = -1) -> None:
    # A function of its own so a large result or input is freed as soon as it is sent.
    try:
        result = fn(**kwargs)
    except BaseException as e:  # SystemExit too: a function must not end the worker
        _reply_error(wfd, ERROR, _one_line(e), traceback.format_exc())
        return
    if type(result) is bytes:
        _reply(wfd, BYTES, result, shm_out)
        return
    if type(result) is str:
        _reply(wfd, STR, result.encode("utf-8", "surrogatepass"), shm_out)
        return
    try:
        data = pickle.dumps(result, protocol=5)
    except BaseException as e:
        _reply_error(
            wfd,
            ERROR,
            f"{call} returned a {type(result).__name__} that cannot be sent: {_one_line(e)}",
            traceback.format_exc(),
        )
        return
    del result
    _reply(wfd, PICKLE, data, shm_out)


# Each call in a fork of this process, which only imports (isolation.FRESH_ENV, set by the pool).
_FRESH = os.environ.get("WEFT_WORKER_FRESH") == "1"


def serve(rfd: int, wfd: int, shm_in: int = -1, shm_out: int = -1) -> None:
    cache: dict[str, Callable[..., Any]] = {}
    if _FRESH:
        from functools import partial

        from .isolation import call_in_child
    reader = Reader(rfd)
    write_all(wfd, [REP.pack(READY, 0)])
    while True:
        try:
            call, kwargs = read_request(reader, shm_in, _SOCK)
        except EOFError:
            return
        fn = cache.get(call)
        if fn is None:
            try:
                fn = cache[call] = _load(call)
            except _NotFound as e:
                _reply_error(wfd, NOT_FOUND, str(e), traceback.format_exc())
                continue
        if _FRESH:  # no call changes what the next one sees (actors/compute/isolation.py)
            call_in_child(partial(_answer, wfd, fn, call, kwargs, shm_out))
        else:
            _answer(wfd, fn, call, kwargs, shm_out)
        del kwargs


def _die_with_parent() -> None:
    """Exit when the compute node dies, even by SIGKILL, even mid-call.

    Not PR_SET_PDEATHSIG: Linux fires it when the *thread* that forked us
    exits, and trio spawns processes from cache threads that retire when idle.
    A daemon thread watching our parent pid is simple and exact enough.
    """
    import threading
    import time

    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="weft-parent-watch", daemon=True).start()


def main() -> None:
    # The node handles Ctrl-C and stops its workers; a terminal's SIGINT to the
    # whole process group must not kill them mid-call.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    keep_freed_memory()
    _die_with_parent()
    # Move the protocol off fds 0/1 so user code cannot corrupt it: prints go to
    # stderr, reads of stdin see /dev/null.
    rfd = os.dup(0)
    wfd = os.dup(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    shm_in, shm_out = (int(a) for a in sys.argv[1:3]) if len(sys.argv) >= 3 else (-1, -1)
    if len(sys.argv) >= 5:
        import socket

        global _SOCK
        _SOCK = socket.socket(fileno=int(sys.argv[4]))
    if len(sys.argv) >= 4:
        # Prints of the calls go to the log memory file the pool reads after each call.
        global _LOG_FILE
        log_fd = int(sys.argv[3])
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        os.close(log_fd)
        _LOG_FILE = True
    else:
        os.dup2(2, 1)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    grow_pipe(wfd)
    try:
        serve(rfd, wfd, shm_in, shm_out)
    except BrokenPipeError:
        pass  # the pool went away; nobody is left to tell
    finally:
        sys.stdout.flush()


if __name__ == "__main__":
    main()
