"""The probe's look-up (probe.py): which modules an interpreter can import.
Runs in a fresh interpreter (probe.py's script) or in the spare forked with
the workers (prefork.py); standard library only, so that interpreter
imports nothing else."""

from __future__ import annotations

import importlib.util


def look_up(names: list[str]) -> str:
    """One digit per name, 1 found, 0 missing: `find_spec` finds a top-level
    module without running it (a dotted name imports its parent packages)."""
    answer = []
    for name in names:
        try:
            found = importlib.util.find_spec(name) is not None
        except BaseException:  # a parent package that fails, or exits, as it loads
            found = False
        answer.append("1" if found else "0")
    return "".join(answer)
