"""Cleaning up: `weft delete JOB...` and `weft gc`."""

from __future__ import annotations

from typing import Any

import typer

from weft.actors.model import human_size

from .app import app
from .common import CoordOpt, JsonOpt, client, emit_json
from .durations import duration


def _freed_lines(r: dict[str, Any]) -> list[str]:
    lines = [
        f"jobs      {len(r['jobs'])} forgotten" + (f", {r['retained']} finished kept" if "retained" in r else ""),
        f"objects   {r['objects']} deleted on storage ({human_size(r['bytes'])} of outputs)",
        f"journal   {human_size(r['journal_before'])} -> {human_size(r['journal_after'])}"
        + (f" (compacted in {r['compact_seconds']:.3f}s)" if r.get("compact_seconds") else ""),
    ]
    if r.get("failed"):
        lines.append(f"failed    {len(r['failed'])} waiting job(s) that read them: {' '.join(r['failed'][:10])}")
    return lines


@app.command()
def delete(
    jobs: list[str] = typer.Argument(..., metavar="JOB", help="Finished jobs (ids, NAME or NAME@K)."),
    force: bool = typer.Option(False, "--force", help="Delete even if unfinished jobs read an output (they fail)."),
    as_json: bool = JsonOpt,
    coordinator: str = CoordOpt,
) -> None:
    """Forget finished jobs: record, attempts, log and outputs (refused while needed, unless --force)."""
    with client(coordinator) as c:
        r = c.delete(jobs, force=force)
    if as_json:
        emit_json(r)
        return
    for jid in r["jobs"]:
        typer.echo(f"deleted {jid}")
    for line in _freed_lines(r)[1:]:
        typer.echo(line)


@app.command()
def gc(
    keep: str = typer.Option(None, "--keep", metavar="DURATION", help="Forget finished jobs that ended longer ago than this (default: the coordinator's --keep, 7d unless set; 0 forgets every finished job nothing needs)."),
    as_json: bool = JsonOpt,
    coordinator: str = CoordOpt,
) -> None:
    """Forget finished jobs past their retention that nothing needs, with their objects; compact the journal."""
    keep_s = duration(keep, "--keep")
    with client(coordinator) as c:
        r = c.gc(keep_s)
    if as_json:
        emit_json(r)
        return
    for line in _freed_lines(r):
        typer.echo(line)
