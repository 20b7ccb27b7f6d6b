"""The one reader of /proc for process groups: which live processes belong to
which group. Used to tell a group that is gone from one whose members
linger (zombies nobody reaped count as gone), and to find a dead node's
leftover commands after a restart."""

from __future__ import annotations

import os
from collections.abc import Iterator


def group_stats(pgids: set[int]) -> Iterator[tuple[int, int, list[bytes]]]:
    """(pid, group, the fields of /proc/PID/stat after the command name) of
    each process whose group is in `pgids`; processes that vanish while we
    look are skipped. Field 0 is the state letter, field 21 the resident pages."""
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
                if len(fields) > 2 and (pgid := int(fields[2])) in pgids:
                    yield int(entry.name), pgid, fields
            except (OSError, ValueError):
                continue


def group_members(pgids: set[int]) -> Iterator[tuple[int, bytes]]:
    """(pid, state letter) of each process whose group is in `pgids`."""
    for pid, _, fields in group_stats(pgids):
        yield pid, fields[0]


def group_alive(pgid: int) -> bool:
    """Whether a member of the group still runs (not a zombie)."""
    return any(state not in (b"Z", b"X") for _, state in group_members({pgid}))
