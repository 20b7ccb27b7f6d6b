"""The shared vocabulary of the roles: object names, states, job specs.

Everything here is plain data with validation; no I/O. Wire forms are small
msgpack-friendly dicts with short keys, because job specs travel in bulk on the
hot path.
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
from dataclasses import field
from typing import Any

import msgpack

# The states live with the wire vocabulary; re-exported for existing importers.
from weft.protocol.enums import ObjectState, Outcome, TaskState  # noqa: F401
from weft.protocol.record import record

# The leaf the spec's helper modules share (they import it, not this module).
from .names import (  # noqa: F401
    _INT64,
    _NAME_RE,
    _OUTPUT_RE,
    SpecError,
    _valid_job_id,
    _valid_output,
    check_job_id,
    check_job_name,
)

_CALL_RE = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")


_valid_call = functools.lru_cache(maxsize=4096)(lambda call: bool(_CALL_RE.fullmatch(call)))


def version_id(name: str, version: int) -> str:
    """The job id of version `version` of the job named `name`."""
    return name if version == 1 else f"{name}@{version}"


def split_version(job: str) -> tuple[str, int]:
    """(name, version) of a job id or a `NAME@K` reference (`NAME` is version 1)."""
    name, sep, v = job.rpartition("@")
    if sep and v.isdigit() and name:
        return name, int(v)
    return job, 1


def check_output_name(output: Any) -> str:
    if type(output) is not str or not _valid_output(output):
        raise SpecError(
            f"invalid output name {output!r}: use letters, digits, '.', '_', '-' (max 64)"
        )
    return output


def object_name(job: str, output: str) -> str:
    return f"{check_job_id(job)}/{check_output_name(output)}"


def split_object_name(name: Any) -> tuple[str, str]:
    """Split and validate `<job-id>/<output>`; raise SpecError naming the problem."""
    if not isinstance(name, str):
        raise SpecError(f"object name must be a string, got {type(name).__name__}")
    job, sep, output = name.partition("/")
    if not sep:
        raise SpecError(f"invalid object name {name!r}: expected '<job-id>/<output>'")
    try:
        return check_job_id(job), check_output_name(output)
    except SpecError as e:
        raise SpecError(f"invalid object name {name!r}: {e}") from None


def check_input_name(name: Any) -> str:
    if type(name) is not str or not _valid_output(name):
        raise SpecError(f"invalid input name {name!r}: use letters, digits, '.', '_', '-' (max 64)")
    return name


def _check_str_map(value: Any, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SpecError(f"{what} must be a map, got {type(value).__name__}")
    for k in value:
        check_input_name(k)  # names become file names and variable suffixes
    return value


# -- limits a job must respect to be runnable at all --------------------------------------------
# exec() takes each argument and each NAME=VALUE environment string up to
# MAX_ARG_STRLEN (32 pages, 128 KiB with its NUL) and a program path up to
# PATH_MAX with components up to NAME_MAX; beyond them every attempt fails on
# every node, so a spec that breaks them is refused at submission.
MAX_EXEC_STRING = 128 * 1024 - 1
MAX_PROGRAM_PATH = 4095
MAX_PATH_COMPONENT = 255
# argv plus the inputs' environment together: under Linux's usual 2 MiB
# ARG_MAX, leaving room for the compute node's own environment.
MAX_EXEC_TOTAL = 1024 * 1024
# An immediate input is journaled by the coordinator and written to the task
# log; larger data belongs in an object. Checked by the clients (see
# check_submittable), not by the daemons, so a running cluster's behaviour
# does not change.
MAX_IMMEDIATE_INPUT = 1024 * 1024
LARGE_DATA_HINT = (
    "pass large data as an object instead: the output of a job (e.g. one running `cat FILE`), "
    "given as input NAME=@JOB/OUTPUT (in Python, a Future or ObjectRef)"
)


def byte_size(value: str | bytes) -> int:
    """Encoded size; cheap for ASCII, which is nearly every value."""
    if isinstance(value, bytes):
        return len(value)
    return len(value) if value.isascii() else len(value.encode("utf-8", "surrogateescape"))


def human_size(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            text = f"{n / scale:.1f}"
            if text.endswith(".0"):
                if n % scale:  # "1 MiB" for 1,050,000 bytes would read as within a 1 MiB limit
                    break
                text = text[:-2]
            return f"{text} {unit}"
    return f"{n:,} bytes"


def input_env_var(name: str) -> str:
    """The environment variable a command job's immediate input arrives in."""
    return "WEFT_INPUT_" + name.upper().replace(".", "_").replace("-", "_")


