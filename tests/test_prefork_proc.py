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


def test_a_forked_child_gets_exactly_the_workers_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """_clean_process leaves the environment `env` says, as an exec'd worker would have it: names
    the node has and `env` lacks are gone, changed values changed, new ones there; a command the
    worker starts (the C-level environment) sees the same."""
    import json
    import subprocess

    from weft.actors.compute.prefork import _clean_process

    monkeypatch.setenv("WEFT_TEST_NODE_ONLY", "node")
    monkeypatch.setenv("WEFT_TEST_CHANGED", "old")
    env = {k: v for k, v in os.environ.items() if k != "WEFT_TEST_NODE_ONLY"}
    env["WEFT_TEST_CHANGED"] = "new"
    env["WEFT_TEST_ADDED"] = "added"
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            _clean_process({0, 1, 2, w}, env)
            seen = subprocess.run(["env", "-0"], capture_output=True, check=True).stdout
            c_env = dict(item.split("=", 1) for item in seen.decode().split("\0") if "=" in item)
            os.write(w, json.dumps([dict(os.environ), c_env]).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        py_env, c_env = json.loads(f.read())
    os.waitpid(pid, 0)
    assert py_env == env
    # (Names set below Python, unknown to os.environ, stay in both ways: not compared.)
    assert {k: c_env.get(k) for k in [*env, "WEFT_TEST_NODE_ONLY"]} == {**env, "WEFT_TEST_NODE_ONLY": None}
