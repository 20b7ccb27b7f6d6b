"""Unit files: job definitions kept in a directory, run by name with parameters.

    # units/build.batch
    [Batch]
    Exec=sh -c 'make -C "$WEFT_PARAM_SRC" "$WEFT_PARAM_TARGET"'
    Priority=5
    Size=small
    TimeLimit=30m
    Deadline=+2h

    [Parameters]
    SRC=path
    TARGET=all|test|clean
    JOBS=int

`NAME.workorder` has a `[Workorder]` section instead (the job class). A
parameter is `int`, `str`, `path` or a choice `V1|V2|...`; every declared
parameter must be given (`weft run build --param TARGET=test ...`). The
values reach the command as `$WEFT_PARAM_<KEY>` and as `parameters.json` in
its working directory (compute runner). `Exec=` is split like a shell line
(quotes, no expansion: use `sh -c` for that). An optional `[Secrets]`
section names secret inputs as `NAME=@FILE` (relative to the unit file, read
at each run; never a value): environment variables of the command, as
`weft submit --secret` gives them (docs/security.md).
"""

from __future__ import annotations

import configparser
import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .durations import parse_duration, parse_time
from .model import JobSpec, SpecError, check_job_name
from .resources import size_class
from .specfields import PARAM_NAME

SUFFIXES = {".workorder": ("Workorder", "workorder"), ".batch": ("Batch", "batch")}
KEYS = ("Exec", "Priority", "Size", "TimeLimit", "Deadline", "Every")
SIZES = ("tiny", "small", "medium", "large")
TYPES = ("int", "str", "path")
DEFAULT_DIR = "units"


def units_dir(given: str | Path | None) -> Path:
    """`--units`, else $WEFT_UNITS, else units/ in the current directory."""
    return Path(given or os.environ.get("WEFT_UNITS") or DEFAULT_DIR)


@dataclass
class Unit:
    name: str
    path: Path
    job_class: str  # workorder | batch
    command: list[str]
    params: dict[str, str] = field(default_factory=dict)  # name -> int | str | path | V1|V2
    priority: int = 0
    size: str | None = None
    time_limit: float | None = None
    deadline: str | None = None  # as written (ISO or +DURATION): resolved at submit
    every: float | None = None
    secrets: dict[str, str] = field(default_factory=dict)  # NAME -> "@FILE": read at each run (flowsecrets.py)

    def secret_values(self) -> dict[str, str] | None:
        """The [Secrets] files' texts, read now; SpecError (one line, no value) if one is bad."""
        from .flowsecrets import read_secrets

        return read_secrets(dict(self.secrets), self.path.parent, f"{self.path}: [Secrets] ")

    def describe(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "class": self.job_class, "exec": self.command,
                             "parameters": dict(self.params), "file": str(self.path)}
        for k in ("priority", "size", "time_limit", "deadline", "every"):
            v = getattr(self, k)
            if v not in (None, 0):
                d[k] = v
        return d

    def check_params(self, given: dict[str, str]) -> dict[str, Any]:
        """The given KEY=VALUE strings as typed values; SpecError names the
        parameter and what it allows."""
        out: dict[str, Any] = {}
        for k, v in given.items():
            kind = self.params.get(k)
            if kind is None:
                takes = ", ".join(sorted(self.params)) or "none"
                raise SpecError(f"unit {self.name} has no parameter {k} (it takes: {takes})")
            out[k] = _typed(self.name, k, kind, v)
        missing = [k for k in self.params if k not in given]
        if missing:
            raise SpecError(f"unit {self.name} needs " + ", ".join(
                f"--param {k}=... ({_allowed(self.params[k])})" for k in missing))
        return out

    def spec(self, given: dict[str, str]) -> tuple[JobSpec, dict[str, Any]]:
        """The job spec for a run with `given` parameters, and what a spec
        does not hold but the submitter acts on (`every`: a recurring job)."""
        params = self.check_params(given)
        spec = JobSpec(command=list(self.command), outputs=["stdout"], priority=self.priority,
                       timeout=self.time_limit, params=params or None, groups=[self.name],
                       job_class=self.job_class,
                       memory=size_class(self.size) if self.size is not None else None,
                       deadline=parse_time(self.deadline, f"unit {self.name}: Deadline=")
                       if self.deadline is not None else None)
        extra: dict[str, Any] = {}
        if self.every is not None:
            extra["every"] = self.every
        spec.validate()
        return spec, extra


def _allowed(kind: str) -> str:
    if kind in TYPES:
        return {"int": "an integer", "str": "any text", "path": "a path"}[kind]
    return "one of " + ", ".join(kind.split("|"))


