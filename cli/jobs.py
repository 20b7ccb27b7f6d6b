"""Client commands: submit, status, wait, get, cancel, nodes, stats."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import typer

from weft.actors.model import JobSpec, SpecError, split_object_name

from .app import app
from .common import CoordOpt, JsonOpt, client, emit_json, fail
from .durations import duration
from .show import (
    DONE,
    PRINT_LIMIT,
    attempt_lines,
    final_of,
    paused_text,
    printable,
    resubmission_line,
    state_line,
    status_lines,
    tail_lines,
    when,
    why_not,
)

# `weft wait` on a terminal: one bar per job up to this many, one summary bar for more.
BARS = 5


def _parse_inputs(values: list[str]) -> tuple[dict[str, str], dict[str, str]]:
    immediate: dict[str, str] = {}
    refs: dict[str, str] = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name:
            fail(f"invalid --input {item!r}: expected NAME=VALUE or NAME=@OBJECT")
        if name in immediate or name in refs:
            fail(f"--input {name} is given twice: give each input once")
        if value.startswith("@"):
            from weft.actors.localinputs import local_ref
            from weft.actors.trees import object_of

            try:
                # @./path, @../path, @/path: a local file or tree, by its content.
                ref = local_ref(value[1:], Path.cwd()) or object_of(value[1:])
                split_object_name(ref)
            except SpecError as e:
                fail(f"invalid --input {item!r}: {e}")
            refs[name] = ref
        else:
            immediate[name] = value
    return immediate, refs


@app.command(context_settings={"allow_interspersed_args": False})
def submit(
    command: list[str] = typer.Argument(None, metavar="COMMAND", help="The command and its arguments (after --)."),
    call: str = typer.Option(None, "--call", metavar="MODULE:FUNCTION", help="Run a Python callable instead of a command."),
    file: Path = typer.Option(None, "--file", "-f", metavar="FILE", help="Submit a workflow file (TOML) of named jobs."),
    name: str = typer.Option(None, "--name", metavar="JOB", help="Job id to use instead of the spec's hash (refused if the name is taken by other work, unless --replace)."),
    replace: bool = typer.Option(False, "--replace", help="A --name taken by other work gets a new version (NAME@2, ...; NAME means the newest)."),
    inputs: list[str] = typer.Option([], "--input", "-i", metavar="NAME=VALUE", help="An immediate input; NAME=@JOB/OUTPUT or NAME=@sha256-... to read an object; NAME=@./PATH (or @../PATH, @/PATH) to put a local file or directory and read it by its content (repeatable)."),
    secret: list[str] = typer.Option([], "--secret", metavar="NAME=VALUE", help="A secret input: environment variable NAME of a command job, never written in clear by weft (not in the journal, logs or status); NAME=@FILE reads the value from FILE (repeatable; with --file, added to the flow file's [secrets] NAME = \"@FILE\"; docs/security.md)."),
    outputs: list[str] = typer.Option([], "--output", metavar="NAME", help="Output name (repeatable; default stdout or result)."),
    output_dirs: list[str] = typer.Option([], "--output-dir", metavar="NAME", help="A directory output: everything the command writes under $WEFT_OUTPUTS/NAME/ is kept as a tree, with modes (repeatable)."),
    priority: int = typer.Option(0, "--priority", "-p", metavar="N", help="Higher runs first among equally needed jobs."),
    time_limit: str = typer.Option(None, "--time-limit", metavar="DURATION", help="How long the job may run before it is stopped (90, 90s, 30m, 2h, 7d)."),
    old_timeout: str = typer.Option(None, "--timeout", hidden=True, metavar="DURATION"),
    groups: list[str] = typer.Option([], "--group", "-g", metavar="NAME", help="Label the job with a group (repeatable): weft group, weft cancel --group, weft pause --group."),
    after: list[str] = typer.Option([], "--after", metavar="JOB", help="Start only once this job succeeded (repeatable; no data passed)."),
    after_groups: list[str] = typer.Option([], "--after-group", metavar="NAME", help="Start only once every member of this group (as of this submit) succeeded (repeatable)."),
    cancel_time: str = typer.Option(None, "--max-cancellation-time", metavar="DURATION", help="When cancelled, how long the command gets between SIGTERM and SIGKILL (default 10s)."),
    retries: int = typer.Option(0, "--retries", metavar="N", help="Retry the job's own failures (non-zero exit, crash, time limit) up to N times."),
    retry_delay: str = typer.Option(None, "--retry-delay", metavar="DURATION", help="Wait before the first retry (default 1s), twice as long before each next one."),
    pending_timeout: str = typer.Option(None, "--pending-timeout", metavar="DURATION", help="Fail (code pending-timeout) if not started within this long."),
    on_exit: list[str] = typer.Option([], "--on-exit", metavar="WHEN=ACTION", help="WHEN an exit code, timed-out or crashed; ACTION succeed, fail, retry or submit:FLOW.toml (repeatable)."),
    cpus: int = typer.Option(None, "--cpus", "--slots", metavar="N", help="CPUs the job takes on its node (default 1)."),
    memory: str = typer.Option(None, "--memory", metavar="SIZE", help="Memory the job may use, e.g. 512M, 4G: it starts only where that is free, and is killed (memory-limit) past it."),
    size: str = typer.Option(None, "--size", metavar="CLASS", help="Memory by class: tiny 32M, small 128M, medium 256M, large 1G."),
    host: str = typer.Option(None, "--host", metavar="NAME", help="Run only on this host (host name or node id; local: this machine)."),
    prefer_host: str = typer.Option(None, "--prefer-host", metavar="NAME", help="Run on this host if it has room, else anywhere."),
    node: str = typer.Option(None, "--node", metavar="NODE_ID", help="Run only on this compute node."),
    job_class: str = typer.Option(None, "--class", metavar="CLASS", help="batch (default: waits for room) or workorder (starts at once, even overcommitting)."),
    deadline: str = typer.Option(None, "--deadline", metavar="TIME", help="Wanted end (ISO time or +30m): earlier deadlines go first; past it the job is flagged late."),
    wait: bool = typer.Option(False, "--wait", "-w", help="Wait for the jobs; print a single job's output; exit 0 only if all succeeded."),
    fail_fast: bool = typer.Option(False, "--fail-fast", help="With --file: the first job to fail cancels the file's jobs still queued or running (default: the others run on, like make -k)."),
    max_spawns: int = typer.Option(None, "--max-spawns", metavar="N", help="On a root job: how many jobs (retries included) its tree may spawn; past it a submit fails (spawn-limit)."),
    allow: list[str] = typer.Option([], "--allow", metavar="WHEN", help="Start only within this time window, coordinator's time (e.g. 'Mon-Fri 18:00-08:00'; repeatable)."),
    deny: list[str] = typer.Option([], "--deny", metavar="WHEN", help="Never start within this time window (e.g. 'Sat-Sun'; repeatable)."),
    block: list[str] = typer.Option([], "--block", metavar="PATH", help="Start the command only once PATH exists on its compute node (repeatable; the wait shows as its progress)."),
    every: str = typer.Option(None, "--every", metavar="DURATION", help="A recurring job (needs --name): a new instance NAME.1, NAME.2, ... each period, a period skipped while the last one runs; weft recurring ls|delete."),
    no_queue: bool = typer.Option(False, "--no-queue", help="Try-submit: start only what can start now, keep nothing else; print started, rejected and what still fits."),
    as_json: bool = JsonOpt,
    coordinator: str = CoordOpt,
) -> None:
    """Submit a job (or a workflow file) and print its id (a file's: NAME<tab>ID per job)."""
    from weft.actors.flow import load_named_flow, parse_on_exit
    from weft.actors.localinputs import collecting
    from weft.actors.resources import placement_fields

    if old_timeout is not None:
        if time_limit is not None:
            fail("give --time-limit only (--timeout is its deprecated name)")
        typer.echo("weft: note: submit --timeout is deprecated: use --time-limit (how long the job may run)", err=True)
        time_limit = old_timeout
    limit_s = duration(time_limit, "--timeout" if old_timeout is not None else "--time-limit")
    cancel_s = duration(cancel_time, "--max-cancellation-time")
    delay_s = duration(retry_delay, "--retry-delay")
    pending_s = duration(pending_timeout, "--pending-timeout")
    try:
        placed = placement_fields(cpus=cpus, memory=memory, size=size, host=host, prefer_host=prefer_host,
                                  node=node, job_class=job_class, deadline=deadline)
    except SpecError as e:
        fail(str(e).replace("invalid memory", "invalid --memory").replace("invalid deadline", "invalid --deadline"))
    names: list[str | None]
    if file is not None:
        if command or call:
            fail("give either --file or a job (a command or --call), not both")
        if after or after_groups:
            # They are identity: the file's jobs' ids (which its refs use) would change.
            fail("--after and --after-group go in the workflow file (after = [...], after_groups = [...])")
        if retries or retry_delay or pending_timeout or on_exit:
            fail("--retries, --retry-delay, --pending-timeout and --on-exit are set per job in a workflow file")
        try:
            with collecting() as local_files:
                flow_name, flow = load_named_flow(file)
        except SpecError as e:
            fail(str(e))
        specs = [s for _, s in flow]
        names = [n for n, _ in flow]
        for s in specs:  # the command line's add to (or set) the file's
            s.groups = list(dict.fromkeys([*s.groups, *groups])) or ()
            if cancel_s is not None:
                s.cancel_time = cancel_s
            for k, v in placed.items():
                setattr(s, k, v)
            try:
                s.validate()
            except SpecError as e:
                fail(str(e))
    else:
        if fail_fast:
            fail("--fail-fast applies to the jobs of a workflow file: give --file FLOW.toml")
        flow_name = None
        if command and call:
            fail(f"give either --call {call} or a command ({command[0]} ...), not both")
        if not command and not call:
            fail("give a command after -- (e.g. weft submit -- echo hi) or --call module:function")
        with collecting() as local_files:
            immediate, refs = _parse_inputs(inputs)
        try:
            spec = JobSpec(
                command=list(command) if command else None,
                call=call,
                inputs=immediate,
                refs=refs,
                outputs=[*outputs, *(d for d in output_dirs if d not in outputs)]
                or (["stdout"] if command else ["result"]),
                dirs=list(dict.fromkeys(output_dirs)) or (),
                priority=priority,
                timeout=limit_s,
                name=name,
                groups=list(groups) or (),
                cancel_time=cancel_s,
                after=list(after) or (),
                after_groups=list(after_groups) or (),
                retries=retries,
                retry_delay=delay_s,
                pending_timeout=pending_s,
                on_exit=parse_on_exit(on_exit, Path.cwd()) if on_exit else None,
                **placed,
            )
        except SpecError as e:
            fail(str(e))
        specs, names = [spec], [None]
    from .secrets import file_secrets, parse_secrets
    from .submission import apply_options, try_submit

    secrets = parse_secrets(secret) if file is None else file_secrets(file, parse_secrets(secret))
    if secrets and (every is not None or no_queue):
        fail("secret inputs (--secret, a flow file's [secrets]) go with queued jobs: not with --every or --no-queue")
    apply_options(specs, max_spawns, allow, deny, block)
    if no_queue and (wait or every is not None):
        fail("--no-queue answers at once: give it without --wait or --every")
    with client(coordinator) as c:
        if local_files:  # @./path inputs: stored before the jobs that read them
            try:
                c.put_scans(local_files.values())
            except SpecError as e:
                fail(str(e))
        if no_queue:
            try_submit(c, specs, replace, as_json)
        if every is not None:
            from .recurring import define

            return define(c, specs, duration(every, "--every"), wait or no_queue or file is not None, as_json)
        if file is not None:  # jobs keyed by the files they read last time ($WEFT_DEPFILE)
            from weft.actors.depcache import submit_flow

            futures = submit_flow(c, file, flow, local_files, replace=replace, fail_fast=fail_fast,
                                  flow_name=flow_name, secret_inputs=secrets)
        else:
            futures = c.submit_specs(specs, replace=replace, secret_inputs=secrets)
        records = [
            {"job": f.job, "name": n, "outputs": f.outputs, "cached": f.cached, "joined": f.joined, "differs": f.differs}
            for f, n in zip(futures, names, strict=True)
        ]
        if flow_name:
            for r in records:
                r["flow"] = flow_name
        _report_existing(c, futures, specs, names)
        if not wait:
            if as_json:
                emit_json({"jobs": records})
            else:
                for r in records:
                    typer.echo(f"{r['name']}\t{r['job']}" if r["name"] else r["job"])
            return
        statuses = _wait_with_progress(c, [f.job for f in futures], None, quiet=as_json)
        ok = all(final_of(s)["state"] == "succeeded" for s in statuses)
        if as_json:
            emit_json({"jobs": [dict(r, status=s) for r, s in zip(records, statuses, strict=True)], "ok": ok})
        elif file is None:
            if not ok:
                fail(why_not(statuses[0]), code=1)
            _print_main_output(c, futures[0])
        else:
            for r, s in zip(records, statuses, strict=True):
                typer.echo((f"{r['name']}\t" if r["name"] else "") + state_line(s))
                for line in tail_lines(final_of(s), 6, "    "):
                    typer.echo(line)
    raise typer.Exit(0 if ok else 1)


def _report_existing(c: Any, futures: list[Any], specs: list[JobSpec], names: list[str | None]) -> None:
    """One line on stderr for a job that already existed; for a workflow
    file, a line per job whose settings were not applied and a count."""
    existing = [(f, s, n) for f, s, n in zip(futures, specs, names, strict=True) if f.cached or f.joined]
    if not existing:
        return
    with_differs = [e for e in existing if e[0].differs]
    kept = {st["job"]: st for st in c.status([f.job for f, _, _ in with_differs])} if with_differs else {}
    if len(specs) > 1:
        for f, s, n in with_differs:
            state = "succeeded" if f.cached else "queued or running"
            typer.echo(resubmission_line(f.job, state, f.differs, s, kept.get(f.job), label=f"{n}: "), err=True)
        done = sum(f.cached for f, _, _ in existing)
        typer.echo(f"{len(existing)} of {len(specs)} jobs already existed ({done} finished, "
                   f"{len(existing) - done} queued or running): not run again", err=True)
        return
    f, s, _ = existing[0]
    state = "succeeded" if f.cached else (kept.get(f.job) or c.status([f.job])[0])["state"]
    typer.echo(resubmission_line(f.job, state, f.differs, s, kept.get(f.job)), err=True)


def _print_main_output(c: Any, future: Any) -> None:
    """A succeeded job's main output on stdout when it is text of a sensible
    size; otherwise how to fetch it."""
    if not future.outputs:
        return
    key = future.key
    buf = bytearray()

    class _Enough(Exception):
        pass

    def collect(chunk: bytes) -> None:
        buf.extend(chunk)
        if len(buf) > PRINT_LIMIT:
            raise _Enough

    from weft.actors.trees import TreeError

    try:
        c.get_to(key, collect)
    except _Enough:
        typer.echo(f"weft: output {key} is over {PRINT_LIMIT // 1024} KiB: weft get {future.job} -o FILE", err=True)
        return
    except TreeError:
        typer.echo(f"weft: output {key} is a directory tree: weft get {key} -o DIR", err=True)
        return
    text = printable(bytes(buf))
    if text is None:
        typer.echo(f"weft: output {key} is binary ({len(buf)} bytes): weft get {future.job} -o FILE", err=True)
        return
    sys.stdout.write(text)
    sys.stdout.flush()


def _wait_with_progress(c: Any, jobs: list[str], timeout: float | None, *, quiet: bool) -> list[dict]:
    """Wait for all jobs. On a terminal: one bar per job with its reported
    progress for up to BARS jobs, one summary bar (counts by state, ETA) for
    more; otherwise (or with --json) no display, the caller prints plain lines."""
    if quiet or not sys.stderr.isatty():
        try:
            return c.wait(jobs, timeout=timeout)
        except TimeoutError as e:
            fail(str(e), code=3)
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    few = len(set(jobs)) <= BARS
    deadline = None if timeout is None else time.monotonic() + timeout
    done: dict[str, dict] = {}
    latest: dict[str, dict] = {}
    columns = ([TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[note]}")] if few else
               [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                TextColumn("eta"), TimeRemainingColumn()])
    with Progress(*columns, transient=True, console=_stderr_console()) as bar:
        if few:
            bars = {j: bar.add_task(j, total=100, note="") for j in dict.fromkeys(jobs)}
        else:
            summary = bar.add_task("jobs", total=len(set(jobs)))
        while len(done) < len(set(jobs)):
            pending = [j for j in dict.fromkeys(jobs) if j not in done]
            step = 1.0 if deadline is None else max(0.0, min(1.0, deadline - time.monotonic()))
            r = c.call("wait", {"jobs": pending, "timeout": step}, timeout=step + 5)
            for asked, st in zip(pending, r["jobs"], strict=False):  # (a NAME is answered as its version)
                latest[asked] = st
                if final_of(st)["state"] in DONE:
                    done[asked] = st
            if few:
                running = [j for j in pending if j not in done and latest[j].get("state") == "running"]
                reported = c.progress(running) if running else {}
                for j, task in bars.items():
                    state = final_of(latest[j])["state"]
                    got = reported.get(j)
                    pct = 100 if state in DONE else (got[0] if got else 0)
                    note = f"{state}" + (f"  {progress_text(got)}" if got and state not in DONE else "")
                    bar.update(task, completed=pct, note=note)
            else:
                counts: dict[str, int] = {}
                for st in latest.values():
                    state = final_of(st)["state"]
                    counts[state] = counts.get(state, 0) + 1
                bar.update(summary, completed=len(done),
                           description=", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
            if deadline is not None and time.monotonic() >= deadline and len(done) < len(set(jobs)):
                fail(f"{len(set(jobs)) - len(done)} of {len(set(jobs))} jobs still unfinished after {timeout:g}s",
                     code=3)
    return [done[j] for j in jobs]


def progress_text(got: tuple[float, str]) -> str:
    pct, message = got
    return f"{pct:g}%" + (f" {message}" if message else "")


def _stderr_console():
    from rich.console import Console

    return Console(stderr=True)


@app.command()
def status(
    job: str = typer.Argument(None, metavar="JOB", help="A job id, or FLOW:NAME (a job of a flow file's newest submission; default: recent jobs)."),
    limit: int = typer.Option(20, "--limit", metavar="N", help="How many recent jobs to list."),
    attempts: bool = typer.Option(False, "--attempts", help="With JOB: list every attempt (node, start, end, outcome, exit code, signal, failure code)."),
    tree: str = typer.Option(None, "--tree", metavar="ROOT", help="The tree of jobs spawned under ROOT (children under their parents)."),
    as_json: bool = JsonOpt,
    coordinator: str = CoordOpt,
) -> None:
    """State, command, inputs, node, times, exit code, failure code and cause of a job (or recent jobs)."""
    if tree is not None:
        from .submission import show_tree

        with client(coordinator) as c:
            return show_tree(c, tree, as_json)
    if limit < 0:
        fail(f"invalid --limit {limit}: expected a number of jobs >= 0")
    if attempts and not job:
        fail("--attempts lists one job's attempts: give its id (weft status JOB --attempts)")
    with client(coordinator) as c:
        if job:
            st = c.status([job], attempts=attempts)[0]
            jid = st["job"]  # (NAME is answered as its newest version's id)
            got = c.progress([jid]).get(jid) if st.get("state") == "running" else None
            if as_json:
                emit_json(st if got is None else dict(st, progress=list(got)))
                return
            for line in status_lines(st):
                typer.echo(line)
            if attempts:
                for line in attempt_lines(st.get("attempt_list") or []):
                    typer.echo(line)
            if got is not None:
                typer.echo(f"{'progress':9} {progress_text(got)}")
            return
        r = c.call("status", {"limit": limit})
        if as_json:
            emit_json(r)
            return
        counts = ", ".join(f"{k} {v}" for k, v in sorted(r.get("counts", {}).items())) or "no jobs"
        typer.echo(counts)
        if r.get("paused"):
            typer.echo(paused_text(r["paused"]))
        for st in r["jobs"]:
            typer.echo(state_line(st))


def _check_timeout(timeout: str | None) -> float | None:
    return duration(timeout, "--timeout")


@app.command("wait")
def wait_cmd(
    jobs: list[str] = typer.Argument(..., metavar="JOB", help="Job ids."),
    timeout: str = typer.Option(None, "--timeout", metavar="DURATION", help="Give up after this long (90, 90s, 30m, 2h; exit 3)."),
    as_json: bool = JsonOpt,
    coordinator: str = CoordOpt,
) -> None:
    """Wait for jobs; exit 0 only if all succeeded (1 if any failed, 3 on timeout)."""
    timeout = _check_timeout(timeout)
    # While waiting, a restarting coordinator is retried for as long as the user waits.
    with client(coordinator, retry_for=timeout if timeout is not None else 3600.0) as c:
        statuses = _wait_with_progress(c, jobs, timeout, quiet=as_json)
    ok = all(final_of(s)["state"] == "succeeded" for s in statuses)
    if as_json:
        emit_json({"jobs": statuses, "ok": ok})
    else:
        for s in statuses:
            typer.echo(state_line(s))
    raise typer.Exit(0 if ok else 1)


@app.command()
def get(
    obj: str = typer.Argument(..., metavar="JOB[/OUTPUT]", help="JOB/OUTPUT, JOB for its main output, or a put's sha256-... name; JOB may be FLOW:NAME (a job of a flow file's newest submission)."),
    output: Path = typer.Option(None, "--output", "-o", metavar="FILE|DIR", help="Write to this file (or into this directory, as OUTPUT) instead of stdout; a directory tree is written out at DIR (made if missing), with its modes."),
    wait: bool = typer.Option(False, "--wait", "-w", help="Wait for the object's producer to finish."),
    timeout: str = typer.Option(None, "--timeout", metavar="DURATION", help="With --wait: give up after this long (90, 30m, 2h; exit 3)."),
    coordinator: str = CoordOpt,
) -> None:
    """Print (or save) an object's bytes."""
    timeout = _check_timeout(timeout)
    from weft.actors.trees import TreeError, is_content_name, object_of

    with client(coordinator) as c:
        job_part, sep, out_part = obj.partition("/")
        if ":" in job_part:  # FLOW:JOB: that job of the flow's newest submission
            obj = c.status([job_part])[0]["job"] + sep + out_part
        name = object_of(obj)  # sha256-...: a put's content
        if "/" not in name:
            st = c.status([obj])[0]
            outs = [o.split("/", 1)[1] for o in st["outputs"]]
            main = next((o for o in ("result", "stdout") if o in outs), outs[0] if outs else None)
            if main is None:
                fail(f"job {obj} has no outputs")
            name = f"{obj}/{main}"  # (as typed: NAME/OUT is the newest version's, NAME@1/OUT version 1's)
        try:
            split_object_name(name)
        except SpecError as e:
            fail(str(e))
        where = c.locate(name)
        if where["state"] != "finished":
            producer = where.get("producer") or {}
            job = producer.get("job") or name.split("/", 1)[0]
            if producer.get("state") in ("failed", "cancelled"):
                _not_produced(name, obj, c.status([job])[0])
            if not wait:
                fail(f"object {name} is not finished yet (job {job} is {producer.get('state', 'unknown')}): "
                     "use --wait, or weft wait " + job)
            try:
                st = c.wait([job], timeout=timeout)[0]
            except TimeoutError:
                fail(f"object {name} is not finished after {timeout:g}s (job {job} is still running)", code=3)
            if final_of(st)["state"] != "succeeded":
                _not_produced(name, obj, st)
        try:
            if output is None:
                out = sys.stdout.buffer
                c.get_to(name, out.write)
                out.flush()
                return
            if c.is_tree(name):  # written at DIR itself
                files = c.get_tree(name, output)
                typer.echo(f"wrote {files} files to {output}", err=True)
                return
            if output.is_dir():
                output = output / (obj if is_content_name(obj) else name.split("/", 1)[1])
            c.get_tree(name, output)  # (a file, with its mode)
        except TreeError as e:
            fail(str(e))
        except OSError as e:
            fail(f"cannot write {output}: {e.strerror}")
        typer.echo(f"wrote {output.stat().st_size} bytes to {output}", err=True)


def _not_produced(name: str, asked: str, st: dict[str, Any]) -> None:
    """Exit 1: the job that makes `name` failed or was cancelled, and why."""
    if asked == st["job"]:  # the user asked for a job's main output
        fail(why_not(st), code=1)
    fail(f"object {name} will not be produced: {why_not(st)}", code=1)


@app.command()
def cancel(
    jobs: list[str] = typer.Argument(None, metavar="JOB", help="Job ids."),
    groups: list[str] = typer.Option([], "--group", "-g", metavar="NAME", help="Cancel every member of a group too (repeatable)."),
    no_dependents: bool = typer.Option(False, "--no-dependents", help="Leave the jobs that read their outputs alone: they run if the job still succeeds, else fail."),
    as_json: bool = JsonOpt,
    coordinator: str = CoordOpt,
) -> None:
    """Cancel jobs and, unless --no-dependents, every job depending on them.

    A queued or waiting job is cancelled at once. A running one is shown
    `cancelling` until its compute node confirms the process group is gone
    (SIGTERM, then SIGKILL after the job's --max-cancellation-time); it ends
    `cancelled`, or `succeeded`/`failed` if it ended first. Cancelling a
    finished job changes nothing."""
    if not jobs and not groups:
        fail("give job ids or --group NAME")
    with client(coordinator) as c:
        r = c.cancel(jobs or [], dependents=not no_dependents, groups=groups)
    if as_json:
        emit_json({"jobs": r})
    else:
        for st in r:
            typer.echo(state_line(st))


@app.command()
def stats(as_json: bool = JsonOpt, coordinator: str = CoordOpt) -> None:
    """Cluster counters: jobs by state, slots, dispatches, failures, repair progress."""
    with client(coordinator) as c:
        s = c.stats()
    if as_json:
        emit_json(s)
        return
    for k, v in s.items():
        if k == "paused":
            v = paused_text(v)
        elif k in ("gc_last", "prune_last"):
            v = when(v) if v else "never"
        elif isinstance(v, dict):
            v = ", ".join(f"{a} {b}" for a, b in sorted(v.items())) or "-"
        elif isinstance(v, float):
            v = f"{v:.3f}"
        typer.echo(f"{k:16} {v}")
