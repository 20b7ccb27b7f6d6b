"""SpecError and the rules for names: the leaf under the job spec.

The spec's helper modules (durations, resources, specfields, windows) raise
SpecError and check names; they import them from here, and model.py imports
them, so no import runs back up to model.py.
"""

from __future__ import annotations

import functools
import re
from typing import Any

# A job id or an output name is one path component made of safe characters, so
# an object name can never climb out of a data directory ("../x", "/etc/x").
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
# A job id is a name, or a name's later version `NAME@K` (K >= 2; version 1
# keeps the plain name, so ids from before versions stay what they were).
_JOB_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}(?:@[1-9][0-9]{0,8})?")
_OUTPUT_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,63}")


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


def check_job_name(name: Any) -> str:
    """A user-given job name: a job id without a version (`@` is the version's)."""
    if type(name) is not str or not _NAME_RE.fullmatch(name) or ".." in name:
        raise SpecError(f"invalid job name {name!r}: use letters, digits, '.', '_', '-' (max 128)")
    return name


# Priorities and time limits travel as msgpack and are journaled as SQLite
# integers: both hold 64 bits.
_INT64 = (-(1 << 63), (1 << 63) - 1)
