"""Checks of a job spec's submission-control fields: a unit's parameters,
the parent and root of a child job, a root's spawn limit, time windows.

Apart from model.py so the spec stays one screen of rules; these are
checked only when a spec has any of them (most have none).
"""

from __future__ import annotations

import re
from typing import Any

from .names import _INT64, SpecError, check_job_id

# A parameter name becomes the variable suffix of $WEFT_PARAM_<KEY>.
PARAM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
MAX_PARAMS = 256
WINDOW_KINDS = ("allow", "deny")
MAX_BLOCK = 16


def param_env_var(name: str) -> str:
    """The environment variable a parameter reaches the command in."""
    return "WEFT_PARAM_" + name.upper()


def check_params(params: Any) -> dict[str, Any]:
    if not isinstance(params, dict):
        raise SpecError(f"parameters must be a map, got {type(params).__name__}")
    if len(params) > MAX_PARAMS:
        raise SpecError(f"{len(params)} parameters: at most {MAX_PARAMS}")
    seen: dict[str, str] = {}
    for k, v in params.items():
        if not isinstance(k, str) or not PARAM_NAME.fullmatch(k):
            raise SpecError(f"parameter name {k!r}: use letters, digits and '_' (not starting with a digit)")
        var = param_env_var(k)
        if var in seen:
            raise SpecError(f"parameters {seen[var]!r} and {k!r} both map to ${var}: rename one")
        seen[var] = k
        if isinstance(v, bool) or not isinstance(v, int | str):
            raise SpecError(f"parameter {k}: value must be a string or an integer, got {type(v).__name__}")
        if isinstance(v, int) and not _INT64[0] <= v <= _INT64[1]:
            raise SpecError(f"parameter {k}: {v} does not fit in 64 bits")
        if isinstance(v, str) and "\0" in v:
            raise SpecError(f"parameter {k} contains a NUL byte and cannot be an environment value")
    return params


def check_windows(windows: Any) -> None:
    if not isinstance(windows, list | tuple):
        raise SpecError("'windows' must be a list of [allow|deny, RULE]")
    from .windows import parse_rule

    for w in windows:
        if not isinstance(w, list | tuple) or len(w) != 2 or w[0] not in WINDOW_KINDS or not isinstance(w[1], str):
            raise SpecError(f"time window {w!r}: expected [allow|deny, RULE]")
        parse_rule(w[1], f"--{w[0]}")


def check_submission_fields(spec: Any) -> None:
    if spec.params is not None:
        check_params(spec.params)
    for what, v in (("spawned_by", spec.spawned_by), ("root", spec.root)):
        if v is not None:
            try:
                check_job_id(v)
            except SpecError as e:
                raise SpecError(f"{what}: {e}") from None
    ms = spec.max_spawns
    if ms is not None and (not isinstance(ms, int) or isinstance(ms, bool) or not 0 <= ms <= _INT64[1]):
        raise SpecError(f"max spawns {ms!r}: expected a whole number >= 0")
    if spec.windows:
        check_windows(spec.windows)
    if spec.block:
        check_block(spec.block)


def check_block(paths: Any) -> None:
    if not isinstance(paths, list | tuple) or len(paths) > MAX_BLOCK:
        raise SpecError(f"'block' must be a list of at most {MAX_BLOCK} paths")
    for p in paths:
        if not isinstance(p, str) or not p or "\0" in p or len(p) > 4095:
            raise SpecError(f"--block {p!r}: expected a path (no NUL, at most 4095 bytes)")
