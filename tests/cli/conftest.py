"""The `weft` command as a user meets it, against a real local cluster.

The cluster and the `weft` runner are those of tests/cluster (imported here so
pytest finds them as fixtures of this folder too).
"""

from __future__ import annotations

import re
import subprocess

from cluster.conftest import CLI_TIMEOUT, REPO, Weft, cluster, wait_for, weft  # noqa: F401


def error_line(p: subprocess.CompletedProcess[str], code: int) -> str:
    """The one line a failing command printed on stderr (without `weft: error: `)."""
    assert p.returncode == code, f"exit {p.returncode}, wanted {code}: {p.stdout!r} {p.stderr!r}"
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith("weft: error: "), lines[0]
    return lines[0].removeprefix("weft: error: ")


def ok(p: subprocess.CompletedProcess[str]) -> str:
    assert p.returncode == 0, f"exit {p.returncode}: {p.stderr.strip()}"
    return p.stdout


def job_id(p: subprocess.CompletedProcess[str]) -> str:
    out = ok(p).strip()
    assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", out), out
    return out
