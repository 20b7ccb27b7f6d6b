"""Real local clusters for the names, delete and gc tests: the fixtures and
the `weft` runner of tests/cluster (imported so pytest finds them here)."""

from __future__ import annotations

import subprocess

from cluster.conftest import CLI_TIMEOUT, Weft, cluster, make_cluster, wait_for, weft  # noqa: F401


def ok(p: subprocess.CompletedProcess[str]) -> str:
    assert p.returncode == 0, f"exit {p.returncode}: {p.stdout!r} {p.stderr!r}"
    return p.stdout


def error_line(p: subprocess.CompletedProcess[str], code: int = 2) -> str:
    """The one line a failing command printed on stderr (without `weft: error: `)."""
    assert p.returncode == code, f"exit {p.returncode}, wanted {code}: {p.stdout!r} {p.stderr!r}"
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith("weft: error: "), lines[0]
    return lines[0].removeprefix("weft: error: ")
