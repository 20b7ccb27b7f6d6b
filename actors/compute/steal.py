"""`withdraw`: the coordinator takes queued tasks back from this node so an
idle node can run them (work stealing; the policy is the coordinator's,
actors/coordinator/steal.py).

Only tasks still waiting in the node's line for CPUs and memory go: they
have read nothing and started nothing, so each ends failed-soft (code
`withdrawn`) with no start time, which the coordinator takes for "not an
attempt" and queues again under a new fencing token. Tasks pinned to a
node or host, and workorders, stay.
"""

from __future__ import annotations

from typing import Any, Protocol

from weft.bus.rpc import CallContext
from weft.protocol.tasks import Withdraw


class NodeView(Protocol):
    """What withdrawing uses of the compute node (node.py, which imports this module)."""

    resources: Any  # compute/resources.Resources

    def fence(self, body: Any) -> None: ...

WITHDRAWN = "withdrawn"


def _movable(task: Any) -> bool:
    spec = task.spec
    return spec.node is None and spec.host is None and spec.job_class == "batch" and not task.after


def withdraw(node: NodeView, body: Any, ctx: CallContext) -> dict[str, Any]:
    node.fence(body)
    req = Withdraw.from_wire(body)
    tasks = node.resources.withdraw(req.count, _movable)
    return {"jobs": [t.job for t in tasks]}
