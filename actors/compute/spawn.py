"""Starting a command's process: the one place where a command's argv,
environment and child settings become a process (runner.py supervises it).

The fast path calls CPython's `_posixsubprocess.fork_exec` itself, with
the arguments subprocess.Popen passes it (the same on 3.11, 3.12 and
3.13), and the node's environment encoded once rather than per command:
Popen's Python around that call (fsencoding every variable, its pipes
and bookkeeping) was ~0.13 ms of the compute node's ~1.1 ms of CPU per
`true` command. As with Popen, the child is vforked (no page tables
copied from a big node), starts a session of its own (setsid), has
/dev/null as stdin (opened once here), our pipe as stdout and the task's
log as stderr, and every other descriptor closed. On other Pythons, or
with child settings only Popen applies, Popen does it; without pidfds,
trio's open_process.

Isolation (run-as user, mount namespace) is applied here, in `Launch`:
a wrapper goes in `prefix` (in front of the argv; PATH is looked up for
its first word), and child settings only Popen knows (`user`, `group`,
`extra_groups`, `umask`, `preexec_fn`, ...) in `popen_kw`, which takes
the Popen path.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import field
from typing import Any

import trio

from weft.protocol.record import record

# How often wait() polls a child when the kernel gives no pidfd.
_POLL = 0.02

try:  # CPython's own; its signature is checked by version below
    from _posixsubprocess import fork_exec as _fork_exec
except ImportError:  # pragma: no cover - another implementation
    _fork_exec = None

_HAVE_PIDFD = hasattr(os, "pidfd_open") and hasattr(os, "pipe2")
FAST = (_fork_exec is not None and _HAVE_PIDFD and sys.implementation.name == "cpython"
        and sys.version_info[:2] in ((3, 11), (3, 12), (3, 13)))


@record
class Launch:
    """What to start: `argv` in `cwd`, with the node's environment (less
    inherited WEFT_INPUT_*) plus `env` over it, stderr to the fd `stderr`."""

    argv: list[str]
    cwd: str
    env: dict[str, str | bytes]
    stderr: int
    prefix: list[str] = field(default_factory=list)  # a wrapper the command runs under
    popen_kw: dict[str, Any] = field(default_factory=dict)  # child settings only Popen applies


class Reaped:
    """A child process of ours whose exit status we collect with waitpid (or
    its Popen): `returncode` as trio.Process and Popen give it."""

    pid: int
    _rc: int | None
    _popen: subprocess.Popen | None = None

    @property
    def returncode(self) -> int | None:
        if self._rc is None:
            self._reap(os.WNOHANG)
        return self._rc

    def _reap(self, flags: int) -> None:
        if self._popen is not None:
            self._rc = self._popen.poll() if flags else self._popen.wait()
            return
        try:
            pid, status = os.waitpid(self.pid, flags)
        except ChildProcessError:  # reaped by someone else: its status is gone
            pid, status = self.pid, 255 << 8
        if pid:
            self._rc = -os.WSTOPSIG(status) if os.WIFSTOPPED(status) else os.waitstatus_to_exitcode(status)
            self._exited()

    def _exited(self) -> None:
        """Called once the status is known (what the process held can go)."""


class Child(Reaped):
    """A command's process, its exit awaited on a pidfd (or polled)."""

    def __init__(self, pid: int, stdout: int, pidfd: int, popen: subprocess.Popen | None = None) -> None:
        self.pid = pid
        self.stdout_fd = stdout  # the read end of its stdout pipe (supervise.py reads it raw)
        self._stdout: trio.lowlevel.FdStream | None = None
        self._pidfd = pidfd
        self._popen = popen
        self._rc: int | None = None
        self._awaited = False  # trio waited on the pidfd: tell it before closing

    @property
    def stdout(self) -> trio.lowlevel.FdStream:
        """The pipe as a trio stream, made when first asked (it owns the fd then)."""
        if self._stdout is None:
            self._stdout = trio.lowlevel.FdStream(self.stdout_fd)
        return self._stdout

    @property
    def pidfd(self) -> int:
        return self._pidfd

    async def wait(self) -> int:
        if self._pidfd < 0:
            while self.returncode is None:  # noqa: ASYNC110
                await trio.sleep(_POLL)
        elif self.returncode is None:
            self._awaited = True
            await trio.lowlevel.wait_readable(self._pidfd)
        if self._rc is None:
            self._reap(0)  # the pidfd said it exited: this does not block
        assert self._rc is not None
        return self._rc

    def close(self) -> None:
        if self._pidfd >= 0:
            if self._awaited:
                trio.lowlevel.notify_closing(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = -1


async def spawn(launch: Launch) -> Child | trio.Process:
    """Start the command; OSError as Popen raises it (ENOENT, EACCES, E2BIG, ...)."""
    argv = launch.prefix + launch.argv if launch.prefix else launch.argv
    if not _HAVE_PIDFD:
        return await trio.lowlevel.open_process(
            argv, cwd=launch.cwd, env={**inherited_env(), **launch.env}, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=launch.stderr, start_new_session=True, **launch.popen_kw,
        )
    out_r, out_w = os.pipe2(os.O_CLOEXEC)
    try:
        if FAST and not launch.popen_kw:
            pid = _start(argv, launch, out_w)
            popen = None
        else:
            popen = _popen(argv, launch, out_w)
            pid = popen.pid
    except BaseException:
        os.close(out_r)
        raise
    finally:
        os.close(out_w)
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        pidfd = -1  # a kernel that refuses pidfds after all: wait() polls
    return Child(pid, out_r, pidfd, popen)


# -- the environment ---------------------------------------------------------------------

# The node's own environment without inherited WEFT_INPUT_* variables, the
# raw environment it was made from, and it encoded for execve (name ->
# b"NAME=value"). Rebuilt only when the environment changed, which one
# C-level dict comparison tells.
_base: tuple[dict[bytes, bytes], dict[str, str], dict[str, bytes]] | None = None


def _base_env() -> tuple[dict[str, str], dict[str, bytes]]:
    global _base
    raw = getattr(os.environ, "_data", None)
    if isinstance(raw, dict) and _base is not None and _base[0] == raw:
        return _base[1], _base[2]
    env = {k: v for k, v in os.environ.items() if not k.startswith("WEFT_INPUT_")}
    encoded = {k: os.fsencode(k) + b"=" + os.fsencode(v) for k, v in env.items()}
    if isinstance(raw, dict):  # CPython's os.environ: the shortcut works
        _base = (dict(raw), env, encoded)
    return env, encoded


def inherited_env() -> dict[str, str]:
    """The node's environment as a command inherits it (no WEFT_INPUT_*)."""
    return _base_env()[0]


# os.fsencode's own encoding, called directly (C, not Python, per string).
_FS = (sys.getfilesystemencoding(), sys.getfilesystemencodeerrors())
# A job's variable names repeat (WEFT_INPUTS, ...): b"NAME=" of each.
_heads: dict[str, bytes] = {}


def _env_list(extra: dict[str, str | bytes]) -> list[bytes]:
    entries = dict(_base_env()[1])
    enc, err = _FS
    for k, v in extra.items():  # over the node's: a name appears once
        head = _heads.get(k)
        if head is None:
            kb = k.encode(enc, err)
            if b"=" in kb:
                raise ValueError("illegal environment variable name")
            if len(_heads) > 4096:
                _heads.clear()
            head = _heads[k] = kb + b"="
        entries[k] = head + (v if type(v) is bytes else v.encode(enc, err))
    return list(entries.values())


# -- the executable ----------------------------------------------------------------------

# argv[0] -> where PATH found it, for a few seconds (like a shell's `hash`).
# execve in each PATH directory in turn otherwise, for every command:
# measured ~0.1 ms of the node's CPU and ~0.25 ms of wall time a spawn here.
_EXE_TTL = 5.0
_exe_cache: dict[tuple[str, str], tuple[str, float]] = {}


def _path(launch: Launch) -> str | None:
    path = launch.env.get("PATH")
    if path is None:
        path = inherited_env().get("PATH")
    return path if isinstance(path, str) else None


def _executable(name: str, path: str | None) -> str | None:
    """The file PATH gives for `name`, or None to let the spawn look it up itself."""
    if "/" in name or path is None:
        return None
    now = time.monotonic()
    hit = _exe_cache.get((path, name))
    if hit is not None and now < hit[1]:
        return hit[0]  # (only absolute PATHs are cached: checked below)
    if any(not d.startswith("/") for d in path.split(os.pathsep)):
        return None  # relative entries are relative to the command's own cwd
    exe = shutil.which(name, path=path)
    if exe is not None:
        if len(_exe_cache) > 256:
            _exe_cache.clear()
        _exe_cache[(path, name)] = (exe, now + _EXE_TTL)
    return exe


def _retrying(argv: list[str], launch: Launch, start: Any) -> Any:
    """`start(exe)` with the cached PATH lookup; again with a fresh lookup
    if the cached file is gone or changed since."""
    path = _path(launch)
    exe = _executable(argv[0], path)
    try:
        return start(exe, path)
    except (FileNotFoundError, PermissionError):
        if exe is None:
            raise
        _exe_cache.pop((path, argv[0]), None)
        return start(None, path)


# -- the two ways to start it ------------------------------------------------------------

def _popen(argv: list[str], launch: Launch, out_w: int) -> subprocess.Popen:
    def start(exe: str | None, _path: str | None) -> subprocess.Popen:
        return subprocess.Popen(
            argv, executable=exe, cwd=launch.cwd, env={**inherited_env(), **launch.env},
            stdin=subprocess.DEVNULL, stdout=out_w, stderr=launch.stderr, start_new_session=True,
            **launch.popen_kw,
        )

    return _retrying(argv, launch, start)


_devnull = -1


def _stdin() -> int:
    global _devnull
    if _devnull < 0:
        _devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    return _devnull


def _start(argv: list[str], launch: Launch, out_w: int) -> int:
    enc, err = _FS
    args = [a.encode(enc, err) if type(a) is str else os.fsencode(a) for a in argv]
    env = _env_list(launch.env)
    cwd = launch.cwd.encode(enc, err)
    stdin = _stdin()

    def start(exe: str | None, path: str | None) -> int:
        if exe is not None or b"/" in args[0]:
            candidates: tuple[bytes, ...] = (os.fsencode(exe) if exe is not None else args[0],)
        else:
            dirs = (path or os.defpath).split(os.pathsep)
            candidates = tuple(os.path.join(os.fsencode(d), args[0]) for d in dirs)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        try:
            try:
                pid = _fork_exec(
                    args, candidates, True, (err_w,), cwd, env,
                    stdin, -1, -1, out_w, -1, launch.stderr,
                    err_r, err_w, True, True, -1, None, None, None, -1, None, True,
                )
            finally:
                os.close(err_w)
            # Closed by the exec (close-on-exec), or holding why it failed.
            report = os.read(err_r, 50000)
        finally:
            os.close(err_r)
        if report:
            _raise_failed(pid, report, argv[0], launch.cwd)
        return pid

    return _retrying(argv, launch, start)


def _raise_failed(pid: int, report: bytes, exe: str, cwd: str) -> None:
    """The child could not exec: reap it and raise what it reported, as Popen does."""
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass
    name, _, rest = report.partition(b":")
    hex_errno, _, msg = rest.partition(b":")
    try:
        num = int(hex_errno, 16)
    except ValueError:
        num = 0
    if name == b"OSError" and num:
        # "noexec": it failed before exec, in chdir(cwd).
        raise OSError(num, os.strerror(num), cwd if msg == b"noexec" else exe)
    raise subprocess.SubprocessError(f"cannot start {exe!r}: {report.decode(errors='replace')}")
