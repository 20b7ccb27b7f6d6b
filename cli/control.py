"""Steering commands: jobs (a listing like squeue), pause, resume."""

from __future__ import annotations

import time
from typing import Any

import typer

from weft.actors.durations import DurationError, parse_duration, parse_time

from .app import app
from .common import CoordOpt, JsonOpt, client, emit_json, fail
from .show import paused_text

STATES = ("waiting", "runnable", "running", "cancelling", "succeeded", "failed", "cancelled")


def since_time(value: str | None, now: float) -> float | None:
    """`--since`: a duration ago (30m), or a point in time (ISO 8601)."""
    if value is None:
        return None
    try:
        return now - parse_duration(value, "--since")
    except DurationError:
        pass
    try:
        return parse_time(value, "--since", now=now)
    except DurationError:
        fail(f"invalid --since {value!r}: expected a duration ago (90s, 30m, 2h, 7d) or ISO 8601 (2026-12-05T10:00)")


def _span(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def job_row(v: dict[str, Any], now: float) -> str:
    runtime = v.get("ran")
    cause = (v.get("cause") or "") if v.get("state") != "succeeded" else ""
    if v.get("waiting"):
        cause = f"waiting: {v['waiting']}"
    state = v["state"] + (" late" if v.get("late") else "")
    return (f"{v['job']:26.26} {v.get('name') or '-':16.16} {state:10} {v.get('node') or '-':16.16} "
            f"{_span(now - v['submitted']):>7} {_span(runtime):>7} {v.get('owner') or '-':16.16}  "
            f"{' '.join(cause.split())}").rstrip()


@app.command("jobs")
def jobs_cmd(
    states: list[str] = typer.Option([], "--state", "-s", metavar="STATE", help=f"Only jobs in this state (repeatable): {', '.join(STATES)}."),
    group: str = typer.Option(None, "--group", "-g", metavar="NAME", help="Only members of this group."),
    since: str = typer.Option(None, "--since", metavar="WHEN", help="Only jobs submitted since: a duration ago (30m) or ISO 8601."),
    limit: int = typer.Option(1000, "--limit", metavar="N", help="At most the newest N jobs (0: all)."),
    as_json: bool = JsonOpt,
    coordinator: str = CoordOpt,
) -> None:
    """List jobs like squeue: id, name, state, node, age, runtime, owner, cause (oldest first; a user key: its own)."""
    for s in states:
        if s not in STATES:
            fail(f"invalid --state {s!r}: expected one of {', '.join(STATES)}")
    if limit < 0:
        fail(f"invalid --limit {limit}: expected a number of jobs >= 0")
    now = time.time()
    after = since_time(since, now)
    with client(coordinator) as c:
        views = c.jobs(states=states, group=group, since=after, limit=limit or 2**62)
    if as_json:
        emit_json({"jobs": views})
        return
    typer.echo(f"{'JOB':26} {'NAME':16} {'STATE':10} {'NODE':16} {'AGE':>7} {'RUNTIME':>7} {'OWNER':16}  CAUSE")
    for v in views:
        typer.echo(job_row(v, now))


@app.command()
def pause(
    group: str = typer.Option(None, "--group", "-g", metavar="NAME", help="Pause only this group's jobs."),
    as_json: bool = JsonOpt,
    coordinator: str = CoordOpt,
) -> None:
    """Start no new jobs (of the cluster, or one group); running jobs go on, `weft resume` undoes it."""
    with client(coordinator) as c:
        paused = c.pause(group)
    emit_json({"paused": paused}) if as_json else typer.echo(paused_text(paused))


@app.command()
def resume(
    group: str = typer.Option(None, "--group", "-g", metavar="NAME", help="Resume only this group."),
    as_json: bool = JsonOpt,
    coordinator: str = CoordOpt,
) -> None:
    """Undo `weft pause` (of the cluster, or of one group)."""
    with client(coordinator) as c:
        paused = c.resume(group)
    emit_json({"paused": paused}) if as_json else typer.echo(paused_text(paused))
