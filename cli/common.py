"""What every command shares: user errors, output helpers, daemon options."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import typer

DEFAULT_COORDINATOR = "tcp://127.0.0.1:5570"


class UserError(Exception):
    """A mistake the user can fix: printed as one line, exit code 2."""

    exit_code = 2


def fail(message: str, code: int = 2) -> None:
    err = UserError(message)
    err.exit_code = code
    raise err


def emit_json(value: Any, *, one_line: bool = False) -> None:
    """`one_line` for a command that keeps running: a script reads one line."""
    sys.stdout.write(json.dumps(value, indent=None if one_line else 2, sort_keys=True, default=str) + "\n")
    sys.stdout.flush()


def coordinator_endpoint(value: str | None) -> str:
    return value or os.environ.get("WEFT_COORDINATOR") or DEFAULT_COORDINATOR


def check_endpoint(value: str, what: str = "endpoint") -> str:
    if not value.startswith(("tcp://", "ipc://", "inproc://")):
        fail(f"invalid {what} {value!r}: expected tcp://HOST:PORT or ipc://PATH")
    return value


def data_dir_option(value: Path | None, role: str) -> Path:
    d = (value or Path(os.environ.get("WEFT_DATA_DIR", ".weft")) / role).resolve()
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        fail(f"cannot use data directory {d}: {e.strerror}")
    return d


# Options every daemon takes; typer needs them spelled out per command.
ListenOpt = typer.Option("tcp://127.0.0.1:0", "--listen", help="Endpoint to serve on (port 0: ephemeral, printed at start).")
DataDirOpt = typer.Option(None, "--data-dir", help="Where this node keeps its state (default .weft/<role>).")
NodeIdOpt = typer.Option(None, "--node-id", help="Stable node id (default: random per start).")
NoBeaconOpt = typer.Option(False, "--no-beacon", help="Do not announce by UDP beacon.")
BeaconAddrOpt = typer.Option("127.255.255.255", "--beacon-addr", envvar="WEFT_BEACON_ADDR", help="Broadcast address for beacons (the LAN's broadcast address across hosts).")
BeaconPortOpt = typer.Option(5670, "--beacon-port", envvar="WEFT_BEACON_PORT", help="UDP port for beacons.")
ClusterOpt = typer.Option("default", "--cluster", envvar="WEFT_CLUSTER", help="Cluster name: beacons of other clusters are ignored.")
StaticCoordOpt = typer.Option(None, "--coordinator", help="Announce to this coordinator endpoint by posted hello instead of beacons.")
