"""`keys` on the coordinator: an admin's allow-list change, applied here and passed on to every node.

Each daemon checks connections against its own allow-list file (weft.bus.curve),
so admitting or revoking a key is one call per node. The coordinator makes
them as the cluster's coordinator (protocol.access lets only it, and admins,
call `keys` on a node) and answers which nodes took the change and which did
not (a node that is down keeps its old list until it is told again).
"""

from __future__ import annotations

import logging
from functools import partial
from typing import TYPE_CHECKING, Any

import trio

from weft.bus.errors import BusError
from weft.bus.rpc import CallContext
from weft.protocol.access import KeyChange

if TYPE_CHECKING:
    from .nodeview import CoordinatorNode

log = logging.getLogger("weft.coordinator")


def register(node: CoordinatorNode) -> None:
    node.server.add("keys", partial(keys, node))


def revoke_nodes(node: CoordinatorNode, name: str) -> None:
    """The nodes whose hello came with the revoked key get no more work.

    The coordinator calls them with its own key, which they still admit: without
    this they would go on taking tasks and holding outputs. Each is forgotten as
    if lost (its tasks run again elsewhere, its objects count as lost), kept out
    (a beacon does not bring it back), and listed by `weft nodes` as revoked.
    """
    s = node.state
    why = f"its key {name!r} was revoked"
    for ref in [*s.computes.values(), *s.storages.values()]:
        key = f"{ref.role}/{ref.node}"
        if node.node_keys.get(key) != name:
            continue
        log.warning("%s %s: %s; it gets no more work", ref.role, ref.node, why)
        node.revoked[key] = {**ref.view(), "ready": False, "revoked": why, "key": name}
        node.liveness.unwatch(key)
        node._run(s.node_lost(ref.role, ref.node))


async def keys(node: CoordinatorNode, body: Any, ctx: CallContext) -> dict[str, Any]:
    change = KeyChange.from_wire(body)
    changed = node.change_keys(change)
    if change.action == "revoke":
        revoke_nodes(node, change.name)
    else:  # admitted (again): its nodes may say hello and be met as before
        for key in [k for k, v in node.revoked.items() if v["key"] == change.name]:
            del node.revoked[key]
    s = node.state
    targets = {ref.node: ref.endpoint for ref in (*s.computes.values(), *s.storages.values())}
    applied: list[str] = [node.node_id]
    failed: dict[str, str] = {}

    async def tell(name: str, endpoint: str) -> None:
        try:
            await node.peers.get(endpoint).call("keys", change.to_wire(), timeout=5.0)
            applied.append(name)
        except BusError as e:
            failed[name] = e.message

    async with trio.open_nursery() as nursery:
        for name, endpoint in targets.items():
            nursery.start_soon(tell, name, endpoint)
    return {"changed": changed, "applied": sorted(applied), "failed": failed}
