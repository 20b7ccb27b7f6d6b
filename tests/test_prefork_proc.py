"""prefork.ForkedProc: a forked worker awaited as trio.Process is (several waiters, polls)."""

from __future__ import annotations

import os
import signal
import sys
import time

import pytest
import trio

from weft.actors.compute.prefork import ForkedProc

pytestmark = pytest.mark.skipif(not hasattr(os, "pidfd_open") or sys.platform != "linux",
                                reason="pidfds are Linux's")


def _child(code: int, after: float) -> int:
    pid = os.fork()
    if pid == 0:
        time.sleep(after)
        os._exit(code)
    return pid


async def test_several_waiters_and_a_poll_all_see_the_exit_code() -> None:
    proc = ForkedProc(_child(3, 0.2))
    got: list[int] = []

    async def wait() -> None:
        got.append(await proc.wait())

    with trio.fail_after(10):
        async with trio.open_nursery() as n:
            n.start_soon(wait)
            n.start_soon(wait)
            await trio.sleep(0.05)
            assert proc.returncode is None  # still running: a poll reaps nothing
    assert got == [3, 3] and proc.returncode == 3


async def test_a_killed_worker_reports_the_signal() -> None:
    proc = ForkedProc(_child(0, 30))
    proc.kill()
    with trio.fail_after(10):
        assert await proc.wait() == -signal.SIGKILL
    proc.kill()  # gone: nothing to signal, no error
    assert proc.returncode == -signal.SIGKILL
