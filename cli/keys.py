"""`weft keys`: CurveZMQ key pairs for a secure cluster (weft.bus.curve)."""

from __future__ import annotations

from pathlib import Path

import typer

from weft.bus.curve import (
    KEY_ROLES,
    AllowList,
    Identity,
    KeyFileError,
    generate,
    read_identity,
    write_identity,
)

from .app import app
from .common import emit_json, fail

keys_app = typer.Typer(help="Key pairs and the allow-list of a secure cluster (--security curve).",
                       no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@keys_app.command("generate")
def generate_cmd(
    directory: Path = typer.Argument(..., metavar="DIR", help="Where to write NAME.secret and NAME.public."),
    role: str = typer.Option(..., "--role", metavar="ROLE", help=f"One of {', '.join(KEY_ROLES)}."),
    name: str = typer.Option(None, "--name", metavar="NAME", help="Who the key is (default: the role)."),
    as_json: bool = typer.Option(False, "--json", help="Print the files and the public key as JSON."),
) -> None:
    """Write a key pair. If DIR holds the cluster's public key (cluster.public), the secret file names it,
    so a client needs only that one file (--key FILE or WEFT_KEY)."""
    try:
        ident = generate(name or role, role)
        cluster = directory / "cluster.public"
        cluster_public = read_identity(cluster, secret=False).public if cluster.exists() else None
        secret, public = write_identity(directory, ident, cluster_public=cluster_public)
    except KeyFileError as e:
        fail(str(e))
    if as_json:
        emit_json({"secret": str(secret), "public": str(public), "key": ident.public, "role": role,
                   "name": ident.name})
        return
    typer.echo(f"wrote {secret} (keep it secret) and {public}")


def make_cluster_keys(keys: Path) -> Path:
    """A one-machine secure cluster's keys under `keys` (kept if already there): the cluster key,
    one node key for its daemons, an admin key naming the cluster, and the allow-list of both.
    Returns the admin key file."""
    cluster_secret = keys / "cluster.secret"
    if not cluster_secret.exists():
        write_identity(keys, generate("cluster", "node"))
    cluster_public = read_identity(cluster_secret).public
    made: list[Identity] = []
    for name, role in (("node", "node"), ("admin", "admin")):
        if not (keys / f"{name}.secret").exists():
            ident = generate(name, role)
            write_identity(keys, ident, cluster_public=cluster_public)
        made.append(read_identity(keys / f"{name}.secret"))
    allow = AllowList(keys / "allow")
    if not allow.path.exists():
        allow.path.write_text("# weft allow-list: PUBLIC-KEY ROLE NAME\n")
    allow.load()
    for ident in made:
        if allow.lookup(ident.public) is None:
            allow.add(ident)
    return keys / "admin.secret"
