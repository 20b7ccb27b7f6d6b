"""Shared helpers for the bus tests: real sockets on loopback, ephemeral ports."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
import trio

from weft.bus.rpc import Server

LOCAL = "tcp://127.0.0.1:0"

Serve = Callable[..., Awaitable[str]]


@pytest.fixture
def serve(nursery: trio.Nursery) -> Serve:
    """`await serve(server, scope=None)` -> the bound endpoint.

    The server runs in the test's nursery (cancelled when the test ends);
    pass a `trio.CancelScope` to be able to stop just this server.
    """

    async def start(server: Server, *, scope: trio.CancelScope | None = None) -> str:
        scope = scope or trio.CancelScope()

        async def run(task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
            with scope:
                await server.serve(LOCAL, task_status=task_status)

        return await nursery.start(run)

    return start
