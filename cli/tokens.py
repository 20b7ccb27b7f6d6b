"""`weft keys token`: a dashboard token (browsers cannot hold CURVE keys; they present one of these)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import typer

from .common import emit_json, fail
from .keys import keys_app

TOKEN_ROLES = ("user", "admin")


@keys_app.command("token")
def token_cmd(
    role: str = typer.Option("user", "--role", metavar="ROLE", help="user (read) or admin."),
    file: Path = typer.Option(Path(".weft/keys/http-tokens"), "--file", metavar="FILE",
                              help="The tokens file the coordinator reads (--http-tokens FILE); appended to."),
    as_json: bool = typer.Option(False, "--json", help="Print the token, its role and the file as JSON."),
) -> None:
    """Make a dashboard token, append it to FILE (created private) and print it: a browser signs in with it
    at /login, a script sends it as `Authorization: Bearer TOKEN`."""
    if role not in TOKEN_ROLES:
        fail(f"invalid --role {role!r}: expected one of {', '.join(TOKEN_ROLES)}")
    token = secrets.token_urlsafe(24)
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a") as f:
            f.write(f"{role} {token}\n")
    except OSError as e:
        fail(f"cannot write {file}: {e.strerror or e}")
    if as_json:
        emit_json({"token": token, "role": role, "file": str(file)})
        return
    typer.echo(token)
    typer.echo(f"(a {role} token, appended to {file}: start the coordinator with --http-tokens {file})", err=True)
