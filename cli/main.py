"""The `weft` command."""

from __future__ import annotations

import logging
import sys

import typer

from weft.actors.model import SpecError
from weft.bus import log as weft_log
from weft.bus.errors import BusError

from .common import UserError

__version__ = "0.1.0"

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


def _register() -> None:
    from . import commands  # noqa: F401  (each module adds its commands to `app`)


def _one_line(message: str) -> str:
    return " ".join(str(message).split())


def main(argv: list[str] | None = None) -> int:
    _register()
    command = typer.main.get_command(app)
    try:
        rv = command.main(args=argv, prog_name="weft", standalone_mode=False)
    except typer.Exit as e:
        return e.exit_code
    except typer.Abort:
        sys.stderr.write("weft: aborted\n")
        return 130
    except UserError as e:
        sys.stderr.write(f"weft: error: {_one_line(str(e))}\n")
        return e.exit_code
    except BusError as e:
        sys.stderr.write(f"weft: error: {_one_line(e.message)}\n")
        return 2
    except (SpecError, FileNotFoundError, PermissionError) as e:
        sys.stderr.write(f"weft: error: {_one_line(str(e))}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("weft: interrupted\n")
        return 130
    except Exception as e:
        # typer vendors its own click, so usage errors are recognised by shape.
        if hasattr(e, "format_message") and isinstance(getattr(e, "exit_code", None), int):
            sys.stderr.write(f"weft: error: {_one_line(e.format_message())}\n")
            return 2
        logging.getLogger("weft.cli").debug("internal error", exc_info=True)
        sys.stderr.write(f"weft: internal error: {type(e).__name__}: {_one_line(str(e))} (run with --log-level debug for the traceback)\n")
        return 1
    return rv if isinstance(rv, int) else 0


if __name__ == "__main__":
    sys.exit(main())
