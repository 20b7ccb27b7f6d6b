"""`weft recurring ls|delete` and defining one (`weft submit --every`,
a unit's `Every=`): a job that starts a new instance each period."""

from __future__ import annotations

import time
from typing import Any

import typer

from weft.actors.model import JobSpec

from .app import app
from .common import CoordOpt, JsonOpt, client, emit_json, fail

recurring_app = typer.Typer(help="Recurring jobs (defined with submit --every or a unit's Every=).",
                            no_args_is_help=True)
app.add_typer(recurring_app, name="recurring")


def define(c: Any, specs: list[JobSpec], every: float, other: bool, as_json: bool) -> None:
    """Define a recurring job from one spec named with --name."""
    if other or len(specs) != 1:
        fail("--every defines one recurring job: give it without --file, --wait or --no-queue")
    spec = specs[0]
    if spec.name is None:
        fail("--every needs --name NAME: the instances are NAME.1, NAME.2, ...")
    name = spec.name
    r = c.call("recurring", {"do": "add", "name": name, "every": every, "job": spec.to_wire()})
    d = next(x for x in r["recurring"] if x["name"] == name)
    if as_json:
        emit_json(d)
    else:
        typer.echo(f"{name}: every {every:g}s, first instance {d['last'] or '-'}")


def _when(t: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t else "-"


@recurring_app.command("ls")
def ls(as_json: bool = JsonOpt, coordinator: str = CoordOpt) -> None:
    """Every recurring job: period, next start, instances, last instance, periods skipped."""
    with client(coordinator) as c:
        r = c.call("recurring", {"do": "ls"})["recurring"]
    if as_json:
        emit_json({"recurring": r})
        return
    for d in r:
        typer.echo(f"{d['name']:20} every {d['every']:g}s  next {_when(d['next'])}  instances {d['instances']}  "
                   f"last {d['last'] or '-'}  skipped {d['skipped']}")


@recurring_app.command("delete")
def delete(name: str = typer.Argument(..., metavar="NAME", help="The recurring job."),
           coordinator: str = CoordOpt) -> None:
    """Stop further instances (a running one finishes)."""
    with client(coordinator) as c:
        c.call("recurring", {"do": "delete", "name": name})
    typer.echo(f"{name}: deleted (no further instances)")
