"""What every command shares: user errors, output helpers, endpoint checks."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer


class UserError(Exception):
    """A mistake the user can fix: printed as one line, exit code 2."""

    exit_code = 2


CoordOpt = typer.Option(None, "--coordinator", "-c", envvar="WEFT_COORDINATOR", metavar="ENDPOINT", help="Coordinator endpoint (default tcp://127.0.0.1:5570).")
JsonOpt = typer.Option(False, "--json", help="Machine-readable output on stdout.")


def client(endpoint: str | None, *, retry_for: float = 3.0):
    """A client that gives up within a few seconds when nobody answers."""
    from weft.actors.client import Client

    ep = check_endpoint(coordinator_endpoint(endpoint), "coordinator endpoint")
    return Client(ep, timeout=3.0, retry_for=retry_for)


def fail(message: str, code: int = 2) -> None:
    err = UserError(message)
    err.exit_code = code
    raise err


def emit_json(value: Any, *, one_line: bool = False) -> None:
    """`one_line` for a command that keeps running: a script reads one line."""
    sys.stdout.write(json.dumps(value, indent=None if one_line else 2, sort_keys=True, default=str) + "\n")
    sys.stdout.flush()


def coordinator_endpoint(value: str | None) -> str:
    """--coordinator, else $WEFT_COORDINATOR, else [client] coordinator of the configuration file, else the default."""
    if value:
        return value
    from weft.runtime import configfile
    from weft.runtime.settings import SettingError

    try:
        return configfile.default_coordinator()
    except SettingError as e:
        fail(str(e))


def check_endpoint(value: str, what: str = "endpoint") -> str:
    if not value.startswith(("tcp://", "ipc://", "inproc://")):
        fail(f"invalid {what} {value!r}: expected tcp://HOST:PORT or ipc://PATH")
    return value


# -- daemon launching (weft up, weft coordinator|storage|compute) ------------------
# Daemon options themselves are generated from weft.runtime.settings.


def data_dir_option(value: Path | None, what: str) -> Path:
    """A usable data directory for `what` (made if missing), or a one-line user error."""
    from weft.runtime import datadir

    try:
        return datadir.prepare(value or datadir.default_data_dir(what))
    except datadir.DataDirError as e:
        fail(str(e))
