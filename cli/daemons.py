"""`weft storage`, `weft compute`, `weft coordinator`: run one daemon.

Their options are generated from weft.runtime.settings, the one place a
daemon setting is declared: each command is a function whose signature is
built from the role's settings, which typer reads like a written one.
"""

from __future__ import annotations

import inspect
from typing import Any, Optional

import typer

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


def _parameter(s: Setting) -> inspect.Parameter:
    option = typer.Option(s.default, s.flag, *s.aliases, help=s.help, metavar=s.metavar or None, envvar=s.envvar,
                          show_default=s.default is not None and s.type is not bool)
    annotation = s.type if s.default is not None else Optional[s.type]  # noqa: UP045 (typer reads it)
    return inspect.Parameter(s.name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=annotation)


def _command(role: str) -> None:
    params = [_parameter(s) for s in settings(role)]

    def command(**values: Any) -> None:
        run_role(role, values)

    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    command.__name__ = command.__qualname__ = role
    command.__doc__ = _DOCS[role]
    app.command(name=role)(command)


for _role in ("storage", "compute", "coordinator"):
    _command(_role)
