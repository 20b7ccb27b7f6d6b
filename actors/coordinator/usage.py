"""Storage nodes' disk use, asked now and then.

A storage node says what it holds (objects, their bytes) and its disk's free
space in its `usage` answer. The coordinator asks at the node's inventory
and then every USAGE_EVERY heartbeat intervals (0.67 s by default: about
3 s, one small call a node, off every hot path), so `weft nodes`, `weft top`,
the dashboard and placement's tie-break see a disk fill as it fills.
Created events keep the object count between asks (they ride with the next
finish, so alone they lag).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import trio

from weft.bus.errors import BusError

from .copies import _NET_ERRORS
from .nodes import StorageRef

if TYPE_CHECKING:
    from .nodeview import CoordinatorNode

log = logging.getLogger("weft.coordinator")

USAGE_EVERY = 4  # heartbeat intervals


async def ask(node: CoordinatorNode, ref: StorageRef) -> None:
    """Take `ref`'s `usage` answer into its view; no answer, no change."""
    try:
        usage = await node.peers.get(ref.endpoint).call("usage", {}, timeout=USAGE_EVERY * node.liveness.interval)
    except (*_NET_ERRORS, BusError) as e:  # housekeeping: asked again next time
        log.debug("usage of %s: %s", ref.node, e)
        return
    if type(usage) is not dict:
        return
    free, objects, used = usage.get("free"), usage.get("objects"), usage.get("bytes")
    if type(free) is int:
        ref.free_bytes = free
    if type(objects) is int:
        ref.objects = objects
    if type(used) is int:
        ref.used_bytes = used


async def refresh_loop(node: CoordinatorNode) -> None:
    """Ask every ready storage node, all at once, every USAGE_EVERY heartbeat intervals."""
    while True:
        await trio.sleep(USAGE_EVERY * node.liveness.interval)
        async with trio.open_nursery() as asks:
            for ref in list(node.state.storages.values()):
                if ref.ready:
                    asks.start_soon(ask, node, ref)
