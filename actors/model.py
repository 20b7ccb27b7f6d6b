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
from dataclasses import dataclass, field
from typing import Any

import msgpack

# The states live with the wire vocabulary; re-exported for existing importers.
from weft.protocol.enums import ObjectState, Outcome, TaskState  # noqa: F401

# A job id or an output name is one path component made of safe characters, so
# an object name can never climb out of a data directory ("../x", "/etc/x").
_JOB_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_OUTPUT_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,63}")
_CALL_RE = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")


class SpecError(ValueError):
    """A job spec, object name or other domain value is malformed."""

    code = "bad-spec"


# Names repeat endlessly on the hot path ("result", "stdout", job ids seen in
# several messages): remember the valid ones instead of matching again.
@functools.lru_cache(maxsize=65536)
def _valid_job_id(job: str) -> bool:
    return bool(_JOB_RE.fullmatch(job)) and ".." not in job


@functools.lru_cache(maxsize=4096)
def _valid_output(output: str) -> bool:
    return bool(_OUTPUT_RE.fullmatch(output)) and ".." not in output


def check_job_id(job: Any) -> str:
    if type(job) is not str or not _valid_job_id(job):
        raise SpecError(f"invalid job id {job!r}: use letters, digits, '.', '_', '-' (max 128)")
    return job


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


def _check_str_map(value: Any, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SpecError(f"{what} must be a map, got {type(value).__name__}")
    for k in value:
        check_output_name(k)  # names become file names and variable suffixes
    return value


@dataclass(slots=True)
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
        if self.call is not None and (
            not isinstance(self.call, str) or not _CALL_RE.fullmatch(self.call)
        ):
            raise SpecError(f"'call' must look like 'module:function', got {self.call!r}")
        for k, v in _check_str_map(self.inputs, "inputs").items():
            if not isinstance(v, str | bytes):
                raise SpecError(f"input {k!r} must be a string or bytes, got {type(v).__name__}")
            if self.command is not None and ("\0" in v if isinstance(v, str) else b"\0" in v):
                raise SpecError(f"input {k!r} contains a NUL byte and cannot be an environment value")
        for k, v in _check_str_map(self.refs, "refs").items():
            split_object_name(v)
            if k in self.inputs:
                raise SpecError(f"input {k!r} is given both as a value and as an object")
        if not isinstance(self.outputs, list):
            raise SpecError("'outputs' must be a list of names")
        for o in self.outputs:
            check_output_name(o)
        if len(set(self.outputs)) != len(self.outputs):
            raise SpecError("'outputs' names must be unique")
        if not isinstance(self.priority, int) or isinstance(self.priority, bool):
            raise SpecError("'priority' must be an integer")
        if self.timeout is not None and (
            not isinstance(self.timeout, int | float) or isinstance(self.timeout, bool)
            or not math.isfinite(self.timeout) or self.timeout <= 0
        ):
            raise SpecError("'timeout' must be a positive number of seconds")
        if self.name is not None:
            check_job_id(self.name)

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
        return d

    @classmethod
    def from_wire(cls, d: Any) -> JobSpec:
        if not isinstance(d, dict):
            raise SpecError(f"job spec must be a map, got {type(d).__name__}")
        unknown = set(d) - {"o", "cmd", "call", "in", "refs", "pri", "t", "name"}
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
        )

    def job_id(self) -> str:
        """The user's name if given, else a hash of the canonical spec.

        Priority and timeout are scheduling hints, not identity: the same work
        submitted twice at different priorities is one job.
        """
        if self.name is not None:
            return self.name
        canon = {
            "cmd": self.command,
            "call": self.call,
            "in": sorted(self.inputs.items()),
            "refs": sorted(self.refs.items()),
            "o": sorted(self.outputs),
        }
        digest = hashlib.blake2b(msgpack.packb(canon), digest_size=12).hexdigest()
        return f"j{digest}"

    def output_objects(self, job_id: str | None = None) -> list[str]:
        jid = job_id or self.job_id()
        return [f"{jid}/{o}" for o in self.outputs]


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


def delegated_output(spec: JobSpec, delegation: Any) -> str:
    """Which output of `spec`'s job a delegation hands over to the new job."""
    delegation_from_wire(delegation)
    out = delegation.get("output")
    if out is None:
        if len(spec.outputs) != 1:
            raise SpecError(
                "a delegating job with several outputs must say which one it delegates ('output')"
            )
        return spec.outputs[0]
    if out not in spec.outputs:
        raise SpecError(f"delegated output {out!r} is not an output of the delegating job")
    return out
