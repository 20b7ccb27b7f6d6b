"""The op table of a secure cluster (protocol/access.py) against the ops the daemons serve.

Every op a daemon registers must be either in the table or deliberately
admin-only; otherwise a new op would silently be closed to the nodes that need it.
"""

from __future__ import annotations

from pathlib import Path

from weft.protocol.access import ACCESS, allowed
from weft.runtime.daemon import role_class
from weft.runtime.node import NodeConfig

# Ops only an admin may call (everything else a daemon serves is in ACCESS).
ADMIN_ONLY = {"coordinator": {"pause", "resume", "gc", "prune", "decommission", "drain", "undrain", "keys"},
              "compute": set(), "storage": set()}


def _ops(role: str, tmp_path: Path) -> set[str]:
    node = role_class(role)(NodeConfig(data_dir=tmp_path / role))
    try:
        return set(node.server.ops)
    finally:
        close = getattr(getattr(node, "journal", None), "close", None) or getattr(
            getattr(node, "store", None), "close", None)
        if close:
            close()


def test_every_served_op_is_classified(tmp_path: Path) -> None:
    for role in ("coordinator", "compute", "storage"):
        served = _ops(role, tmp_path)
        unclassified = served - set(ACCESS[role]) - ADMIN_ONLY[role]
        assert not unclassified, f"{role} serves ops nobody decided on: {sorted(unclassified)}"
        assert not (set(ACCESS[role]) - served), f"{role}: table names ops it does not serve"


def test_who_may_do_what() -> None:
    assert allowed("coordinator", "submit", "user:alice")
    assert not allowed("coordinator", "pause", "user:alice") and allowed("coordinator", "pause", "admin:root")
    assert allowed("coordinator", "hello", "node:storage-3") and not allowed("coordinator", "hello", "user:alice")
    assert allowed("compute", "start", "node:coordinator") and not allowed("compute", "start", "node:compute-2")
    assert not allowed("compute", "start", "user:alice")
    assert allowed("storage", "finish", "node:compute-2") and allowed("storage", "finish", "user:alice")  # content only
    assert not allowed("storage", "delete", "user:alice") and not allowed("storage", "create_many", "user:alice")
    assert allowed("storage", "read", "user:alice") and not allowed("storage", "delete", "node:compute-2")
    assert not allowed("coordinator", "some-new-op", "user:alice")  # closed until classified
