"""Client commands: submit, status, wait, get, cancel, nodes, stats."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import typer

from weft.actors.model import JobSpec, SpecError, split_object_name

from .app import app
from .common import emit_json, fail

CoordOpt = typer.Option(None, "--coordinator", "-c", envvar="WEFT_COORDINATOR", help="Coordinator endpoint (default tcp://127.0.0.1:5570).")
JsonOpt = typer.Option(False, "--json", help="Machine-readable output on stdout.")


def client(endpoint: str | None, *, retry_for: float = 3.0):
    """A client that gives up within a few seconds when nobody answers."""
    from weft.actors.client import Client

    from .common import check_endpoint, coordinator_endpoint

    ep = check_endpoint(coordinator_endpoint(endpoint), "coordinator endpoint")
    return Client(ep, timeout=3.0, retry_for=retry_for)


def _parse_inputs(values: list[str]) -> tuple[dict[str, str], dict[str, str]]:
    immediate, refs = {}, {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name:
            fail(f"invalid --input {item!r}: expected NAME=VALUE or NAME=@OBJECT")
        if value.startswith("@"):
            try:
                split_object_name(value[1:])
            except SpecError as e:
                fail(f"invalid --input {item!r}: {e}")
            refs[name] = value[1:]
        else:
            immediate[name] = value
    return immediate, refs


def _state_line(st: dict[str, Any]) -> str:
    final = st.get("final", st)
    line = f"{st['job']}  {final['state']}"
    if final.get("outcome") and final["outcome"] != "success":
        line += f" ({final['outcome']})"
    if final is not st:
        line += f"  via {final['job']}"
    if final.get("cause") and final["state"] != "succeeded":
        line += f"  {final['cause']}"
    return line


@app.command(context_settings={"allow_interspersed_args": False})
def submit(
    command: list[str] = typer.Argument(None, help="The command and its arguments (after --)."),
    call: str = typer.Option(None, "--call", help="Run a Python callable module:function instead of a command."),
    file: Path = typer.Option(None, "--file", "-f", help="Submit a workflow file (TOML) of named jobs."),
    name: str = typer.Option(None, "--name", help="Job id to use instead of the spec's hash."),
    inputs: list[str] = typer.Option([], "--input", "-i", help="NAME=VALUE (immediate) or NAME=@OBJECT (an object)."),
    outputs: list[str] = typer.Option([], "--output", "-o", help="Output name (repeatable; default stdout or result)."),
    priority: int = typer.Option(0, "--priority", "-p", help="Higher runs first among equally needed jobs."),
    timeout: float = typer.Option(None, "--timeout", help="Seconds the job may run."),
    wait: bool = typer.Option(False, "--wait", "-w", help="Wait for the jobs; exit 0 only if all succeeded."),
    as_json: bool = JsonOpt,
    coordinator: str = CoordOpt,
) -> None:
    """Submit a job (or a workflow file) and print its id."""
    from weft.actors.flow import load_flow

    names: list[str | None]
    if file is not None:
        if command or call:
            fail("give either --file or a job (a command or --call), not both")
        try:
            flow = load_flow(file)
        except SpecError as e:
            fail(str(e))
        specs = [s for _, s in flow]
        names = [n for n, _ in flow]
    else:
        if bool(command) == bool(call):
            fail("give a command after -- (e.g. weft submit -- echo hi) or --call module:function")
        immediate, refs = _parse_inputs(inputs)
        try:
            spec = JobSpec(
                command=list(command) if command else None,
                call=call,
                inputs=immediate,
                refs=refs,
                outputs=list(outputs) or (["stdout"] if command else ["result"]),
                priority=priority,
                timeout=timeout,
                name=name,
            )
        except SpecError as e:
            fail(str(e))
        specs, names = [spec], [None]
    with client(coordinator) as c:
        futures = c.submit_specs(specs)
        records = [
            {"job": f.job, "name": n, "outputs": f.outputs, "cached": f.cached}
            for f, n in zip(futures, names, strict=True)
        ]
        if not wait:
            if as_json:
                emit_json({"jobs": records})
            else:
                for r in records:
                    typer.echo(f"{r['name']}\t{r['job']}" if r["name"] else r["job"])
            return
        statuses = _wait_with_progress(c, [f.job for f in futures], None, quiet=as_json)
    ok = all(s.get("final", s)["state"] == "succeeded" for s in statuses)
    if as_json:
        emit_json({"jobs": [dict(r, status=s) for r, s in zip(records, statuses, strict=True)], "ok": ok})
    else:
        for r, s in zip(records, statuses, strict=True):
            typer.echo((f"{r['name']}\t" if r["name"] else "") + _state_line(s))
    raise typer.Exit(0 if ok else 1)


def _wait_with_progress(c: Any, jobs: list[str], timeout: float | None, *, quiet: bool) -> list[dict]:
    """Wait for all jobs; a progress bar on stderr when there are many."""
    if len(jobs) < 5 or quiet or not sys.stderr.isatty():
        try:
            return c.wait(jobs, timeout=timeout)
        except TimeoutError as e:
            fail(str(e), code=3)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    deadline = None if timeout is None else time.monotonic() + timeout
    done: dict[str, dict] = {}
    with Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), transient=True, console=_stderr_console()) as bar:
        t = bar.add_task("jobs", total=len(jobs))
        while len(done) < len(jobs):
            pending = [j for j in jobs if j not in done]
            step = 1.0 if deadline is None else max(0.0, min(1.0, deadline - time.monotonic()))
            r = c.call("wait", {"jobs": pending, "timeout": step}, timeout=step + 5)
            for st in r["jobs"]:
                if st.get("final", st)["state"] in ("succeeded", "failed", "cancelled"):
                    done[st["job"]] = st
            bar.update(t, completed=len(done))
            if deadline is not None and time.monotonic() >= deadline and len(done) < len(jobs):
                fail(f"{len(jobs) - len(done)} of {len(jobs)} jobs still unfinished after {timeout:g}s", code=3)
    return [done[j] for j in jobs]


def _stderr_console():
    from rich.console import Console

    return Console(stderr=True)


@app.command()
def status(
    job: str = typer.Argument(None, help="A job id (default: recent jobs)."),
    limit: int = typer.Option(20, "--limit", help="How many recent jobs to list."),
    as_json: bool = JsonOpt,
    coordinator: str = CoordOpt,
) -> None:
    """State, outcome, node, waited/ran times and cause of jobs."""
    with client(coordinator) as c:
        if job:
            st = c.status([job])[0]
            if as_json:
                emit_json(st)
                return
            for key in ("job", "name", "state", "outcome", "node", "waited", "ran", "attempts", "cause", "delegate", "parent", "outputs"):
                if key in st:
                    v = st[key]
                    if key in ("waited", "ran"):
                        v = f"{v:.3f}s"
                    elif isinstance(v, list):
                        v = ", ".join(v)
                    typer.echo(f"{key:9} {v}")
            if "final" in st:
                typer.echo(f"{'final':9} {_state_line(st['final'])}")
            return
        r = c.call("status", {"limit": limit})
        if as_json:
            emit_json(r)
            return
        counts = ", ".join(f"{k} {v}" for k, v in sorted(r.get("counts", {}).items())) or "no jobs"
        typer.echo(counts)
        for st in r["jobs"]:
            typer.echo(_state_line(st))


@app.command("wait")
def wait_cmd(
    jobs: list[str] = typer.Argument(..., help="Job ids."),
    timeout: float = typer.Option(None, "--timeout", help="Give up after this many seconds (exit 3)."),
    as_json: bool = JsonOpt,
    coordinator: str = CoordOpt,
) -> None:
    """Wait for jobs; exit 0 only if all succeeded (1 if any failed, 3 on timeout)."""
    if timeout is not None and timeout < 0:
        fail(f"invalid --timeout {timeout}: expected a number of seconds >= 0")
    # While waiting, a restarting coordinator is retried for as long as the user waits.
    with client(coordinator, retry_for=timeout if timeout is not None else 3600.0) as c:
        statuses = _wait_with_progress(c, jobs, timeout, quiet=as_json)
    ok = all(s.get("final", s)["state"] == "succeeded" for s in statuses)
    if as_json:
        emit_json({"jobs": statuses, "ok": ok})
    else:
        for s in statuses:
            typer.echo(_state_line(s))
    raise typer.Exit(0 if ok else 1)


@app.command()
def get(
    obj: str = typer.Argument(..., metavar="OBJECT", help="JOB/OUTPUT, or JOB for its main output."),
    output: Path = typer.Option(None, "--output", "-o", help="Write to this file instead of stdout."),
    wait: bool = typer.Option(False, "--wait", "-w", help="Wait for the object's producer to finish."),
    timeout: float = typer.Option(None, "--timeout", help="With --wait: give up after this many seconds."),
    coordinator: str = CoordOpt,
) -> None:
    """Print (or save) an object's bytes."""
    with client(coordinator) as c:
        name = obj
        if "/" not in obj:
            st = c.status([obj])[0]
            outs = [o.split("/", 1)[1] for o in st["outputs"]]
            main = next((o for o in ("result", "stdout") if o in outs), outs[0] if outs else None)
            if main is None:
                fail(f"job {obj} has no outputs")
            name = f"{obj}/{main}"
        try:
            split_object_name(name)
        except SpecError as e:
            fail(str(e))
        where = c.locate(name)
        if where["state"] != "finished":
            producer = where.get("producer") or {}
            if not wait:
                fail(f"object {name} is not finished (state {where['state']}; producer {producer.get('state', 'unknown')}); use --wait")
            st = c.wait([producer.get("job") or name.split("/", 1)[0]], timeout=timeout)[0]
            final = st.get("final", st)
            if final["state"] != "succeeded":
                fail(f"object {name} will not be produced: {_state_line(st)}", code=1)
        if output is None:
            out = sys.stdout.buffer
            c.get_to(name, out.write)
            out.flush()
        else:
            try:
                with open(output, "wb") as f:
                    size = c.get_to(name, f.write)
            except OSError as e:
                fail(f"cannot write {output}: {e.strerror}")
            typer.echo(f"wrote {size} bytes to {output}", err=True)