def _check_command_limits(command: list[str], inputs: dict[str, str | bytes]) -> None:
    program = command[0]
    size = byte_size(program)
    if size > MAX_PROGRAM_PATH:
        raise SpecError(
            f"command name is {size} bytes long: a program path is at most {MAX_PROGRAM_PATH} bytes"
        )
    longest = max(map(len, program.split("/")))
    if longest > MAX_PATH_COMPONENT:
        raise SpecError(
            f"command name has a {longest}-character path component: at most {MAX_PATH_COMPONENT} each"
        )
    total = 0
    for i, a in enumerate(command):
        size = byte_size(a)
        if size > MAX_EXEC_STRING:
            raise SpecError(
                f"command argument {i} is {human_size(size)}: the OS allows at most 128 KiB per argument; "
                "put large data in an input object (read as a file from $WEFT_INPUTS)"
            )
        total += size + 1
    seen: dict[str, str] = {}
    for k, v in inputs.items():
        var = input_env_var(k)
        if var in seen:
            raise SpecError(f"inputs {seen[var]!r} and {k!r} both map to ${var}: rename one")
        seen[var] = k
        size = len(var) + 1 + byte_size(v)
        if size > MAX_EXEC_STRING:
            raise SpecError(
                f"input {k!r} is {human_size(byte_size(v))}: a command's immediate input arrives as "
                f"${var}, at most 128 KiB with the name; {LARGE_DATA_HINT}"
            )
        total += size + 1
    if total > MAX_EXEC_TOTAL:
        raise SpecError(
            f"the command and its immediate inputs are {human_size(total)}: at most "
            f"{human_size(MAX_EXEC_TOTAL)} together; {LARGE_DATA_HINT}"
        )


# Seconds a cancelled job's processes get between SIGTERM and SIGKILL, unless
# its spec says (`--max-cancellation-time`).
DEFAULT_CANCEL_TIME = 10.0


