"""`weft logs JOB`: a job's stdout and stderr, interleaved as written."""

from __future__ import annotations

import sys

import typer

from .app import app
from .common import CoordOpt, client, fail


@app.command()
def logs(
    job: str = typer.Argument(..., metavar="JOB", help="A job id, or FLOW:NAME (a job of a flow file's newest submission)."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing lines as the job writes them, until it ends."),
    tail: int = typer.Option(None, "--tail", "-n", metavar="N", help="Only the last N lines (then follow, with --follow)."),
    coordinator: str = CoordOpt,
) -> None:
    """Print a job's log: its stdout and stderr as written (kept after the job ends, whatever its outcome)."""
    if tail is not None and tail < 0:
        fail(f"invalid --tail {tail}: expected a number of lines >= 0")
    out = sys.stdout.buffer
    # Following may take as long as the job runs: a restarting coordinator is waited for.
    with client(coordinator, retry_for=3600.0 if follow else 3.0) as c:
        if ":" in job:  # FLOW:JOB: that job of the flow's newest submission
            job = c.status([job])[0]["job"]
        offset = 0
        if tail is not None or not follow:
            data = c.logs(job)
            offset = len(data)
            if tail is not None:
                data = _last_lines(data, tail)
            out.write(data)
            out.flush()
            if not follow:
                return
        for chunk in c.logs(job, follow=True, offset=offset):
            out.write(chunk)
            out.flush()


def _last_lines(data: bytes, n: int) -> bytes:
    if n == 0:
        return b""
    lines = data.splitlines(keepends=True)
    return b"".join(lines[-n:])
