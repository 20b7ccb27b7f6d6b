"""Submit options for submission control (--max-spawns, --allow, --deny,
--no-queue), `weft status --tree ROOT` and `weft decommission ROOT`."""

from __future__ import annotations

import time
from typing import Any

import typer

from weft.actors.model import JobSpec, SpecError

from .app import app
from .common import CoordOpt, JsonOpt, client, emit_json, fail


def apply_options(specs: list[JobSpec], max_spawns: int | None, allow: list[str], deny: list[str],
                  block: list[str]) -> None:
    """The command line's submission-control options on each spec (checked)."""
    from weft.actors.windows import parse_rule

    if max_spawns is not None and max_spawns < 0:
        fail(f"invalid --max-spawns {max_spawns}: expected a number of jobs >= 0")
    windows = [["allow", w] for w in allow] + [["deny", w] for w in deny]
    try:
        for kind, text in windows:
            parse_rule(text, f"--{kind}")
        for s in specs:
            if max_spawns is not None:
                s.max_spawns = max_spawns
            if windows:
                s.windows = windows
            if block:
                if s.command is None:
                    fail("--block is for commands (a callable can wait for its file itself)")
                s.block = list(block)
            s.validate()
    except SpecError as e:
        fail(str(e))


def try_submit(c: Any, specs: list[JobSpec], replace: bool, as_json: bool) -> None:
    """--no-queue: start what can start now, print the answer; exit 1 if any was rejected."""
    r = c.submit_batch(specs, queue=False, replace=replace)
    if as_json:
        emit_json(r)
    else:
        for jid in r["started"]:
            typer.echo(f"started\t{jid}")
        for jid in r["rejected"]:
            typer.echo(f"rejected\t{jid}")
        typer.echo("fits now: " + ", ".join(f"{k} {v}" for k, v in r["slots"].items()))
    raise typer.Exit(1 if r["rejected"] else 0)


def show_tree(c: Any, root: str, as_json: bool) -> None:
    r = c.call("tree", {"root": root})
    if as_json:
        emit_json(r)
        return
    jobs = r["jobs"]
    children: dict[str, list[dict]] = {}
    for j in jobs[1:]:
        children.setdefault(j.get("spawned_by", r["root"]), []).append(j)

    def line(j: dict, depth: int) -> None:
        typer.echo(f"{'  ' * depth}{j['job']}  {j['state']}")
        for k in children.get(j["job"], []):
            line(k, depth + 1)

    line(jobs[0], 0)
    limit = f" of {r['max_spawns']}" if "max_spawns" in r else ""
    note = f", decommissioned {time.strftime('%H:%M:%S', time.localtime(r['decommissioned']))}" \
        if "decommissioned" in r else ""
    typer.echo(f"spawned {r['spawned']}{limit}{note}")


@app.command()
def decommission(
    root: str = typer.Argument(..., metavar="ROOT", help="The root job of a tree (or any job of it)."),
    as_json: bool = JsonOpt,
    coordinator: str = CoordOpt,
) -> None:
    """Stop any further job of ROOT's tree from starting: running ones
    finish, queued ones end cancelled, and submits under it are refused."""
    with client(coordinator) as c:
        r = c.call("decommission", {"root": root})
    if as_json:
        emit_json(r)
        return
    typer.echo(f"{r['root']}: decommissioned; {len(r['cancelled'])} queued job(s) cancelled")
