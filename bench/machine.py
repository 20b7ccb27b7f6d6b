"""What a bench report says about the machine it ran on; a leaf, so each
bench entry point (runner, dispatch, scaling) can use it."""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import sys
from collections.abc import Sequence
from importlib import metadata
from typing import Any


def loadavg() -> float | None:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def machine(systems: Sequence[str], load_before: float | None = None) -> dict[str, Any]:
    packages = {}
    names = ["weft", "pyzmq", "trio", "msgpack"]
    if "dask" in systems:
        names += ["dask", "distributed"]
    if "ray" in systems:
        names += ["ray"]
    for name in names:
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            packages[name] = None
    return {
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": sys.implementation.name,
        "platform": platform.platform(),
        "packages": packages,
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        # Other load on the machine skews every number: the 1-minute load
        # average when the bench started and when it ended.
        "loadavg": {"before": load_before, "after": loadavg()},
    }


def write_report(path: str, **parts: Any) -> None:
    """`path` as JSON: the machine (weft alone) and `parts`."""
    with open(path, "w") as f:
        json.dump({"machine": machine(["weft"]), **parts}, f, indent=2)