def _typed(unit: str, key: str, kind: str, value: str) -> Any:
    if kind == "int":
        try:
            return int(value.strip())
        except ValueError:
            raise SpecError(f"unit {unit}: parameter {key}={value!r}: expected an integer") from None
    if kind == "str":
        return value
    if kind == "path":
        if not value or "\0" in value:
            raise SpecError(f"unit {unit}: parameter {key}={value!r}: expected a path")
        return value
    choices = kind.split("|")
    if value not in choices:
        raise SpecError(f"unit {unit}: parameter {key}={value!r}: allowed values are {', '.join(choices)}")
    return value


def load(path: Path) -> Unit:
    """Parse one unit file; SpecError names the file and the line's key."""
    where = str(path)
    kind = SUFFIXES.get(path.suffix)
    if kind is None:
        raise SpecError(f"{where}: a unit file is NAME.workorder or NAME.batch")
    name = path.stem
    try:
        check_job_name(name)
    except SpecError:
        raise SpecError(f"{where}: unit name {name!r}: use letters, digits, '.', '_', '-'") from None
    cp = configparser.ConfigParser(interpolation=None, strict=True, delimiters=("=",), comment_prefixes=("#", ";"),
                                   inline_comment_prefixes=None, empty_lines_in_values=False)
    cp.optionxform = str  # keys keep their case: parameter names are case-sensitive
    try:
        cp.read_string(path.read_text(), source=where)
    except (configparser.Error, UnicodeDecodeError) as e:
        raise SpecError(f"{where}: {' '.join(str(e).split())}") from None
    section, job_class = kind
    others = [s for s in cp.sections() if s not in (section, "Parameters", "Secrets")]
    if others:
        raise SpecError(f"{where}: unknown section [{others[0]}] (a {path.suffix} file has [{section}] and [Parameters])")
    if not cp.has_section(section):
        raise SpecError(f"{where}: no [{section}] section")
    body = cp[section]
    unknown = [k for k in body if k not in KEYS]
    if unknown:
        raise SpecError(f"{where}: unknown key {unknown[0]}= in [{section}] (keys: {', '.join(KEYS)})")
    if not body.get("Exec", "").strip():
        raise SpecError(f"{where}: [{section}] needs Exec=COMMAND")
    try:
        command = shlex.split(body["Exec"])
    except ValueError as e:
        raise SpecError(f"{where}: Exec=: {e}") from None
    unit = Unit(name, path, job_class, command)
    if "Priority" in body:
        try:
            unit.priority = int(body["Priority"])
        except ValueError:
            raise SpecError(f"{where}: Priority={body['Priority']!r}: expected an integer") from None
    if "Size" in body:
        if body["Size"] not in SIZES:
            raise SpecError(f"{where}: Size={body['Size']!r}: allowed values are {', '.join(SIZES)}")
        unit.size = body["Size"]
    try:
        if "TimeLimit" in body:
            unit.time_limit = parse_duration(body["TimeLimit"], "TimeLimit=")
        if "Every" in body:
            unit.every = parse_duration(body["Every"], "Every=")
        if "Deadline" in body:
            parse_time(body["Deadline"], "Deadline=")  # checked now, resolved at submit
            unit.deadline = body["Deadline"]
    except SpecError as e:
        raise SpecError(f"{where}: {e}") from None
    if cp.has_section("Parameters"):
        for k, v in cp["Parameters"].items():
            if not PARAM_NAME.fullmatch(k):
                raise SpecError(f"{where}: parameter name {k!r}: use letters, digits and '_'")
            v = v.strip()
            choices = v.split("|")
            if v not in TYPES and (len(choices) < 2 or not all(choices)):
                raise SpecError(f"{where}: parameter {k}={v!r}: expected int, str, path or VALUE1|VALUE2|...")
            unit.params[k] = v
    if cp.has_section("Secrets"):
        for k, v in cp["Secrets"].items():
            if not v.strip().startswith("@"):
                raise SpecError(f'{where}: [Secrets] {k}=: expected @FILE (a unit file names where a secret is, never '
                                "its value)")
            unit.secrets[k] = v.strip()
    return unit


def find(directory: Path, name: str) -> Unit:
    """The unit `name` in `directory` (NAME.workorder or NAME.batch)."""
    if not directory.is_dir():
        raise SpecError(f"units directory {directory} does not exist (--units DIR or $WEFT_UNITS)")
    found = [directory / (name + s) for s in SUFFIXES if (directory / (name + s)).is_file()]
    if not found:
        known = ", ".join(u.name for u in list_units(directory)) or "none"
        raise SpecError(f"no unit {name!r} in {directory} (units: {known})")
    if len(found) > 1:
        raise SpecError(f"unit {name!r} is defined twice in {directory}: {found[0].name} and {found[1].name}")
    return load(found[0])


def list_units(directory: Path) -> list[Unit]:
    """Every unit in `directory`, by name; a file that does not parse raises."""
    if not directory.is_dir():
        raise SpecError(f"units directory {directory} does not exist (--units DIR or $WEFT_UNITS)")
    return [load(p) for p in sorted(directory.iterdir()) if p.suffix in SUFFIXES and p.is_file()]
