"""`weft nodes` (what each node offers and uses) and `weft node drain|undrain`."""

from __future__ import annotations

import time
from typing import Any

import typer

from weft.actors.resources import show_size

from .app import app
from .common import CoordOpt, JsonOpt, client, emit_json

node_app = typer.Typer(help="Act on one node: drain it before it leaves, or undrain it.", no_args_is_help=True)
app.add_typer(node_app, name="node")


def _size(n: dict[str, Any], key: str) -> str:
    v = n.get(key)
    return "" if v is None else show_size(v)


def _used_free(n: dict[str, Any]) -> tuple[str, str]:
    """Memory on a compute node, disk on a storage node."""
    if n["role"] == "storage":
        return _size(n, "bytes"), _size(n, "free")
    return _size(n, "memory_used"), _size(n, "memory_free")


def _state(n: dict[str, Any]) -> str:
    if n.get("revoked"):
        return "revoked"
    if n.get("drained"):
        left = n.get("drain_left")
        return "drained" if not left else f"draining ({left} left)"
    return "ready" if n.get("ready") else "starting"


@app.command()
def nodes(as_json: bool = JsonOpt, coordinator: str = CoordOpt) -> None:
    """The nodes the coordinator knows: role, endpoint, host; CPUs used/free and memory used/free
    (compute); its objects' bytes and the disk's free space (storage, asked every few seconds),
    objects, under-replicated objects held and repair copies in/out (storage); drained, last seen;
    nodes whose key was revoked (they get no more work) are listed as revoked, with why."""
    with client(coordinator) as c:
        ns = c.nodes()
    if as_json:
        emit_json({"nodes": ns})
        return
    now = time.time()
    typer.echo(f"{'role':8} {'node':16} {'endpoint':26} {'host':14} {'cpus used/free':>14} {'used':>12} {'free':>12} "
               f"{'objects':>7} {'under':>5} {'copies':>7} {'state':10} {'seen':>6}")
    for n in sorted(ns, key=lambda n: (n["role"], n["node"])):
        copies = f"{n['copies_in']}/{n['copies_out']}" if "copies_in" in n else ""
        cpus = f"{n['cpus_used']}/{n['cpus_free']}" if "cpus" in n else ""
        used, free = _used_free(n)
        typer.echo(
            f"{n['role']:8} {n['node']:16} {n['endpoint']:26} {n.get('host') or '-':14.14} {cpus:>14} {used:>12} "
            f"{free:>12} {n.get('objects', ''):>7} {n.get('under_replicated', ''):>5} {copies:>7} "
            f"{_state(n):10} "
            f"{now - n['last_seen']:>5.1f}s"
        )
    for n in ns:
        if n.get("revoked"):
            typer.echo(f"{n['role']} {n['node']}: {n['revoked']}; it gets no more work")


def _drain(node: str, undo: bool, as_json: bool, coordinator: str) -> None:
    with client(coordinator) as c:
        view = c.drain(node, undo=undo)
    if as_json:
        emit_json(view)
    elif undo:
        typer.echo(f"{node}: undrained, takes new work")
    elif view.get("role") == "storage":
        left = view.get("drain_left", 0)
        typer.echo(f"{node}: drained; {left} objects still to copy elsewhere" if left
                   else f"{node}: drained; every object has its copies elsewhere: it may leave")
    else:
        typer.echo(f"{node}: drained; no new work ({view.get('busy', 0)} jobs still running)")


@node_app.command("drain")
def drain(node: str = typer.Argument(..., metavar="NODE", help="A compute or storage node id (weft nodes)."),
          as_json: bool = JsonOpt, coordinator: str = CoordOpt) -> None:
    """No new work on NODE (running jobs finish); a storage node's objects are copied to the others."""
    _drain(node, False, as_json, coordinator)


@node_app.command("undrain")
def undrain(node: str = typer.Argument(..., metavar="NODE", help="A compute or storage node id."),
            as_json: bool = JsonOpt, coordinator: str = CoordOpt) -> None:
    """Undo `weft node drain`: NODE takes new work again."""
    _drain(node, True, as_json, coordinator)
