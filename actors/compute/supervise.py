"""Supervising a running command in the task that started it (runner.py).

runner._supervise pumps the command's stdout in a task of its own beside the
one waiting for its exit: a nursery, two tasks, a cancel scope per read and a
trio stream per command, which measured ~0.11 ms of the node's ~1 ms of CPU
per `true` command. Here one task does both, waiting on one epoll descriptor
that holds the stdout pipe and the command's pidfd (an epoll descriptor is
itself readable when one of its own is). Same rules as runner._supervise:

- every stdout byte goes to the log and the capture file, and to `on_stdout`;
- the job's timeout is about the command's run, not about `on_stdout`;
- on a timeout, a cancel or a failing `on_stdout`, the process group is
  stopped before this returns or raises (SIGTERM, then SIGKILL after grace);
- when the command exits by itself its group's leftovers are stopped;
- once the group is gone, a read waits at most _DRAIN_LIMIT (a process that
  left the group with setsid() cannot hold the task), and what is printed
  until then still lands in the log, also when the task is cancelled.

Used for a Child with a pidfd (spawn.py on Linux); runner._supervise for the rest.
"""

from __future__ import annotations

import math
import os
import select
from collections.abc import Awaitable, Callable

import trio

from .spawn import Child

_CHUNK = 65536
_IN = select.EPOLLIN
TAIL_KEEP = 2048  # bytes kept of each of stdout's last two reads (runner.CommandResult.stdout_tail)


class _Out:
    """Where stdout goes: the log, the capture file, the sink while it takes it."""

    __slots__ = ("fd", "log_fd", "capture_fd", "sink", "error", "eof", "before_last", "last")

    def __init__(self, fd: int, log_fd: int, capture_fd: int,
                 sink: Callable[[bytes], Awaitable[None]] | None) -> None:
        self.fd = fd
        self.log_fd = log_fd
        self.capture_fd = capture_fd
        self.sink = sink
        self.error: Exception | None = None  # the sink's, raised once the group is stopped
        self.eof = False
        self.before_last = self.last = b""  # the last two reads (runner.CommandResult.stdout_tail)

    async def pump(self) -> None:
        """Take what the pipe has now; `eof` at its end. Returns early if the sink failed."""
        while not self.eof:
            try:
                chunk = os.read(self.fd, _CHUNK)
            except BlockingIOError:
                return
            if not chunk:
                self.eof = True
                return
            os.write(self.log_fd, chunk)
            self.before_last, self.last = self.last, chunk
            if self.capture_fd >= 0:  # (-1: run_command(capture=False))
                os.write(self.capture_fd, chunk)
            if self.sink is not None:
                try:
                    await self.sink(chunk)
                except trio.Cancelled:
                    # The task is being stopped: its outputs are not kept,
                    # its log still is.
                    self.sink = None
                    raise
                except Exception as e:
                    self.sink = None
                    self.error = e
                    return


async def supervise(
    timeout: float | None,
    proc: Child,
    log_fd: int,
    capture_fd: int,
    on_stdout: Callable[[bytes], Awaitable[None]] | None,
    grace: Callable[[], float],
    stop_group: Callable[[Child, float], Awaitable[int | None]],
    group_alive: Callable[[int], bool],
    drain_limit: float,
) -> tuple[int, int | None, bool, bytes]:
    """Run `proc` to its end: (its return code, the signal we stopped it with,
    timed out, the end of its stdout: its last two reads)."""
    fd = proc.stdout_fd
    os.set_blocking(fd, False)
    out = _Out(fd, log_fd, capture_fd, on_stdout)
    ep = select.epoll(2)
    epfd = ep.fileno()
    try:
        ep.register(fd, _IN)
        ep.register(proc.pidfd, _IN)
        timed_out = False
        deadline = trio.current_time() + timeout if timeout else math.inf
        try:
            while True:
                # Waiting first: a command just started has rarely printed yet.
                if deadline == math.inf:  # (no cancel scope per wait when there is no timeout)
                    await trio.lowlevel.wait_readable(epfd)
                else:
                    with trio.move_on_at(deadline) as scope:
                        await trio.lowlevel.wait_readable(epfd)
                    if scope.cancelled_caught:
                        timed_out = True
                        break
                await out.pump()
                if out.error is not None or proc.returncode is not None:
                    break
                if out.eof:
                    ep.unregister(fd)  # at its end the pipe is always readable
        except BaseException:
            # Cancelled (or the sink was): its outputs are not kept, its log is.
            out.sink = None
            with trio.CancelScope(shield=True):
                await _stop_and_drain(out, ep, proc, grace(), stop_group, drain_limit)
            raise
        if proc.returncode is None or group_alive(proc.pid):  # timed out, or left some behind
            killed_with = await _stop_and_drain(out, ep, proc, grace(), stop_group, drain_limit)
        else:  # the common case: it exited and took its group along
            killed_with = None
            await _drain(out, ep, proc, drain_limit)
    finally:
        trio.lowlevel.notify_closing(epfd)
        ep.close()
        os.close(fd)  # (trio never saw it: only the epoll above did)
        proc.close()
    if out.error is not None:
        raise out.error
    rc = proc.returncode
    assert rc is not None
    return rc, killed_with, timed_out, out.before_last[-TAIL_KEEP:] + out.last[-TAIL_KEEP:]


async def _stop_and_drain(out: _Out, ep: select.epoll, proc: Child, grace: float,
                          stop_group: Callable[[Child, float], Awaitable[int | None]], limit: float) -> int | None:
    """Stop the group while its output is still read: what it prints between
    SIGTERM and its end goes to the log as it comes (`weft logs --follow`
    shows it), and a command printing much then cannot block on a full pipe.
    Rare (a timeout, a cancel, leftovers), so a nursery is fine here."""
    _forget_pidfd(ep, proc)
    gone = False
    waits: set[trio.CancelScope] = set()

    async def pump() -> None:
        while True:
            try:
                await out.pump()
            except trio.Cancelled:
                pass  # in the sink: the rest still goes to the log (see _drain)
            if out.eof or out.error is not None:
                return
            # Shielded: what it prints until it is gone belongs in its log.
            with trio.CancelScope(shield=True) as scope:
                if gone:
                    scope.deadline = trio.current_time() + limit
                waits.add(scope)
                try:
                    await trio.lowlevel.wait_readable(ep.fileno())
                finally:
                    waits.discard(scope)
            if scope.cancelled_caught:
                return

    async with trio.open_nursery() as nursery:
        if not out.eof and out.error is None:
            nursery.start_soon(pump)
        with trio.CancelScope(shield=True):
            killed_with = await stop_group(proc, grace)
        gone = True
        for scope in waits:
            scope.deadline = trio.current_time() + limit
    return killed_with


def _forget_pidfd(ep: select.epoll, proc: Child) -> None:
    try:
        ep.unregister(proc.pidfd)  # exited (or about to be stopped): it would be readable for good
    except (OSError, ValueError):
        pass


async def _drain(out: _Out, ep: select.epoll, proc: Child, limit: float) -> None:
    """The group is gone: read the pipe to its end, each wait at most `limit`."""
    if out.eof or out.error is not None:
        return
    _forget_pidfd(ep, proc)
    while True:
        try:
            await out.pump()
        except trio.Cancelled:
            # Cancelled in the sink: the rest still goes to the log, and trio
            # delivers the cancel again at the caller's next checkpoint.
            pass
        if out.eof or out.error is not None:
            return
        with trio.CancelScope(shield=True) as scope:
            scope.deadline = trio.current_time() + limit
            await trio.lowlevel.wait_readable(ep.fileno())
        if scope.cancelled_caught:
            return
