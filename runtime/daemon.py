"""One daemon from setting values: the path `weft <role>` and the local-cluster launcher share.

Both hand over setting values by name (weft.runtime.settings); this checks
them, makes the data directory usable and locks it, and only then builds the
role, whose constructor already reads the directory (a journal, a task log).
"""

from __future__ import annotations

from typing import Any

from . import datadir
from .settings import resolve


def role_class(role: str) -> type:
    # Imported on demand: a daemon loads its own role only.
    if role == "coordinator":
        from weft.actors.coordinator.node import CoordinatorNode as cls
    elif role == "storage":
        from weft.actors.storage.node import StorageNode as cls
    else:
        from weft.actors.compute.node import ComputeNode as cls
    return cls


def build(role: str, values: dict[str, Any]) -> Any:
    """The role's node, its data directory locked; SettingError (one line) if it cannot be."""
    from .node import NodeConfig

    node, options = resolve(role, values)
    d = datadir.prepare(node.get("data_dir") or datadir.default_data_dir(role))
    datadir.lock(d)
    node["data_dir"] = d
    return role_class(role)(NodeConfig(**node), **options)