@record
class JobSpec:
    """What to run and what it reads and writes.

    Exactly one of `command` (argv) or `call` ("module:function") is set.
    `inputs` are immediate values (str or bytes); `refs` map an input name to
    the object name it reads; `outputs` name the streams the job produces.
    """

    command: list[str] | None = None
    call: str | None = None
    inputs: dict[str, str | bytes] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)
    priority: int = 0
    timeout: float | None = None
    name: str | None = None
    # -- job control (not identity: how a job is stopped, and labels) --
    # Seconds between SIGTERM and SIGKILL when the job is cancelled (None: 10).
    cancel_time: float | None = None
    # (Empty by default as a shared tuple: most jobs have none, and a list
    # per field per job costs memory at 100,000s of jobs.)
    groups: list[str] | tuple[()] = ()
    # -- ordering (identity when given: it changes what the job waits on) --
    # Jobs that must have succeeded before this one starts (no data passed).
    after: list[str] | tuple[()] = ()
    # Groups whose every member (known when the submit arrives) must have
    # succeeded first; the coordinator adds those members to `after`.
    after_groups: list[str] | tuple[()] = ()
    # Retries of the job's own failures (non-zero exit, crash, time limit),
    # the first one `retry_delay` seconds after the failure, each next one
    # twice as late; `pending_timeout`: fail if not started within it;
    # `on_exit`: WHEN -> action (see exits.py). Not part of the identity.
    retries: int = 0
    retry_delay: float | None = None
    pending_timeout: float | None = None
    on_exit: dict[str, Any] | None = None  # (None, not {}: most jobs have none, and specs come in bulk)
    # -- placement (not identity; see resources.py and docs/scheduling.md) --
    cpus: int = 1
    memory: int | None = None  # bytes, enforced where the node can (None: packed as tiny, no limit)
    host: str | None = None  # required host name or node id ("local" is resolved by the submitter)
    prefer_host: str | None = None
    node: str | None = None  # pinned to this compute node
    job_class: str = "batch"  # or "workorder": starts at once, even overcommitting
    deadline: float | None = None  # wall time; past it a batch job is `late`
    # -- submission control (actors/specfields.py checks them) --
    # A unit's parameters (identity: they change the work): $WEFT_PARAM_<KEY>
    # and parameters.json in the command's working directory.
    params: dict[str, Any] | None = None
    # The running job that submitted this one, and its tree's root (the
    # coordinator sets `root` from the parent; not identity: the child's
    # name, made under its parent's, is).
    spawned_by: str | None = None
    root: str | None = None
    # On a root: how many jobs (retries included) its tree may spawn.
    max_spawns: int | None = None
    # Time windows: [["allow" | "deny", "Mon-Fri 18:00-08:00"], ...] (actors/windows.py).
    windows: list[Any] | tuple[()] = ()
    # Paths that must exist on the compute node before the command starts
    # (shared filesystems that show files late): actors/compute/block.py.
    block: list[str] | tuple[()] = ()
    # Outputs that are directories (`--output-dir`): made empty before a
    # command runs, stored as a tree (actors/trees.py). Identity when given.
    dirs: list[str] | tuple[()] = ()

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        if (self.command is None) == (self.call is None):
            raise SpecError("a job needs exactly one of 'command' or 'call'")
        if self.command is not None:
            if not isinstance(self.command, list) or not self.command:
                raise SpecError("'command' must be a non-empty list of strings")
            if not all(isinstance(a, str) for a in self.command):
                raise SpecError("'command' must be a list of strings")
            # exec and the environment cannot carry NUL: refuse here, not on the node.
            for i, a in enumerate(self.command):
                if "\0" in a:
                    raise SpecError(f"command argument {i} contains a NUL byte")
            if not self.command[0]:
                raise SpecError("the command name (argument 0) is empty")
        if self.call is not None and (not isinstance(self.call, str) or not _valid_call(self.call)):
            raise SpecError(f"'call' must look like 'module:function', got {self.call!r}")
        for k, v in _check_str_map(self.inputs, "inputs").items():
            if not isinstance(v, str | bytes):
                raise SpecError(f"input {k!r} must be a string or bytes, got {type(v).__name__}")
            if self.command is not None and ("\0" in v if isinstance(v, str) else b"\0" in v):
                raise SpecError(f"input {k!r} contains a NUL byte and cannot be an environment value")
        if self.refs or type(self.refs) is not dict:  # (most specs have none: no checks to make)
            for k, v in _check_str_map(self.refs, "refs").items():
                split_object_name(v)
                if k in self.inputs:
                    raise SpecError(f"input {k!r} is given both as a value and as an object")
        if not isinstance(self.outputs, list):
            raise SpecError("'outputs' must be a list of names")
        for o in self.outputs:
            check_output_name(o)
        if len(self.outputs) > 1 and len(set(self.outputs)) != len(self.outputs):
            twice = next(o for i, o in enumerate(self.outputs) if o in self.outputs[:i])
            raise SpecError(f"output {twice!r} is named twice")
        if self.dirs:
            if not isinstance(self.dirs, list | tuple) or any(d not in self.outputs for d in self.dirs):
                raise SpecError("'dirs' (directory outputs) must each be one of 'outputs'")
            if "stdout" in self.dirs and self.command is not None:
                raise SpecError("output 'stdout' is the command's standard output: it cannot be a directory")
        if self.command is not None:
            _check_command_limits(self.command, self.inputs)
        if not isinstance(self.priority, int) or isinstance(self.priority, bool):
            raise SpecError("'priority' must be an integer")
        if not _INT64[0] <= self.priority <= _INT64[1]:
            raise SpecError(f"priority {self.priority} is out of range: it must fit in 64 bits (-2**63 to 2**63-1)")
        if self.timeout is not None and (
            not isinstance(self.timeout, int | float) or isinstance(self.timeout, bool)
            or not math.isfinite(self.timeout) or self.timeout <= 0
        ):
            raise SpecError(f"time limit {self.timeout!r}: expected a positive, finite number of seconds")
        if isinstance(self.timeout, int) and self.timeout > _INT64[1]:
            raise SpecError(f"time limit {self.timeout} is out of range: at most 2**63-1 seconds")
        if self.name is not None:
            check_job_name(self.name)
        if self.retries or self.retry_delay is not None or self.pending_timeout is not None or self.on_exit:
            _check_retry_fields(self)
        if self.cancel_time is not None or self.groups or self.after or self.after_groups:
            self._validate_control()
        if self.params is not None or self.spawned_by is not None or self.root is not None \
                or self.max_spawns is not None or self.windows or self.block:
            from .specfields import check_submission_fields

            check_submission_fields(self)
        if (self.cpus != 1 or self.memory is not None or self.host is not None or self.prefer_host is not None
                or self.node is not None or self.job_class != "batch" or self.deadline is not None):
            from .resources import check_placement

            check_placement(self)

    def _validate_control(self) -> None:
        ct = self.cancel_time
        if ct is not None and (not isinstance(ct, int | float) or isinstance(ct, bool)
                               or not math.isfinite(ct) or ct < 0 or ct > 86400):
            raise SpecError(f"max cancellation time {ct!r}: expected seconds from 0 to 86400")
        if not (self.groups or self.after or self.after_groups):
            return
        if not isinstance(self.groups, list | tuple):
            raise SpecError("'groups' must be a list of group names")
        for g in self.groups:
            if not isinstance(g, str) or not _valid_job_id(g):
                raise SpecError(f"group name {g!r}: expected letters, digits, '.', '_', '-' (no '/')")
        if not isinstance(self.after, list | tuple) or not isinstance(self.after_groups, list | tuple):
            raise SpecError("'after' and 'after_groups' must be lists")
        for j in self.after:
            if not isinstance(j, str) or not _valid_job_id(j):
                raise SpecError(f"after {j!r}: not a job id (letters, digits, '.', '_', '-')")
        for g in self.after_groups:
            if not isinstance(g, str) or not _valid_job_id(g):
                raise SpecError(f"after group {g!r}: expected letters, digits, '.', '_', '-' (no '/')")

    def to_wire(self) -> dict[str, Any]:
        d: dict[str, Any] = {"o": self.outputs}
        if self.command is not None:
            d["cmd"] = self.command
        else:
            d["call"] = self.call
        if self.inputs:
            d["in"] = self.inputs
        if self.refs:
            d["refs"] = self.refs
        if self.priority:
            d["pri"] = self.priority
        if self.timeout is not None:
            d["t"] = self.timeout
        if self.name is not None:
            d["name"] = self.name
        if self.cancel_time is not None:
            d["kt"] = self.cancel_time
        if self.groups:
            d["g"] = list(self.groups)
        if self.after:
            d["a"] = list(self.after)
        if self.after_groups:
            d["ag"] = list(self.after_groups)
        if self.retries:
            d["r"] = self.retries
        if self.retry_delay is not None:
            d["rd"] = self.retry_delay
        if self.pending_timeout is not None:
            d["pt"] = self.pending_timeout
        if self.on_exit:
            d["x"] = self.on_exit
        if self.params is not None:
            d["pm"] = self.params
        if self.spawned_by is not None:
            d["sp"] = self.spawned_by
        if self.root is not None:
            d["rt"] = self.root
        if self.max_spawns is not None:
            d["ms"] = self.max_spawns
        if self.windows:
            d["win"] = [list(w) for w in self.windows]
        if self.block:
            d["blk"] = list(self.block)
        if self.cpus != 1:
            d["cpu"] = self.cpus
        if self.memory is not None:
            d["mem"] = self.memory
        if self.host is not None:
            d["h"] = self.host
        if self.prefer_host is not None:
            d["ph"] = self.prefer_host
        if self.node is not None:
            d["nd"] = self.node
        if self.job_class != "batch":
            d["cls"] = self.job_class
        if self.deadline is not None:
            d["dl"] = self.deadline
        if self.dirs:
            d["od"] = list(self.dirs)
        return d

    @classmethod
    def from_wire(cls, d: Any) -> JobSpec:
        if not isinstance(d, dict):
            raise SpecError(f"job spec must be a map, got {type(d).__name__}")
        unknown = set(d) - {"o", "cmd", "call", "in", "refs", "pri", "t", "name", "kt", "g", "a", "ag",
                            "r", "rd", "pt", "x", "pm", "sp", "rt", "ms", "win", "blk",
                            "cpu", "mem", "h", "ph", "nd", "cls", "dl", "od"}
        if unknown:
            raise SpecError(f"job spec has unknown fields: {', '.join(sorted(map(str, unknown)))}")
        return cls(
            command=d.get("cmd"),
            call=d.get("call"),
            inputs=d.get("in") or {},
            refs=d.get("refs") or {},
            outputs=d.get("o", []),
            priority=d.get("pri", 0),
            timeout=d.get("t"),
            name=d.get("name"),
            cancel_time=d.get("kt"),
            groups=d.get("g") or (),
            after=d.get("a") or (),
            after_groups=d.get("ag") or (),
            retries=d.get("r", 0),
            retry_delay=d.get("rd"),
            pending_timeout=d.get("pt"),
            on_exit=d.get("x"),
            params=d.get("pm"),
            spawned_by=d.get("sp"),
            root=d.get("rt"),
            max_spawns=d.get("ms"),
            windows=d.get("win") or (),
            block=d.get("blk") or (),
            cpus=d.get("cpu", 1),
            memory=d.get("mem"),
            host=d.get("h"),
            prefer_host=d.get("ph"),
            node=d.get("nd"),
            job_class=d.get("cls", "batch"),
            deadline=d.get("dl"),
            dirs=d.get("od") or (),
        )

    def exit_action(self, when: str) -> Any:
        """The action for an ending `when` (an exit code as a string,
        `timed-out` or `crashed`), or None."""
        return self.on_exit.get(when) if self.on_exit else None

    def job_id(self) -> str:
        """The user's name if given, else a hash of the canonical spec.

        Priority and timeout are scheduling hints, not identity: the same work
        submitted twice at different priorities is one job. So are groups
        (labels) and the max cancellation time; `after` is identity.
        """
        if self.name is not None:
            return self.name
        # (list() where there is nothing to sort: the same bytes, ~0.2 us less each)
        inputs, refs, outputs = self.inputs, self.refs, self.outputs
        canon = {
            "cmd": self.command,
            "call": self.call,
            "in": sorted(inputs.items()) if len(inputs) > 1 else list(inputs.items()),
            "refs": sorted(refs.items()) if len(refs) > 1 else list(refs.items()),
            "o": sorted(outputs) if len(outputs) > 1 else list(outputs),
        }
        # Ordering is identity (the same command after other jobs is other
        # work); added only when given, so every other job keeps its id.
        if self.after:
            canon["a"] = sorted(set(self.after))
        if self.after_groups:
            canon["ag"] = sorted(set(self.after_groups))
        if self.params:
            canon["pm"] = sorted(self.params.items())
        if self.dirs:
            canon["od"] = sorted(set(self.dirs))
        digest = hashlib.blake2b(msgpack.packb(canon), digest_size=12).hexdigest()
        return f"j{digest}"

    def identity(self) -> dict[str, Any]:
        """What makes the job's work: a named job's spec may not change it
        without a new version (priority, limits and the name are not part of it)."""
        ident = {"command": self.command, "call": self.call, "inputs": dict(sorted(self.inputs.items())),
                 "refs": dict(sorted(self.refs.items())), "outputs": sorted(self.outputs)}
        if self.params:
            ident["parameters"] = dict(sorted(self.params.items()))
        if self.dirs:
            ident["dirs"] = sorted(self.dirs)
        return ident

    def output_objects(self, job_id: str | None = None) -> list[str]:
        jid = job_id or self.job_id()
        return [f"{jid}/{o}" for o in self.outputs]

    def payload_size(self) -> int:
        """Bytes of the spec's values (inputs, argv): what dominates its message."""
        size = sum(byte_size(v) + len(k) for k, v in self.inputs.items())
        return size + sum(byte_size(a) for a in self.command or ())


