"""The typer app and its root options. A leaf: command modules import `app`
from here, and `weft.cli.main` imports the command modules."""

from __future__ import annotations

import typer

from weft import __version__
from weft.runtime import log as weft_log

from .common import UserError

app = typer.Typer(
    name="weft",
    help="weft: a distributed job and build execution system.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"weft {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
    log_level: str = typer.Option(None, "--log-level", help="debug, info, warning, error (default: $WEFT_LOG_LEVEL or warning)."),
) -> None:
    try:
        weft_log.setup(log_level)
    except ValueError as e:
        raise UserError(str(e)) from None
