"""`weft keys`: CurveZMQ key pairs for a secure cluster (weft.bus.curve)."""

from __future__ import annotations

from pathlib import Path

import typer

from weft.bus.keyfiles import (
    KEY_ROLES,
    AllowList,
    Identity,
    KeyFileError,
    generate,
    read_identity,
    write_identity,
)
from weft.protocol.access import KeyChange

from .app import app
from .common import CoordOpt, JsonOpt, client, emit_json, fail

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
    the coordinator's key, one node key for the other daemons, an admin key naming the cluster, and
    the allow-list of them.
    Returns the admin key file."""
    cluster_secret = keys / "cluster.secret"
    if not cluster_secret.exists():
        write_identity(keys, generate("cluster", "node"))
    cluster_public = read_identity(cluster_secret).public
    made: list[Identity] = []
    # The coordinator has a node key of its own: only it may start tasks and fence (protocol.access).
    for name, role in (("coordinator", "node"), ("node", "node"), ("admin", "admin")):
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


def _change(change: KeyChange, coordinator: str | None, as_json: bool) -> None:
    with client(coordinator) as c:
        r = c.call("keys", change.to_wire())
    if as_json:
        emit_json(r)
        return
    typer.echo(f"{change.action}: {r['changed']} key(s) changed; applied on {len(r['applied'])} node(s)")
    for node, why in sorted(r["failed"].items()):
        typer.echo(f"warning: not applied on {node}: {why} (tell it again when it is back)", err=True)


@keys_app.command("allow")
def allow_cmd(
    public: Path = typer.Argument(..., metavar="FILE.public", help="The key to admit (from weft keys generate)."),
    as_json: bool = JsonOpt,
    coordinator: str = CoordOpt,
) -> None:
    """Admit a key to the running cluster (an admin call): the coordinator adds it to every node's allow-list."""
    try:
        ident = read_identity(public, secret=False)
    except KeyFileError as e:
        fail(str(e))
    _change(KeyChange("allow", ident.name, ident.public, ident.role), coordinator, as_json)


@keys_app.command("revoke")
def revoke_cmd(
    name: str = typer.Argument(..., metavar="NAME", help="Every key of this name is dropped."),
    as_json: bool = JsonOpt,
    coordinator: str = CoordOpt,
) -> None:
    """Drop a key from the running cluster's allow-lists (an admin call); its connections are refused
    from the next handshake on."""
    _change(KeyChange("revoke", name), coordinator, as_json)
