"""`weft run UNIT` and `weft units ls`: job definitions kept as unit files."""

from __future__ import annotations

from typing import Any

import typer

from weft.actors.model import SpecError

from .app import app
from .common import CoordOpt, JsonOpt, client, emit_json, fail

units_app = typer.Typer(help="Unit files: NAME.workorder / NAME.batch job definitions (weft run UNIT).",
                        no_args_is_help=True)
app.add_typer(units_app, name="units")

UnitsOpt = typer.Option(None, "--units", metavar="DIR", help="The units directory (default $WEFT_UNITS, else ./units).")


def _params(values: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            fail(f"invalid --param {item!r}: expected KEY=VALUE")
        if key in out:
            fail(f"--param {key} is given twice: give each parameter once")
        out[key] = value
    return out


@app.command("run")
def run(
    unit: str = typer.Argument(..., metavar="UNIT", help="The unit's name (NAME.workorder or NAME.batch in the units directory)."),
    params: list[str] = typer.Option([], "--param", metavar="KEY=VALUE", help="A parameter the unit declares (repeatable)."),
    units: str = UnitsOpt,
    as_json: bool = JsonOpt,
    coordinator: str = CoordOpt,
) -> None:
    """Validate a unit's parameters and submit it; print the job id.

    The parameters reach the command as $WEFT_PARAM_<KEY> and as
    parameters.json in its working directory."""
    from weft.actors import units as unitfiles

    given = _params(params)
    try:
        u = unitfiles.find(unitfiles.units_dir(units), unit)
        spec, pending = u.spec(given)
        secrets = u.secret_values()  # [Secrets] NAME=@FILE, read now
    except SpecError as e:
        fail(str(e))
    every = pending.pop("every", None)
    if every is not None and secrets:
        fail(f"unit {u.name}: [Secrets] go with one run, not with Every= (a recurring job keeps no secrets)")
    if every is not None:  # Every=: a recurring job named after the unit
        from .recurring import define

        spec.name = u.name
        with client(coordinator) as c:
            return define(c, [spec], every, False, as_json)
    with client(coordinator) as c:
        f = c.submit_specs([spec], secret_inputs=secrets)[0]
    record: dict[str, Any] = {"job": f.job, "unit": u.name, "parameters": spec.params or {},
                              "cached": f.cached, "joined": f.joined}
    if as_json:
        emit_json(record)
    else:
        typer.echo(f.job)


@units_app.command("ls")
def ls(units: str = UnitsOpt, as_json: bool = JsonOpt) -> None:
    """Every unit in the units directory with its class and parameters."""
    from weft.actors import units as unitfiles

    try:
        found = unitfiles.list_units(unitfiles.units_dir(units))
    except SpecError as e:
        fail(str(e))
    if as_json:
        emit_json({"units": [u.describe() for u in found]})
        return
    for u in found:
        ps = " ".join(f"{k}={v}" for k, v in u.params.items()) or "-"
        typer.echo(f"{u.name:24} {u.job_class:9} {ps}")
