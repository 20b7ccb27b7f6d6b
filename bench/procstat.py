"""A process's /proc/PID/stat, for the bench tools that read CPU time or
page faults from it (cpu_per_job, handoff_cpu, startup_timeline)."""

from __future__ import annotations

import os

TICK = os.sysconf("SC_CLK_TCK")


def stat_fields(pid: int) -> list[str] | None:
    """The fields after the command name (`state` is [0], `ppid` [1],
    `minflt` [7], `utime` [11], `stime` [12]); None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None


def cpu_seconds(fields: list[str]) -> float:
    """utime + stime of `stat_fields`' answer."""
    return (int(fields[11]) + int(fields[12])) / TICK
