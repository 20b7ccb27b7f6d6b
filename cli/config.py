"""`weft config`: the configuration file's template and the settings in effect."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from weft.runtime import configfile
from weft.runtime.settings import ROLES, SettingError

from .app import app
from .common import emit_json, fail

config_app = typer.Typer(help="The configuration file (TOML, one section per role).", no_args_is_help=True)
app.add_typer(config_app, name="config")

ConfigOpt = typer.Option(None, "--config", metavar="FILE",
                         help="Configuration file (default $WEFT_CONFIG, else /etc/weft/weft.toml if present).")


@config_app.command("template")
def template() -> None:
    """Print a configuration file with every setting at its default, commented out."""
    typer.echo(configfile.template(), nl=False)


@config_app.command("show")
def show(
    role: Optional[str] = typer.Option(None, "--role", metavar="ROLE",  # noqa: UP045 (typer reads it)
                                       help=f"Only this role: {', '.join(ROLES)}."),
    config: Optional[Path] = ConfigOpt,  # noqa: UP045
    as_json: bool = typer.Option(False, "--json", help="As JSON: role -> setting -> {value, source}."),
) -> None:
    """The settings a daemon started here would run with, and where each comes from
    (flags given to the daemon override all of these)."""
    if role is not None and role not in ROLES:
        fail(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
    try:
        cfg = configfile.load_found(config)
        table = {r: configfile.effective(r, cfg) for r in ([role] if role else ROLES)}
    except SettingError as e:
        fail(str(e))
    client = configfile.client_coordinator(cfg)
    if as_json:
        out = {r: {s.name: {"value": v if v is None or isinstance(v, (bool, int, float)) else str(v),
                            "source": src} for s, v, src in rows} for r, rows in table.items()}
        out["file"] = str(cfg.path) if cfg else None
        if role is None:
            out["client"] = {"coordinator": {"value": client, "source": f"file {cfg.path}"}} if client else {}
        emit_json(out)
        return
    typer.echo(f"# file: {cfg.path if cfg else '(none)'}")
    for r, rows in table.items():
        typer.echo(f"[{r}]")
        for s, v, src in rows:
            shown = "(unset)" if v is None else v
            typer.echo(f"  {s.name:20} {str(shown):28} {src}")
    if role is None and client:
        typer.echo(f"[client]\n  {'coordinator':20} {client:28} file {cfg.path}")
