"""Cleaning up: `weft delete JOB...`, `weft gc` and `weft prune`."""

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


@app.command()
def prune(
    keep_recent: str = typer.Option("1h", "--keep-recent", metavar="DURATION",
                                    help="Keep content objects finished this recently even if nothing refers to them "
                                         "(a build may be putting files now); 0: delete every one nothing refers to."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Say what would be deleted; delete nothing."),
    as_json: bool = JsonOpt,
    coordinator: str = CoordOpt,
) -> None:
    """Delete content objects (weft put, @./path inputs, directory outputs' files) that no job the
    coordinator keeps, no recurring job and no exit action refers to. An admin's call: `weft gc`
    forgets old jobs first, and what only they referred to goes here."""
    recent = duration(keep_recent, "--keep-recent")
    with client(coordinator) as c:
        r = c.prune(3600.0 if recent is None else recent, dry_run=dry_run)
    if as_json:
        emit_json(r)
        return
    verb = "would be deleted" if r["dry_run"] else "deleted"
    typer.echo(f"objects   {r['objects']} content objects {verb} ({human_size(r['bytes'])})")
    typer.echo(f"kept      {r['referenced']} referred to")
    if r["skipped"]:
        typer.echo(f"skipped   storage nodes not ready, their copies stay: {' '.join(r['skipped'])}")
    if r["dry_run"]:
        # Here, not at the top: `weft --help` imports no bus and no trio.
        from weft.actors.trees import short_name

        for name in r["names"]:
            typer.echo(short_name(name))
