"""What the peer systems' sides share (dask_peer.py, ray_peer.py): the
install hint, whether a peer is installed, and the calls the runner makes."""

from __future__ import annotations

import importlib
import time

INSTALL_HINT = "pip install 'weft[bench]'"


def installed(*modules: str) -> bool:
    """Whether every one of `modules` imports (a peer is optional)."""
    try:
        for name in modules:
            importlib.import_module(name)
    except ImportError:
        return False
    return True


class PeerSide:
    """A workload `w` runs as the method `_w` (dashes as underscores), with a deadline."""

    def open(self, timeout: float = 60.0) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def reset(self) -> None:
        self.close()
        self.open()

    def run(self, workload: str, params: dict[str, int], tag: str, timeout: float) -> float:
        deadline = time.monotonic() + timeout
        return getattr(self, f"_{workload.replace('-', '_')}")(tag=tag, deadline=deadline, **params)
