"""The `weft` command."""

from __future__ import annotations

import logging
import sys

import typer

from weft.actors.model import SpecError
from weft.bus.errors import BusError

from .app import app
from .common import UserError


def _register() -> None:
    # Each module adds its commands to `app` when imported.
    from . import bench, daemons, direct, jobs, up  # noqa: F401


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
