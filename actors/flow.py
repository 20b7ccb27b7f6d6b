"""Workflow files: named jobs whose inputs refer to each other's outputs.

    [jobs.compile]
    command = ["sh", "-c", "echo 'int main(){}' > $WEFT_OUTPUTS/main.c"]
    outputs = ["main.c"]

    [jobs.count]
    command = ["wc", "-c", "inputs/src"]   # read $WEFT_INPUTS/src
    inputs = { src = "@compile/main.c", label = "size" }

An input value starting with `@` is a reference: `@job/output` names an
output of another job of the file (`@job` alone: its main output, `result`
for callables, `stdout` for commands), and `@<job-id>/<output>` an object
that already exists. Anything else is an immediate value.

Retries and exit actions (see actors/coordinator/exits.py):

    retries = 2                 # its own failures are retried twice
    retry_delay = "10s"         # the first retry 10 s after, then 20 s, ...
    pending_timeout = "30m"     # fail if not started within 30 minutes
    on_exit = { 1 = "succeed", timed-out = "retry", crashed = "submit:cleanup.toml" }

A `submit:` flow file is read now, relative to this file, and kept with the job.

Variables (`[vars]`, `${var}`), templates (`[[each]]`) and includes are
expanded first: see actors/flowtemplate.py. A flow's name (`name = ...`,
else the file name without .toml) lets `weft get FLOW:JOB` find its jobs.

Names are local to the file. Each job's id is the hash of its spec, with
references resolved to the producers' ids, so changing a command reruns that
job and everything downstream, and nothing else (a build cache).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .durations import parse_duration
from .flowtemplate import expand_flow, flow_name, read_flow
from .localinputs import with_local_inputs
from .model import JobSpec, SpecError, check_job_id, split_object_name
from .resources import placement_fields

# `time_limit` is how long a job may run; `timeout` is its older name.
_FIELDS = {"command", "call", "inputs", "outputs", "priority", "time_limit", "timeout", "name",
           "retries", "retry_delay", "pending_timeout", "on_exit"}
# A `submit:` flow may name flows of its own: this deep at most (a flow
# submitting itself would never end).
MAX_FLOW_NESTING = 8
# Job control: labels, and SIGTERM-to-SIGKILL seconds when cancelled.
# Ordering: `after` names jobs of this file or job ids; `after_groups` groups.
_FIELDS |= {"groups", "max_cancellation_time", "after", "after_groups"}
# Placement (docs/scheduling.md): sizes and deadlines as the command line writes them.
_FIELDS |= {"cpus", "memory", "size", "host", "prefer_host", "node", "class", "deadline"}
# Directory outputs: each kept as a tree, as `weft submit --output-dir` keeps it.
_FIELDS |= {"output_dirs"}


def _names(t: dict[str, Any], key: str, error: str) -> list[str]:
    """`t[key]` as a list of names (one string is a list of one, none an
    empty list); SpecError(`error`) if it is anything else."""
    value = t.get(key, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SpecError(error)
    return value


def main_output(spec: JobSpec) -> str:
    for preferred in ("result", "stdout"):
        if preferred in spec.outputs:
            return preferred
    if not spec.outputs:
        raise SpecError("it has no outputs")
    return spec.outputs[0]


def load_flow(path: Path, depth: int = 0) -> list[tuple[str, JobSpec]]:
    """Parse a workflow file into (local name, spec) in dependency order."""
    return load_named_flow(path, depth)[1]


def load_named_flow(path: Path, depth: int = 0) -> tuple[str | None, list[tuple[str, JobSpec]]]:
    """A workflow file's name (see flowtemplate.flow_name) and its jobs."""
    data = read_flow(path)
    name = flow_name(data, path)
    return name, parse_flow(expand_flow(data, path), str(path), base=path.parent, depth=depth)


