"""What `status` shows of a job: its summary plus what a user needs for
`weft status JOB` (what it runs, what it reads, where and how it last ran)."""

from __future__ import annotations

from typing import Any

from weft.actors.model import split_version

from .attempts import message
from .graph import SUCCEEDED, WAITING, Job

# Immediate input values are shown cut to this many characters.
VALUE_CHARS = 60
# Spec fields shown as they are set (a list when not empty, a value when not
# None), under the name a user reads.
_AS_SET = (("timeout", "time_limit"), ("groups", "groups"), ("after", "after"),
           ("after_groups", "after_groups"), ("cancel_time", "max_cancellation_time"),
           ("pending_timeout", "pending_timeout"), ("max_spawns", "max_spawns"), ("block", "block"))


def _short(value: str | bytes) -> str:
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    return text if len(text) <= VALUE_CHARS else text[: VALUE_CHARS - 1] + "…"


def job_detail(job: Job, d: dict[str, Any]) -> dict[str, Any]:
    """Add the job's work, inputs and last run to its summary `d`."""
    spec = job.spec
    if spec.name is not None:
        d["version"] = split_version(job.id)[1]  # (NAME@K; the plain name is version 1)
    if spec.command is not None:
        d["command"] = spec.command
    else:
        d["call"] = spec.call
    if spec.inputs:
        d["inputs"] = {k: _short(v) for k, v in spec.inputs.items()}
    if spec.refs:
        d["refs"] = dict(spec.refs)  # input name -> the object it reads
    if job.ran_on is not None:
        d["ran_on"] = job.ran_on
    if job.exit_code is not None:
        d["exit_code"] = job.exit_code
    if job.state == WAITING and job.missing:
        # What it still waits on: inputs not made and `after` jobs not succeeded.
        d["pending"] = job.missing
    if job.code is not None:
        d["message"] = message(job.code, job.detail)
    if spec.retries:
        d["retries"] = spec.retries
        d["retried"] = job.own
    if spec.params is not None:
        d["parameters"] = dict(spec.params)
    if spec.spawned_by is not None:
        d["spawned_by"], d["root"] = spec.spawned_by, spec.root
    for attr, key in _AS_SET:
        value = getattr(spec, attr)
        if value is not None and not (isinstance(value, list | tuple) and not value):
            d[key] = list(value) if isinstance(value, tuple) else value
    if spec.on_exit:
        d["on_exit"] = {w: a if isinstance(a, str) else f"submit:{a.get('flow') or 'flow'}"
                        for w, a in spec.on_exit.items()}
    return d


def wait_row(job: Job) -> list | None:
    """A succeeded job's view as a `wait` row (protocol/waitrows.py: its
    order of values), when the row holds everything its view shows; None
    when it does not (a cause from an earlier attempt, a delegation, a
    deadline, ...): that job is answered with its view."""
    if (job.state is not SUCCEEDED or job.cause is not None or job.delegate is not None or job.parent is not None
            or job.tail is not None or job.code is not None or job.detail is not None or job.node is not None):
        return None
    spec = job.spec
    if spec.deadline is not None:
        return None
    return [job.id, job.state, job.priority, job.demand, job.submitted, spec.outputs,
            job.attempts - job.excused - (1 if job.ahead else 0), spec.name or None, job.owner, job.outcome,
            job.started, job.finished]
