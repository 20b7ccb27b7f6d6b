"""Who may call which op, per daemon role, on a secure cluster (docs/security.md).

A connection's key is on the allow-list with a role and a name; the ZAP
handler tags it `ROLE:NAME` (weft.bus.curve) and the Server asks `allowed`
before it runs an op. Callers fall in four classes: `admin` (everything),
`user` (submit, and read and steer its own jobs: the coordinator checks
the owner, actors/coordinator/owners.py; upload content objects: storage
checks their hash), `node` (compute and storage daemons: register, and
read and write objects), and `coordinator`, the node
key named `coordinator`: only it may start, cancel or delete tasks, fence
with epochs, or delete objects. A fifth, `job`, is a running job's credential
(actors/coordinator/credentials.py): a few coordinator ops, on its own root's
jobs only (owners.may_touch). An op not listed here is for admins only, so
a new op is closed until someone decides who may call it.

Without security nobody is checked (the cluster trusts its network).
"""

from __future__ import annotations

from typing import Any

from .fields import bad, body_map, str_field
from .record import record

ADMIN, USER, NODE, COORDINATOR, JOB = "admin", "user", "node", "coordinator", "job"

_NODES = frozenset({NODE, COORDINATOR})
_ALL = frozenset({USER, NODE, COORDINATOR})
_COORD = frozenset({COORDINATOR})
_USERS = frozenset({USER})
_USERS_JOBS = frozenset({USER, JOB})

# Every node serves these (weft.runtime.node): liveness and its event queue;
# `keys` changes its allow-list (the coordinator passes an admin's on).
_COMMON = {"ping": _ALL, "info": _ALL, "poll": _ALL, "keys": _COORD}

ACCESS: dict[str, dict[str, frozenset[str]]] = {
    "coordinator": {
        **_COMMON,
        "hello": _NODES,
        "ping": _ALL | {JOB}, "info": _ALL | {JOB},
        **{op: _USERS for op in ("nodes", "stats", "jobs", "groups", "group", "delete", "recurring")},
        # A job's credential: children under its root, and reading and
        # cancelling its root's jobs (owners.py scopes each to the root).
        **{op: _USERS_JOBS for op in ("submit", "status", "wait", "locate", "logs", "progress", "cancel", "tree")},
        # pause, resume, gc, prune, decommission, drain, undrain, keys, and anything new: admins.
    },
    "compute": {
        **_COMMON,
        **{op: _COORD for op in (
            "start", "start_many", "result", "list", "delete", "cancel", "probe", "log", "progress", "withdraw",
        )},
        # Values it made, served from its memory to the compute node that consumes them (valuecache.py).
        "read": _NODES,
    },
    "storage": {
        **_COMMON,
        # Compute nodes write outputs; storage nodes read each other to repair;
        # users upload content objects only, checked against their hash
        # (actors/storage/content.py: upload_digest).
        **{op: _ALL for op in ("create", "populate", "finish", "put")},
        "read": _ALL,
        "stat": _ALL,
        **{op: _COORD for op in ("create_many", "delegate", "delete", "list", "usage", "replicate")},
    },
}


def caller_class(user_id: str) -> str:
    """`admin`, `user`, `node` or `coordinator` for a ZAP User-Id `ROLE:NAME`."""
    role, _, name = user_id.partition(":")
    return COORDINATOR if role == NODE and name == COORDINATOR else role


def allowed(daemon: str, op: str, user_id: str) -> bool:
    cls = caller_class(user_id)
    return cls == ADMIN or cls in ACCESS.get(daemon, {}).get(op, ())


@record
class KeyChange:
    """`keys`: admit (`allow`) a public key with its role and name, or drop (`revoke`) every key of a name."""

    action: str
    name: str
    public: str | None = None
    role: str | None = None

    def to_wire(self) -> dict[str, Any]:
        d: dict[str, Any] = {"action": self.action, "name": self.name}
        if self.public is not None:
            d["public"], d["role"] = self.public, self.role
        return d

    @classmethod
    def from_wire(cls, body: Any) -> KeyChange:
        op = "keys"
        b = body_map(op, body)
        action = str_field(op, b, "action")
        if action not in ("allow", "revoke"):
            bad(op, "action", f"must be allow or revoke, got {action!r}")
        name = str_field(op, b, "name")
        if action == "revoke":
            return cls(action, name)
        role = str_field(op, b, "role")
        if role not in (ADMIN, USER, NODE):
            bad(op, "role", f"must be admin, user or node, got {role!r}")
        return cls(action, name, str_field(op, b, "public"), role)
