"""The typer app and its root options. A leaf: command modules import `app`
from here, and `weft.cli.main` imports the command modules."""

from __future__ import annotations

import os
from typing import Any

import typer

from weft import __version__
from weft.runtime import log as weft_log

from . import plainvalues
from .common import UserError

# Metavars for options that do not name their own: by option name, else by
# the type typer shows.
_NAME_METAVARS = {
    "--listen": "ENDPOINT", "--coordinator": "ENDPOINT", "--compute": "ENDPOINT", "--storage": "ENDPOINT",
    "--data-dir": "DIR", "--beacon-addr": "ADDRESS", "--beacon-port": "PORT", "--node-id": "NAME",
    "--cluster": "NAME", "--log-level": "LEVEL", "--slots": "N",
}
_TYPE_METAVARS = {"int": "N", "float": "NUMBER", "str": "TEXT", "path": "PATH", "file": "FILE"}

app = typer.Typer(
    name="weft",
    help="weft: a distributed job and build execution system.",
    no_args_is_help=True,
    add_completion=True,
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
    key: str = typer.Option(None, "--key", metavar="FILE",
                            help="Key file for a secure cluster (default $WEFT_KEY, else [client] key of the "
                                 "configuration file)."),
) -> None:
    if key:
        os.environ["WEFT_KEY"] = key  # read wherever a client is made (weft.runtime.configfile)
    try:
        weft_log.setup(log_level)
    except ValueError as e:
        raise UserError(str(e)) from None


def tidy_help(command: Any) -> None:
    """Show what a user types in help, not Python types.

    typer 0.29 labels every parameter with its annotation (`<bool>` on flags,
    `<list[str]>`, arguments as `{jobs}...`). Parameters that name a metavar
    keep it; the rest get one from their type, flags none. typer builds these
    labels in methods of its parameter classes and lets no command pick the
    class of its arguments, so arguments get their label methods per instance.
    """
    for param in command.params:
        plainvalues.attach(param)  # walked here anyway: spare each command pydantic's import
        if param.param_type_name == "argument":
            base = (param.metavar or param.name.upper()).removesuffix("...")
            param.metavar = base + ("..." if param.nargs != 1 else "")
            usage = param.metavar if param.required else f"[{base}]" + ("..." if param.nargs != 1 else "")
            param.get_usage_pieces = lambda ctx, usage=usage: [usage]
            param.display_type_rich = lambda ctx: None
        elif param.metavar is None:
            if getattr(param, "is_flag", False) or getattr(param, "count", False):
                param.metavar = ""
                continue
            try:
                label = param.display_type(None).strip("<>")
            except Exception:  # a type needing a context (choices): keep typer's label
                continue
            label = label.removeprefix("list[").removesuffix("]")
            by_name = next((_NAME_METAVARS[o] for o in param.opts if o in _NAME_METAVARS), None)
            if by_name is not None and label in ("str", "path"):
                param.metavar = by_name
            else:
                param.metavar = _TYPE_METAVARS.get(label, label if "|" in label else label.upper())
    # --help is made per invocation: give it the flags' blank label then.
    make_help = command.get_help_option

    def get_help_option(ctx: Any) -> Any:
        opt = make_help(ctx)
        if opt is not None and opt.metavar is None:
            opt.metavar = ""
        if opt is not None:
            plainvalues.attach(opt)
        return opt

    command.get_help_option = get_help_option
    for sub in getattr(command, "commands", {}).values():
        tidy_help(sub)