# Exit actions: WHEN is an exit code (0-255), `timed-out` or `crashed`;
# the action `succeed`, `fail`, `retry`, or {"submit": <flow file data>,
# "flow": <its file name>} (the file as the client read it at submit time).
EXIT_WHENS = ("timed-out", "crashed")
EXIT_ACTIONS = ("succeed", "fail", "retry")
MAX_RETRIES = 1000


def _seconds(value: Any, what: str) -> None:
    if (not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value)
            or value < 0 or value > _INT64[1]):
        raise SpecError(f"{what} {value!r}: expected a non-negative, finite number of seconds")


def check_exit_when(when: Any) -> str:
    if type(when) is str and (when in EXIT_WHENS or (when.isdigit() and int(when) <= 255 and str(int(when)) == when)):
        return when
    raise SpecError(f"exit action for {when!r}: WHEN must be an exit code (0-255), 'timed-out' or 'crashed'")


def _check_retry_fields(spec: JobSpec) -> None:
    r = spec.retries
    if not isinstance(r, int) or isinstance(r, bool) or not 0 <= r <= MAX_RETRIES:
        raise SpecError(f"retries {r!r}: expected a whole number from 0 to {MAX_RETRIES}")
    if spec.retry_delay is not None:
        _seconds(spec.retry_delay, "retry delay")
    if spec.pending_timeout is not None:
        _seconds(spec.pending_timeout, "pending timeout")
        if spec.pending_timeout <= 0:
            raise SpecError(f"pending timeout {spec.pending_timeout!r}: expected a positive number of seconds")
    if spec.on_exit is not None and not isinstance(spec.on_exit, dict):
        raise SpecError("'on_exit' must be a map of WHEN to action")
    for when, action in (spec.on_exit or {}).items():
        check_exit_when(when)
        if action in EXIT_ACTIONS:
            continue
        if isinstance(action, dict) and set(action) <= {"submit", "flow"} and isinstance(action.get("submit"), dict):
            continue
        raise SpecError(f"exit action for {when}: expected succeed, fail, retry or submit:FLOW.toml, got {action!r}")
    if spec.on_exit and spec.on_exit.get("0") in ("fail", "retry"):
        raise SpecError(f"exit action 0={spec.on_exit['0']}: exit code 0 is a success (use succeed or submit:FLOW)")


def check_submittable(spec: JobSpec) -> None:
    """Limits a client applies before sending a job: an immediate input over
    MAX_IMMEDIATE_INPUT is refused with a pointer to objects."""
    for k, v in spec.inputs.items():
        size = byte_size(v)
        if size > MAX_IMMEDIATE_INPUT:
            raise SpecError(
                f"input {k!r} is {human_size(size)}: immediate inputs are limited to "
                f"{human_size(MAX_IMMEDIATE_INPUT)} (the coordinator journals them); {LARGE_DATA_HINT}"
            )


def delegation_from_wire(d: Any) -> tuple[JobSpec, str]:
    """A delegation is {"job": spec, "stream": output of that job, "output"?}.

    `output` names which output of the delegating job is handed over; it may
    be left out when that job has exactly one output.
    """
    if not isinstance(d, dict) or "job" not in d or "stream" not in d:
        raise SpecError("a delegation must be a map with 'job' and 'stream'")
    if "output" in d:
        check_output_name(d["output"])
    spec = JobSpec.from_wire(d["job"])
    stream = check_output_name(d["stream"])
    if stream not in spec.outputs:
        raise SpecError(f"delegation stream {stream!r} is not an output of the delegated job")
    return spec, stream
