"""Waiting on a condition, shared by the tests (one copy instead of nine).

`wait_for` polls from synchronous test code (another process's state: a
cluster, a playbook's daemon); `await_for` polls from trio tests, and its
predicate may be a coroutine function. Both are bounded in time, return the
predicate's first truthy value, and fail with what was awaited and the last
value seen, so a timeout says what never happened.

Prefer these to a fixed sleep whenever there is a condition to wait on: a
fixed sleep is either too short on a loaded machine or too long everywhere.
"""

from __future__ import annotations

import inspect
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import trio


def wait_for(predicate: Callable[[], Any], timeout: float, what: str = "condition",
             interval: float = 0.05) -> Any:
    """Poll `predicate()` until truthy (returning it); fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g}s (last: {value!r})")
        time.sleep(interval)


async def await_for(predicate: Callable[[], Any], timeout: float = 5.0, what: str = "condition",
                    interval: float = 0.01) -> Any:
    """Await `predicate()` (sync, or returning an awaitable) until truthy; fail after `timeout`."""
    deadline = trio.current_time() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if trio.current_time() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g}s (last: {value!r})")
        await trio.sleep(interval)


def free_endpoint() -> str:
    """A tcp endpoint on 127.0.0.1 with a port nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


class SilentStorage:
    """A 'storage node' on `endpoint` that takes every call and answers none
    (a paused process: its connections stay up); `calls` counts them.
    `vanish()` closes its socket, dropping every connection, as a process
    that died would."""

    def __init__(self, endpoint: str) -> None:
        import zmq

        from weft.bus.zsock import ZSocket, context

        self.endpoint = endpoint
        self.calls = 0
        self.zs = ZSocket(context().socket(zmq.ROUTER), linger_ms=0)
        self.zs.sock.bind(endpoint)

    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        try:
            while True:
                await self.zs.recv()
                self.calls += 1
        except trio.ClosedResourceError:
            return
        finally:
            self.zs.close()

    def vanish(self) -> None:
        self.zs.close()


class Tap:
    """A TCP relay on loopback that keeps every byte it forwards, both ways."""

    def __init__(self, target: str) -> None:
        host, port = target.removeprefix("tcp://").rsplit(":", 1)
        self.target = (host, int(port))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.endpoint = f"tcp://127.0.0.1:{self.listener.getsockname()[1]}"
        self.seen = bytearray()
        self._lock = threading.Lock()
        self._socks: list[socket.socket] = [self.listener]
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()

    def _accept(self) -> None:
        try:
            while True:
                conn, _ = self.listener.accept()
                up = socket.create_connection(self.target)
                self._socks += [conn, up]
                for a, b in ((conn, up), (up, conn)):
                    t = threading.Thread(target=self._pipe, args=(a, b), daemon=True)
                    t.start()
        except OSError:
            return

    def _pipe(self, a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                with self._lock:
                    self.seen += data
                b.sendall(data)
        except OSError:
            pass

    def close(self) -> None:
        for s in self._socks:
            try:
                s.close()
            except OSError:
                pass
