"""The `weft` command."""

from __future__ import annotations

import logging
import sys

import typer

from weft.actors.model import SpecError
from weft.bus.errors import BusError
from weft.runtime.settings import SettingError

from . import completion
from .app import app, tidy_help
from .common import UserError


def _register() -> None:
    # Each module adds its commands to `app` when imported.
    from . import (  # noqa: F401
        admin,
        bench,
        config,
        control,
        daemons,
        direct,
        events,
        groups,
        jobs,
        keys,
        logs,
        nodes,
        put,
        recurring,
        submission,
        tokens,
        top,
        units,
        up,
    )


def _one_line(message: str) -> str:
    return " ".join(str(message).split())


def main(argv: list[str] | None = None) -> int:
    _register()
    command = typer.main.get_command(app)
    tidy_help(command)
    completion.attach(command)
    try:
        rv = command.main(args=argv, prog_name="weft", standalone_mode=False)
    except BaseException as e:
        return _report(e)
    return rv if isinstance(rv, int) else 0


def _error(message: str, code: int) -> int:
    sys.stderr.write(f"weft: error: {_one_line(message)}\n")
    return code


def _report(e: BaseException) -> int:
    """One line on stderr for whatever ended the command; its exit code."""
    if isinstance(e, BaseExceptionGroup):
        # trio may wrap an error in a group: report the first one within.
        leaves = [x for x in _leaves(e) if not isinstance(x, GeneratorExit)]
        return _report(leaves[0]) if leaves else 1
    if isinstance(e, typer.Exit):
        return e.exit_code
    if isinstance(e, SystemExit):  # shell completion ends this way
        return e.code if isinstance(e.code, int) else 0
    if isinstance(e, typer.Abort):
        sys.stderr.write("weft: aborted\n")
        return 130
    if isinstance(e, KeyboardInterrupt):
        sys.stderr.write("weft: interrupted\n")
        return 130
    if isinstance(e, UserError):
        return _error(str(e), e.exit_code)
    if isinstance(e, BusError):
        return _error(e.message, 2)
    if isinstance(e, TimeoutError):
        return _error(str(e) or "timed out", 3)
    if isinstance(e, SpecError | SettingError | FileNotFoundError | PermissionError):
        return _error(str(e), 2)
    if not isinstance(e, Exception):
        raise e
    # typer vendors its own click, so usage errors are recognised by shape.
    if type(e).__name__ == "NoArgsIsHelpError":
        return 0  # the help is printed already: asking for nothing is asking for help
    if hasattr(e, "format_message") and isinstance(getattr(e, "exit_code", None), int):
        return _error(e.format_message(), 2)
    logging.getLogger("weft.cli").debug("internal error", exc_info=e)
    sys.stderr.write(f"weft: internal error: {type(e).__name__}: {_one_line(str(e))} (run with --log-level debug for the traceback)\n")
    return 1


def _leaves(group: BaseExceptionGroup) -> list[BaseException]:
    out: list[BaseException] = []
    for x in group.exceptions:
        out += _leaves(x) if isinstance(x, BaseExceptionGroup) else [x]
    return out


if __name__ == "__main__":
    sys.exit(main())
