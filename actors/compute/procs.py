"""The one reader of /proc for process groups: which live processes belong to
which group. Used to tell a group that is gone from one whose members
linger (zombies nobody reaped count as gone), and to find a dead node's
leftover commands after a restart."""

from __future__ import annotations

import os
from collections.abc import Iterator


def group_members(pgids: set[int]) -> Iterator[tuple[int, bytes]]:
    """(pid, state letter) of each process whose group is in `pgids`, as far
    as /proc shows them; processes that vanish while we look are skipped."""
    try:
        entries = os.scandir("/proc")
    except OSError:
        return
    with entries:
        for entry in entries:
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as f:
                    data = f.read()
                # The command name in parentheses may hold anything: fields
                # are counted from its closing parenthesis.
                fields = data[data.rfind(b")") + 2 :].split()
                if len(fields) > 2 and int(fields[2]) in pgids:
                    yield int(entry.name), fields[0]
            except (OSError, ValueError):
                continue


def group_alive(pgid: int) -> bool:
    """Whether a member of the group still runs (not a zombie)."""
    return any(state not in (b"Z", b"X") for _, state in group_members({pgid}))