def parse_on_exit(items: dict[str, Any] | list[str], base: Path | None, depth: int = 0,
                  what: str = "--on-exit") -> dict[str, Any]:
    """Exit actions as a job spec keeps them: WHEN -> `succeed`, `fail`,
    `retry`, or {"submit": <flow data>, "flow": <file name>}. `items` are
    `WHEN=ACTION` strings (the CLI) or a map (a flow file, the client);
    a `submit:FILE` is read now, relative to `base`, and checked."""
    from .model import EXIT_ACTIONS, check_exit_when

    pairs: list[tuple[Any, Any]]
    if isinstance(items, dict):
        pairs = list(items.items())
    else:
        pairs = []
        for item in items:
            when, sep, action = str(item).partition("=")
            if not sep:
                raise SpecError(f"invalid {what} {item!r}: expected WHEN=ACTION, e.g. 1=succeed")
            pairs.append((when.strip(), action.strip()))
    out: dict[str, Any] = {}
    for when, action in pairs:
        when = check_exit_when(str(when))
        if when in out:
            raise SpecError(f"{what}: {when} is given twice")
        if isinstance(action, dict):  # kept form (a flow's, read already)
            out[when] = action
            continue
        if not isinstance(action, str):
            raise SpecError(f"{what} {when}: expected succeed, fail, retry or submit:FLOW.toml")
        if action in EXIT_ACTIONS:
            out[when] = action
        elif action.startswith("submit:") and action[7:]:
            if depth >= MAX_FLOW_NESTING:
                raise SpecError(f"{what} {when}={action}: flows submitting flows nest more than "
                                f"{MAX_FLOW_NESTING} deep (does one submit itself?)")
            path = Path(action[7:]).expanduser()
            if base is not None and not path.is_absolute():
                path = base / path
            data = read_flow(path)
            if "secrets" in data:
                raise SpecError(f"{what} {when}={action}: a flow submitted by an exit action takes no [secrets]")
            data = expand_flow(data, path)
            # Checked now, as it will be submitted (with the inputs it is given then).
            parse_flow(_with_ended(data), str(path), base=path.parent, depth=depth + 1)
            out[when] = {"submit": _resolved(data, path.parent, depth + 1), "flow": path.name}
        else:
            raise SpecError(f"{what} {when}={action}: ACTION must be succeed, fail, retry or submit:FLOW.toml")
    return out


def _with_ended(data: dict[str, Any]) -> dict[str, Any]:
    jobs = data.get("jobs")
    if not isinstance(jobs, dict):
        return data
    return {"jobs": {n: {**t, "inputs": {**(t.get("inputs") or {}), "ended_job": "x", "ended_when": "0"}}
                     if isinstance(t, dict) and isinstance(t.get("inputs", {}), dict) else t
                     for n, t in jobs.items()}}


def _resolved(data: dict[str, Any], base: Path, depth: int) -> dict[str, Any]:
    """`data` with its jobs' `submit:` exit actions read (kept with the job, as data)."""
    jobs = {}
    for name, t in (data.get("jobs") or {}).items():
        if isinstance(t, dict) and isinstance(t.get("on_exit"), dict):
            t = {**t, "on_exit": parse_on_exit(t["on_exit"], base, depth, f"jobs.{name}.on_exit")}
        jobs[name] = t
    return {"jobs": jobs}


def _seconds(t: dict[str, Any], key: str) -> Any:
    value = t.get(key)
    return parse_duration(value, key) if isinstance(value, str) else value