@app.command()
def cancel(
    jobs: list[str] = typer.Argument(..., help="Job ids."),
    as_json: bool = JsonOpt,
    coordinator: str = CoordOpt,
) -> None:
    """Cancel jobs (running tasks are stopped; dependents fail)."""
    with client(coordinator) as c:
        r = c.cancel(jobs)
    if as_json:
        emit_json({"jobs": r})
    else:
        for st in r:
            typer.echo(_state_line(st))


@app.command()
def nodes(as_json: bool = JsonOpt, coordinator: str = CoordOpt) -> None:
    """The nodes the coordinator knows: role, endpoint, slots, busy, objects, last seen."""
    with client(coordinator) as c:
        ns = c.nodes()
    if as_json:
        emit_json({"nodes": ns})
        return
    now = time.time()
    typer.echo(f"{'role':8} {'node':16} {'endpoint':26} {'slots':>5} {'busy':>4} {'objects':>7} {'seen':>6}")
    for n in sorted(ns, key=lambda n: (n["role"], n["node"])):
        typer.echo(
            f"{n['role']:8} {n['node']:16} {n['endpoint']:26} {n.get('slots', ''):>5} {n.get('busy', ''):>4} "
            f"{n.get('objects', ''):>7} {now - n['last_seen']:>5.1f}s"
        )


@app.command()
def stats(as_json: bool = JsonOpt, coordinator: str = CoordOpt) -> None:
    """Cluster counters: jobs by state, slots, dispatches, failures."""
    with client(coordinator) as c:
        s = c.stats()
    if as_json:
        emit_json(s)
        return
    for k, v in s.items():
        if isinstance(v, dict):
            v = ", ".join(f"{a} {b}" for a, b in sorted(v.items())) or "-"
        elif isinstance(v, float):
            v = f"{v:.3f}"
        typer.echo(f"{k:14} {v}")
