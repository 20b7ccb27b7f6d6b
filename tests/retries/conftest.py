"""Retries, exit actions, pending timeouts and failure codes on a real local
cluster, through the `weft` command as a user runs it.

The cluster and the `weft` runner are those of tests/cluster (imported here
so pytest finds them as fixtures of this folder too). Tests sharing the
module's cluster name their jobs (`--name`) uniquely.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

from cluster.conftest import REPO, Weft, cluster, make_cluster, wait_for, weft  # noqa: F401


def status(w: Weft, job: str, *more: str) -> dict[str, Any]:
    p = w("status", job, *more, "--json")
    assert p.returncode == 0, f"exit {p.returncode}: {p.stderr.strip()}"
    return json.loads(p.stdout)


def finished(w: Weft, job: str, timeout: float = 30.0) -> dict[str, Any]:
    """`job`'s status once `weft wait` says it ended."""
    p = w("wait", job, "--timeout", str(timeout), timeout=timeout + 30)
    assert p.returncode in (0, 1), f"exit {p.returncode}: {p.stdout} {p.stderr.strip()}"
    return status(w, job)


def submitted(p: subprocess.CompletedProcess[str]) -> str:
    assert p.returncode == 0, f"exit {p.returncode}: {p.stderr.strip()}"
    return p.stdout.strip()
