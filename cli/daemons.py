"""`weft storage`, `weft compute`, `weft coordinator`: run one daemon.

Their options are generated from weft.runtime.settings, the one place a
daemon setting is declared: each command is a function whose signature is
built from the role's settings, which typer reads like a written one. Each
option also reads WEFT_<ROLE>_<NAME>, and a value given by neither flag nor
variable comes from the configuration file (weft.runtime.configfile), else
the default.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Optional

import typer

from weft.runtime import configfile
from weft.runtime.settings import Setting, SettingError, settings

from .app import app
from .common import UserError

_DOCS = {
    "storage": "Run a storage node: holds job outputs as named objects.",
    "compute": "Run a compute node: runs tasks, reading and writing storage.",
    "coordinator": "Run the coordinator: finds nodes, schedules jobs, follows delegations.",
}


def run_role(role: str, values: dict[str, Any]) -> None:
    """Build the role's node from setting values and run it until stopped."""
    from weft.runtime.daemon import build
    from weft.runtime.node import run_forever

    try:
        run_forever(build(role, values))
    except SettingError as e:
        raise UserError(str(e)) from None


def with_file(role: str, ctx: typer.Context, values: dict[str, Any], config: Path | None) -> dict[str, Any]:
    """`values` with those left at their default taken from the configuration file, if it sets them."""
    cfg = configfile.load_found(config)
    merged = dict(values)
    for name, value in configfile.file_values(cfg, role).items():
        source = ctx.get_parameter_source(name)
        # By name: typer carries its own copy of click, whose enum is not click's.
        if source is None or source.name in ("DEFAULT", "DEFAULT_MAP"):
            merged[name] = value
    return merged


CONFIG_PARAM = inspect.Parameter(
    "config", inspect.Parameter.KEYWORD_ONLY, annotation=Optional[Path],  # noqa: UP045 (typer reads it)
    default=typer.Option(None, "--config", metavar="FILE", help="Configuration file (TOML; default $WEFT_CONFIG, "
                         "else /etc/weft/weft.toml if present). Flags and WEFT_* variables override it."))
CTX_PARAM = inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context)


def _parameter(role: str, s: Setting) -> inspect.Parameter:
    option = typer.Option(s.default, s.flag, *s.aliases, help=s.help, metavar=s.metavar or None,
                          envvar=configfile.env_vars(role, s), show_envvar=False,
                          show_default=s.default is not None and s.type is not bool)
    annotation = s.type if s.default is not None else Optional[s.type]  # noqa: UP045 (typer reads it)
    return inspect.Parameter(s.name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=annotation)


def _command(role: str) -> None:
    params = [CTX_PARAM, CONFIG_PARAM, *(_parameter(role, s) for s in settings(role))]

    def command(ctx: typer.Context, config: Path | None, **values: Any) -> None:
        try:
            values = with_file(role, ctx, values, config)
        except SettingError as e:
            raise UserError(str(e)) from None
        run_role(role, values)

    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    command.__name__ = command.__qualname__ = role
    command.__doc__ = (f"{_DOCS[role]}\n\nEvery option also reads WEFT_{role.upper()}_<NAME> (e.g. "
                       f"WEFT_{role.upper()}_{settings(role)[-1].name.upper()}); a value given by neither comes from "
                       "the configuration file (--config), else the default. `weft config show` prints them.")
    app.command(name=role)(command)


for _role in ("storage", "compute", "coordinator"):
    _command(_role)
