"""`weft node drain NODE` and `undrain`: a node taking no new work.

A drained compute node gets no new job (running ones finish; jobs pinned to
it wait, `host-down`). A drained storage node gets no new output and no
repair copy, and its objects count as missing there: repair copies each one
to other nodes until the replica count is met without it; `drain_left` in
`weft nodes` counts the objects still to copy, and at 0 it may leave.

Drains are journalled (meta `drained`) and last across restarts of the node
(drained again when met) and of the coordinator (`restore`).
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

from weft.bus.errors import BusError
from weft.bus.rpc import CallContext
from weft.protocol.enums import ErrorCode
from weft.protocol.jobs import NodeDrain

from .effects import Kick

DRAINED = "drained"  # journal meta: {"compute": [node ids], "storage": [node ids]}

if TYPE_CHECKING:
    from .nodeview import CoordinatorNode
    from .state import CoordinatorState


def register(node: CoordinatorNode) -> None:
    node.server.add("drain", partial(_op, node, True))
    node.server.add("undrain", partial(_op, node, False))


async def _op(node: CoordinatorNode, on: bool, body: Any, ctx: CallContext) -> dict[str, Any]:
    req = NodeDrain.from_wire(body, "drain" if on else "undrain")
    state = node.state
    view = set_drained(state, req.node, on)
    node._run([Kick()])  # a round soon: parked jobs are placed again
    node.journal.stage_meta(DRAINED, {"compute": sorted(state.planner.placing.drained - state.repair.drained),
                                      "storage": sorted(state.repair.drained)})
    await node.commits.durable()
    return view


def restore(state: CoordinatorState, saved: Any) -> None:
    """The drains journalled before a restart (applied as the nodes are met)."""
    if not isinstance(saved, dict):
        return
    compute = [n for n in saved.get("compute") or () if isinstance(n, str)]
    storage = [n for n in saved.get("storage") or () if isinstance(n, str)]
    state.planner.placing.drained.update(compute + storage)
    state.repair.drained.update(storage)


def set_drained(state: CoordinatorState, node_id: str, on: bool) -> dict[str, Any]:
    """Drain (or undrain) a node; its view. BusError `missing` if unknown."""
    drains = state.planner.placing.drained
    if node_id in state.computes:
        ref = state.computes[node_id]
        ref.drained = on
        (drains.add if on else drains.discard)(node_id)
        return ref.view()
    if node_id in state.storages:
        sref = state.storages[node_id]
        sref.drained = on
        (drains.add if on else drains.discard)(node_id)
        repair = state.repair
        (repair.drained.add if on else repair.drained.discard)(node_id)
        for obj in state.graph.objects.values():
            if node_id in obj.locs:
                repair.note(obj)
        return {**sref.view(), **repair.node_view(node_id)}
    raise BusError(f"no compute or storage node {node_id!r} (weft nodes lists them)", code=ErrorCode.MISSING)
