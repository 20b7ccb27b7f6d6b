"""`weft bench`: weft next to Dask and Ray on this machine, in one run (see bench/runner.py)."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import typer

from .app import app
from .common import fail


@app.command()
def bench(
    smoke: bool = typer.Option(False, "--smoke", help="Every workload at a tenth of its size or less, one run each."),
    json_file: Path = typer.Option(None, "--json", metavar="FILE", help="Also write the machine and every result to this JSON file."),
    peers: str = typer.Option(None, "--peers", metavar="dask,ray", help="Also run the workloads on these systems, one after the other: dask, ray (both from the `weft[bench]` extra)."),
    workloads: str = typer.Option(None, "--workloads", metavar="NAME,...", help="Comma-separated subset: throughput, chain, roundtrip, fanout, commands, handoff, handoff-cross, submit, memory, startup, responsive, dispatch."),
) -> None:
    """Benchmark a fresh local cluster (2 compute x 1 slot, 2 storage); median of 3 runs per workload.

    With --peers, the table shows each peer, the best of them and weft's ratio
    to it (and to Dask); `roundtrip` (the raw pyzmq round trip, the floor of a
    `chain` hop) is measured in the same run."""
    from weft.bench import runner

    try:
        names = runner.parse_workloads(workloads)
    except ValueError as e:
        fail(str(e))
    systems = ["weft"]
    for p in (peers or "").split(","):
        p = p.strip().lower()
        if not p:
            continue
        if p not in runner.PEERS:
            fail(f"unknown peer {p!r}: choose from {', '.join(runner.PEERS)}")
        if p not in systems:
            systems.append(p)
    if "dask" in systems:
        from weft.bench import dask_peer

        if not dask_peer.available():
            fail(f"--peers dask needs Dask, which is not installed: {dask_peer.INSTALL_HINT}")
    if "ray" in systems:
        from weft.bench import ray_peer

        if not ray_peer.available():
            fail(f"--peers ray needs Ray, which is not installed: {ray_peer.INSTALL_HINT}")
    if json_file is not None and not json_file.parent.exists():
        fail(f"cannot write {json_file}: directory {json_file.parent} does not exist")

    plan = runner.Plan(workloads=names, systems=systems, smoke=smoke)
    # SIGTERM stops the clusters the way Ctrl-C does.
    previous = signal.signal(signal.SIGTERM, _sigterm)
    try:
        with _RichProgress() as progress:
            results = runner.run_plan(plan, progress)
    except KeyboardInterrupt:
        # The runner's finally blocks have stopped every cluster by now.
        typer.echo("weft bench: interrupted; every cluster it started is stopped", err=True)
        raise typer.Exit(130) from None
    finally:
        signal.signal(signal.SIGTERM, previous)

    _print_table(plan, results)
    if json_file is not None:
        try:
            runner.write_json(json_file, runner.report(plan, results))
        except OSError as e:
            fail(f"cannot write {json_file}: {e.strerror or e}", code=1)
    if any(r.error is not None for r in results):
        raise typer.Exit(1)


def _sigterm(*_: object) -> None:
    raise KeyboardInterrupt()


class _RichProgress:
    """runner.Progress drawn as a rich progress bar on stderr."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.console = Console(stderr=True)
        self.bar = Progress(TextColumn("{task.description:<34}"), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), console=self.console, transient=False)
        self.task = self.bar.add_task("weft bench", total=None)

    def __enter__(self) -> _RichProgress:
        self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.update(self.task, description="done" if exc[0] is None else "stopped")
        self.bar.stop()

    def begin(self, total: int) -> None:
        self.bar.update(self.task, total=total, completed=0)

    def step(self, label: str) -> None:
        self.bar.update(self.task, description=label)
        if not self.console.is_terminal:
            # No live bar in a log: one line per step instead.
            self.console.print(f"weft bench: {label}", highlight=False)

    def advance(self, n: int = 1) -> None:
        self.bar.advance(self.task, n)

    def warn(self, message: str) -> None:
        self.bar.console.print(f"[red]failed[/red] {message}", markup=True, highlight=False)


def _print_table(plan: object, results: list) -> None:
    from rich.console import Console
    from rich.table import Table

    from weft.bench import runner

    peers = [s for s in plan.systems if s != "weft"]
    by = {(r.workload, r.system): r for r in results}
    mode = "smoke, 1 run" if plan.smoke else f"median of {plan.runs} runs"
    table = Table(title=f"weft bench ({mode})", title_justify="left")
    table.add_column("workload")
    table.add_column("unit")
    table.add_column("better")
    table.add_column("weft", justify="right")
    for p in peers:
        table.add_column(p, justify="right")
    if "dask" in peers and len(peers) > 1:
        table.add_column("weft/dask", justify="right")
    if peers:
        table.add_column("best peer")
        table.add_column("weft/best", justify="right")
        table.add_column("winner")

    def ratio(x: float | None) -> str:
        return "-" if x is None else f"{x:.2f}x"

    for w in plan.workloads:
        spec = runner.WORKLOADS[w]
        if w in runner.TRANSPORT:
            # Not a system of its own in the comparison: the floor under `chain`.
            r = by[(w, runner.TRANSPORT_SYSTEM)]
            table.add_row(f"  {w} ({r.system})", spec.unit, spec.better, runner.format_result(r),
                          *[""] * (len(table.columns) - 4))
            continue
        weft = by[(w, "weft")]
        row = [w, spec.unit, spec.better, runner.format_result(weft)]
        row += [runner.format_result(by[(w, p)]) for p in peers]
        if "dask" in peers and len(peers) > 1:
            row.append(ratio(weft.extra.get("vs_dask")))
        if peers:
            row += [weft.extra.get("best_peer") or "-", ratio(weft.extra.get("vs_best_peer")),
                    weft.extra.get("winner") or "-"]
        table.add_row(*row)
    console = Console(file=sys.stdout, width=max(100, Console(file=sys.stdout).width), highlight=False)
    console.print(table)
    chain = by.get(("chain", "weft"))
    if chain is not None and chain.extra.get("vs_roundtrip"):
        console.print(f"  chain (weft): a hop is {chain.extra['vs_roundtrip']:.1f} raw pyzmq round trips of this run")
    for r in results:
        for note in r.notes:
            console.print(f"  {r.workload} ({r.system}): {note}")
        if r.error is not None:
            console.print(f"  {r.workload} ({r.system}) error: {r.error}")
