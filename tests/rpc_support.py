"""Helpers shared by the bus RPC tests (test_rpc.py, test_rpc_frames.py): an
echo server, a handler error with a code of its own, a raw DEALER socket for
sending frames no Peer would, and the type of conftest.py's `serve` fixture."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import trio
import trio.lowlevel
import zmq

from weft.bus.rpc import CallContext, Server
from weft.bus.zsock import ZSocket, context

Serve = Callable[..., Any]  # the `serve` fixture from conftest.py


def echo_server(**kw: Any) -> Server:
    server = Server("srv", **kw)
    server.add("echo", lambda body, ctx: body)

    async def aecho(body: Any, ctx: CallContext) -> Any:
        await trio.lowlevel.checkpoint()
        return body

    server.add("aecho", aecho)
    return server


class Teapot(Exception):
    code = "teapot"


def raw_dealer(endpoint: str) -> ZSocket:
    zs = ZSocket(context().socket(zmq.DEALER), linger_ms=0)
    zs.sock.connect(endpoint)
    return zs

