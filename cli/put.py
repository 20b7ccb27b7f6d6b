"""`weft put PATH`: store a local file or directory tree as a content-named object."""

from __future__ import annotations

from pathlib import Path

import typer

from weft.actors.model import SpecError

from .app import app
from .common import CoordOpt, client, emit_json, fail


@app.command()
def put(
    path: Path = typer.Argument(..., metavar="PATH", help="A file or a directory."),
    replicas: int = typer.Option(1, "--replicas", min=1, metavar="N", help="Storage nodes to write it to at once (then the coordinator keeps it at its own --replicas copies, like every object)."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output on stdout."),
    coordinator: str = CoordOpt,
) -> None:
    """Store PATH by its content and print its name (sha256-...), usable as
    an input: --input NAME=@sha256-... . Bytes go straight to storage in
    chunks; the same content put twice is stored once. A directory keeps its
    structure, the executable bit and symlinks that stay inside it."""
    from weft.actors.trees import scan


    try:
        s = scan(path)
    except SpecError as e:
        fail(str(e))
    with client(coordinator) as c:
        try:
            c.put_scans([s], replicas=replicas)
        except SpecError as e:
            fail(str(e))
    if as_json:
        emit_json({"name": s.name, "object": s.obj, "kind": "tree" if path.is_dir() else "file",
                   "files": len(s.blobs)})
    else:
        typer.echo(s.name)
