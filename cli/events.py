"""`weft events`: job ends as they happen, for an outside scheduler.

Reads the coordinator's own event queue (the `poll` op every node serves,
bus/events.py): each `job-end` event is a job that succeeded, failed or was
cancelled, with its parameters and an estimate of what still fits by size
class (the same estimate try-submit answers)."""

from __future__ import annotations

import time
from typing import Any

import typer

from weft.protocol.events import Poll, PollReply
from weft.protocol.submission import JOB_END, JobEnd

from .app import app
from .common import CoordOpt, JsonOpt, client, emit_json

# A long poll waits this long for the next event before asking again.
FOLLOW_POLL = 30.0


def _line(e: JobEnd) -> str:
    params = " ".join(f"{k}={v}" for k, v in sorted((e.parameters or {}).items()))
    slots = " ".join(f"{k}={v}" for k, v in (e.slots or {}).items())
    stamp = time.strftime("%H:%M:%S", time.localtime(e.finished))
    return "  ".join(x for x in (stamp, e.state, e.job, e.code or "", params, f"fits: {slots}" if slots else "") if x)


@app.command()
def events(
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing job ends as they happen (Ctrl-C to stop)."),
    as_json: bool = JsonOpt,
    coordinator: str = CoordOpt,
) -> None:
    """Job ends (succeeded, failed, cancelled) with their parameters and what still fits.

    Without --follow: the recent ends the coordinator still holds. With
    --json: one JSON object per line."""
    since, inc = 0, None
    with client(coordinator, retry_for=3600.0 if follow else 3.0) as c:
        while True:
            timeout = FOLLOW_POLL if follow and inc is not None else 0.0
            body: dict[str, Any] = Poll(since, timeout, inc).to_wire()
            r = PollReply.from_wire(c.call("poll", body, timeout=timeout + 10))
            if r.resync and inc is not None:
                typer.echo("weft: note: the coordinator restarted or events were missed", err=True)
            for _, kind, data in r.events:
                if kind != JOB_END:
                    continue
                e = JobEnd.from_wire(data)
                if as_json:
                    emit_json(e.to_wire(), one_line=True)
                else:
                    typer.echo(_line(e))
            since, inc = r.next, r.inc
            if not follow:
                return