def parse_flow(data: dict[str, Any], where: str = "workflow", *, base: Path | None = None,
               depth: int = 0) -> list[tuple[str, JobSpec]]:
    jobs = data.get("jobs")
    if not isinstance(jobs, dict) or not jobs:
        raise SpecError(f"{where}: expected one or more [jobs.NAME] tables")
    raw: dict[str, dict[str, Any]] = {}
    for name, table in jobs.items():
        check_job_id(name)
        if not isinstance(table, dict):
            raise SpecError(f"{where}: jobs.{name} must be a table")
        unknown = set(table) - _FIELDS
        if unknown:
            raise SpecError(f"{where}: jobs.{name} has unknown keys: {', '.join(sorted(unknown))}")
        raw[name] = with_local_inputs(table, base, f"{where}: jobs.{name}", nested=depth > 0)  # @./path

    deps: dict[str, set[str]] = {}
    for name, t in raw.items():
        inputs = t.get("inputs", {})
        if not isinstance(inputs, dict):
            raise SpecError(f"{where}: jobs.{name}.inputs must be a table")
        deps[name] = set()
        for key, value in inputs.items():
            if isinstance(value, str) and value.startswith("@"):
                target = value[1:].split("/", 1)[0]
                if target in raw:
                    deps[name].add(target)
                elif "/" not in value:
                    raise SpecError(f"{where}: jobs.{name}.inputs.{key}: no job {target!r} in this file")
        after = _names(t, "after", f"{where}: jobs.{name}.after must be a list of job names")
        deps[name].update(a for a in after if a in raw)

    order: list[str] = []
    state: dict[str, int] = {}

    def visit(n: str, path: list[str]) -> None:
        if state.get(n) == 2:
            return
        if state.get(n) == 1:
            raise SpecError(f"{where}: dependency cycle: {' -> '.join([*path, n])}")
        state[n] = 1
        for d in sorted(deps[n]):
            visit(d, [*path, n])
        state[n] = 2
        order.append(n)

    for n in raw:
        visit(n, [])

    specs: dict[str, tuple[str, JobSpec]] = {}
    for name in order:
        t = raw[name]
        immediate: dict[str, str | bytes] = {}
        refs: dict[str, str] = {}
        for key, value in (t.get("inputs") or {}).items():
            if isinstance(value, str) and value.startswith("@"):
                ref = value[1:]
                target, _, output = ref.partition("/")
                if target in specs:
                    jid, spec = specs[target]
                    try:
                        output = output or main_output(spec)
                    except SpecError as e:
                        raise SpecError(f"{where}: jobs.{name}.inputs.{key}: job {target!r}: {e}") from None
                    if output not in spec.outputs:
                        raise SpecError(f"{where}: jobs.{name}.inputs.{key}: job {target!r} has no output {output!r}")
                    refs[key] = f"{jid}/{output}"
                else:
                    split_object_name(ref)
                    refs[key] = ref
            elif isinstance(value, str | int | float) and not isinstance(value, bool):
                immediate[key] = str(value)
            else:
                raise SpecError(f"{where}: jobs.{name}.inputs.{key}: expected a string or number")
        command = t.get("command")
        if isinstance(command, str):
            raise SpecError(f"{where}: jobs.{name}.command must be a list (argv), e.g. [\"sh\", \"-c\", \"...\"]")
        dirs = _names(t, "output_dirs", f"{where}: jobs.{name}.output_dirs: expected a list of output names")
        # As `weft submit --output-dir` does: a directory is an output too, and
        # a job given only directories keeps no stdout/result beside them.
        if "outputs" in t:
            outputs = _names(t, "outputs", f"{where}: jobs.{name}.outputs: expected a list of output names")
            outputs += [d for d in dirs if d not in outputs]
        else:
            outputs = list(dirs) or (["stdout"] if command is not None else ["result"])
        if "time_limit" in t and "timeout" in t:
            raise SpecError(f"{where}: jobs.{name}: give time_limit or its older name timeout, not both")
        key = "time_limit" if "time_limit" in t else "timeout"
        limit = t.get(key)
        try:
            if isinstance(limit, str):  # numbers stay as written: a job's wire form keeps them
                limit = parse_duration(limit, key)
            kt = t.get("max_cancellation_time")
            if isinstance(kt, str):
                kt = parse_duration(kt, "max_cancellation_time")
            groups = t.get("groups", [])
            if isinstance(groups, str):
                groups = [groups]
            after = t.get("after", [])
            # A job of this file by its name (its id), else a job id as given.
            after = [specs[a][0] if a in specs else a for a in ([after] if isinstance(after, str) else after)]
            after_groups = t.get("after_groups", [])
            if isinstance(after_groups, str):
                after_groups = [after_groups]
            spec = JobSpec(
                command=command,
                call=t.get("call"),
                inputs=immediate,
                refs=refs,
                outputs=outputs,
                dirs=list(dict.fromkeys(dirs)) or (),
                priority=t.get("priority", 0),
                timeout=limit,
                name=t.get("name"),
                cancel_time=kt,
                groups=groups or (),
                after=after or (),
                after_groups=after_groups or (),
                retries=t.get("retries", 0),
                retry_delay=_seconds(t, "retry_delay"),
                pending_timeout=_seconds(t, "pending_timeout"),
                on_exit=parse_on_exit(t["on_exit"], base, depth, "on_exit") if t.get("on_exit") else None,
                **placement_fields(cpus=t.get("cpus"), memory=t.get("memory"), size=t.get("size"),
                                   host=t.get("host"), prefer_host=t.get("prefer_host"), node=t.get("node"),
                                   job_class=t.get("class"), deadline=t.get("deadline")),
            )
        except SpecError as e:
            raise SpecError(f"{where}: jobs.{name}: {e}") from None
        specs[name] = (spec.job_id(), spec)
    return [(name, specs[name][1]) for name in order]
