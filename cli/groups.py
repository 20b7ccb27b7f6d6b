"""`weft group`: groups of jobs (labels given at submit with --group)."""

from __future__ import annotations

import typer

from .app import app
from .common import CoordOpt, JsonOpt, client, emit_json
from .show import state_line

group_app = typer.Typer(help="Groups of jobs (labels given with submit --group).", no_args_is_help=True)
app.add_typer(group_app, name="group")


def _counts(c: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(c.items())) or "-"


@group_app.command("ls")
def ls(as_json: bool = JsonOpt, coordinator: str = CoordOpt) -> None:
    """Every group with its members' counts by state."""
    with client(coordinator) as c:
        groups = c.groups()
    if as_json:
        emit_json({"groups": groups})
        return
    for name, counts in sorted(groups.items()):
        typer.echo(f"{name:24} {sum(counts.values()):>6}  {_counts(counts)}")


@group_app.command("status")
def status(
    name: str = typer.Argument(..., metavar="NAME", help="The group."),
    as_json: bool = JsonOpt,
    coordinator: str = CoordOpt,
) -> None:
    """A group's counts by state and its members not finished yet."""
    with client(coordinator) as c:
        g = c.group(name)
    if as_json:
        emit_json(g)
        return
    paused = "  (paused)" if "paused" in g else ""
    typer.echo(f"group {g['group']}: {g['jobs']} jobs: {_counts(g['counts'])}{paused}")
    shown = g["pending"]
    for p in shown:
        waits = f"  waits on {p['pending']} (inputs or after-jobs)" if "pending" in p else ""
        typer.echo(f"  {p['job']}  {p['state']}{waits}")
    if g["pending_total"] > len(shown):
        typer.echo(f"  ... and {g['pending_total'] - len(shown)} more pending")


@group_app.command("cancel")
def cancel(
    name: str = typer.Argument(..., metavar="NAME", help="The group."),
    no_dependents: bool = typer.Option(False, "--no-dependents", help="Leave jobs outside the group that read its outputs alone."),
    as_json: bool = JsonOpt,
    coordinator: str = CoordOpt,
) -> None:
    """Cancel every member of a group (as of now), like `weft cancel --group`."""
    with client(coordinator) as c:
        r = c.cancel([], dependents=not no_dependents, groups=[name])
    if as_json:
        emit_json({"jobs": r})
        return
    for st in r:
        typer.echo(state_line(st))
