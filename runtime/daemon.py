"""One daemon from setting values: the path `weft <role>` and the local-cluster launcher share.

Both hand over setting values by name (weft.runtime.settings); this checks
them, makes the data directory usable and locks it, and only then builds the
role, whose constructor already reads the directory (a journal, a task log).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import datadir
from .settings import SettingError, resolve


def role_class(role: str) -> type:
    # Imported on demand: a daemon loads its own role only.
    if role == "coordinator":
        from weft.actors.coordinator.node import CoordinatorNode as cls
    elif role == "storage":
        from weft.actors.storage.node import StorageNode as cls
    else:
        from weft.actors.compute.node import ComputeNode as cls
    return cls


def security(mode: str, keys_dir: Path | None, key_file: Path | None) -> Any:
    """The daemon's CurveZMQ setup, or None in the clear; SettingError naming what is missing."""
    if mode != "curve":
        return None
    if keys_dir is None:
        raise SettingError("--security curve needs --keys DIR (cluster.secret, allow, node.secret)")
    from weft.bus.curve import KeyFileError, load_daemon

    try:
        return load_daemon(Path(keys_dir), Path(key_file) if key_file else None)
    except KeyFileError as e:
        raise SettingError(str(e)) from None


def build(role: str, values: dict[str, Any]) -> Any:
    """The role's node, its data directory locked; SettingError (one line) if it cannot be."""
    from .node import NodeConfig

    node, options = resolve(role, values)
    node["security"] = security(node.get("security_mode", "none"), node.get("keys_dir"), node.get("key_file"))
    d = datadir.prepare(node.get("data_dir") or datadir.default_data_dir(role))
    datadir.lock(d)
    node["data_dir"] = d
    return role_class(role)(NodeConfig(**node), **options)
