"""`weft top`: nodes and running jobs, live, like htop (rich); plain aligned lines through a pipe."""

from __future__ import annotations

import sys
import time
from typing import Any

import typer

from .app import app
from .common import CoordOpt, client, fail

STATES = ("waiting", "runnable", "running", "succeeded", "failed", "cancelled")
STYLE = {"waiting": "dim", "runnable": "yellow", "running": "blue", "succeeded": "green", "failed": "red",
         "cancelled": "magenta"}


def snapshot(c: Any, limit: int) -> dict[str, Any]:
    """What one screen shows: counts, nodes, the running jobs (newest `limit`)."""
    return {"stats": c.stats(), "nodes": c.nodes(), "running": c.jobs(states=["running"], limit=limit),
            "time": time.time()}


def _secs(v: float | None) -> str:
    if v is None:
        return ""
    if v < 120:
        return f"{v:.1f}s"
    if v < 7200:
        return f"{v / 60:.1f}m"
    return f"{v / 3600:.1f}h"


def _node_rows(snap: dict[str, Any]) -> list[list[str]]:
    rows = []
    now = snap["time"]
    for n in sorted(snap["nodes"], key=lambda n: (n["role"], n["node"])):
        if n["role"] == "compute":
            use = f"{n.get('busy', 0)}/{n.get('slots', 0)} slots"
            if n.get("memory"):
                use += f", {n.get('memory_used', 0) / 2**30:.1f}/{n['memory'] / 2**30:.1f} GiB"
            state = "busy" if n.get("busy") else "idle"
        else:
            use = f"{n.get('objects', 0)} objects, {n.get('free', 0) / 2**30:.1f} GiB free"
            state = "ready"
        if n.get("drained"):
            state = "drained"
        if not n.get("ready"):
            state = "not ready"
        rows.append([n["node"], n["role"], n.get("host") or "", use, state,
                     _secs(max(0.0, now - n.get("last_seen", now))) + " ago"])
    return rows


def _job_rows(snap: dict[str, Any]) -> list[list[str]]:
    rows = []
    for j in reversed(snap["running"]):
        rows.append([j["job"], j.get("name") or "", j.get("node") or "", _secs(j.get("ran")),
                     str(j.get("attempts", ""))])
    return rows


def _summary(snap: dict[str, Any]) -> str:
    s = snap["stats"]
    counts = "  ".join(f"{k} {s['jobs'].get(k, 0)}" for k in STATES)
    return (f"weft top  {time.strftime('%H:%M:%S', time.localtime(snap['time']))}  slots {s['busy']}/{s['slots']}  "
            f"queue {s.get('runnable', 0)}  |  {counts}")


def plain(snap: dict[str, Any]) -> str:
    """The screen as aligned plain lines (for pipes and logs)."""
    out = [_summary(snap), ""]
    for title, head, rows in (
        ("NODES", ["NODE", "ROLE", "HOST", "USE", "STATE", "HEARD"], _node_rows(snap)),
        ("RUNNING", ["JOB", "NAME", "NODE", "RUNTIME", "TRIES"], _job_rows(snap)),
    ):
        out.append(f"{title} ({len(rows)})")
        widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
        for r in [head, *rows]:
            out.append("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def render(snap: dict[str, Any]) -> Any:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    s = snap["stats"]
    head = Text(f"weft top  {time.strftime('%H:%M:%S', time.localtime(snap['time']))}  ", style="bold")
    head.append(f"slots {s['busy']}/{s['slots']}  queue {s.get('runnable', 0)}   ")
    for k in STATES:
        head.append(f"{k} {s['jobs'].get(k, 0)}  ", style=STYLE[k])
    nodes = Table(title="nodes", title_justify="left", expand=True)
    for col in ("node", "role", "host", "use", "state", "heard"):
        nodes.add_column(col, no_wrap=True)
    for r in _node_rows(snap):
        nodes.add_row(*r[:4], Text(r[4], style={"busy": "blue", "not ready": "red", "drained": "yellow"}.get(r[4], "")),
                      r[5])
    jobs = Table(title=f"running ({len(snap['running'])})", title_justify="left", expand=True)
    for col in ("job", "name", "node", "runtime", "tries"):
        jobs.add_column(col, no_wrap=True)
    for r in _job_rows(snap):
        jobs.add_row(*r)
    return Group(head, nodes, jobs, Text("Ctrl-C to quit", style="dim"))


@app.command("top")
def top(
    interval: float = typer.Option(1.0, "--interval", "-n", metavar="SECONDS", help="Seconds between refreshes."),
    count: int = typer.Option(None, "--count", metavar="N",
                              help="Stop after N refreshes (default: until Ctrl-C on a terminal, 1 through a pipe)."),
    limit: int = typer.Option(200, "--limit", metavar="N", help="Running jobs shown at most (the newest)."),
    coordinator: str = CoordOpt,
) -> None:
    """Nodes and running jobs, live (like htop); through a pipe, plain aligned lines."""
    if not (interval > 0):
        fail(f"invalid --interval {interval}: expected seconds > 0")
    if count is not None and count < 1:
        fail(f"invalid --count {count}: expected 1 or more")
    tty = sys.stdout.isatty()
    if count is None:
        count = 0 if tty else 1
    with client(coordinator) as c:
        if not tty:
            n = 0
            while True:
                if n:
                    sys.stdout.write("\n")
                sys.stdout.write(plain(snapshot(c, limit)))
                sys.stdout.flush()
                n += 1
                if n >= count:
                    return
                time.sleep(interval)
        from rich.live import Live

        try:
            with Live(render(snapshot(c, limit)), screen=True, auto_refresh=False) as live:
                n = 1
                while not count or n < count:
                    time.sleep(interval)
                    live.update(render(snapshot(c, limit)), refresh=True)
                    n += 1
        except KeyboardInterrupt:
            pass
