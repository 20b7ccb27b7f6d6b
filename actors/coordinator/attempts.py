"""Attempts of a job, and the failure code of each ending.

An attempt is one run of a job's task that reached a process (starts that
never did are not attempts). Every attempt that ended without success is
one record on its job (`Job.history`) and one row of the journal's
`attempts` table, written in the group commit. The attempt that succeeded
is not recorded apart: the job's own row (node, start, end, exit code) is
it, and `views` adds it, so a job that succeeds at once costs nothing here.

A record is a tuple, (n, node, started, ended, outcome, exit, signal,
code, detail): `n` counts from 1, `code` is a JobFailure.
"""

from __future__ import annotations

import signal as _signal
from typing import Any

from weft.protocol.enums import ErrorCode, JobFailure, Outcome
from weft.protocol.tasks import TaskReport

from .graph import SUCCEEDED, Job

FIELDS = ("n", "node", "started", "ended", "outcome", "exit_code", "signal", "code", "detail")

# ErrorCodes of a task's failure news (soft or hard) -> the job failure they mean.
_STORAGE = JobFailure.STORAGE_UNAVAILABLE
_BY_ERROR = {
    "command-not-found": JobFailure.COMMAND_NOT_FOUND,
    "spawn-limit": JobFailure.SPAWN_LIMIT,
    "output-missing": JobFailure.OUTPUT_MISSING,
    "memory-limit": JobFailure.MEMORY_LIMIT,
    ErrorCode.CALLABLE_FAILED: JobFailure.CALLABLE_FAILED,
    ErrorCode.CALLABLE_NOT_FOUND: JobFailure.CALLABLE_FAILED,
    ErrorCode.BAD_DELEGATION: JobFailure.BAD_SPEC,
    ErrorCode.BAD_SPEC: JobFailure.BAD_SPEC,
    "missing-input": JobFailure.INPUT_LOST,
    "inputs-too-large": JobFailure.BAD_SPEC,
    ErrorCode.WORKER_LOST: JobFailure.CRASHED,
    ErrorCode.SHUTTING_DOWN: JobFailure.NODE_LOST,
    ErrorCode.INTERNAL: JobFailure.INTERNAL,
    ErrorCode.NO_SPACE: _STORAGE,
    ErrorCode.IO_ERROR: _STORAGE,
    ErrorCode.UNREACHABLE: _STORAGE,
    ErrorCode.TIMEOUT: _STORAGE,
    ErrorCode.CONNECTION_LOST: _STORAGE,
    ErrorCode.PEER_CLOSED: _STORAGE,
    ErrorCode.MISSING: _STORAGE,
    ErrorCode.NOT_FINISHED: _STORAGE,
    ErrorCode.NOT_READABLE: _STORAGE,
    ErrorCode.BUSY: _STORAGE,
    ErrorCode.SHORT_READ: _STORAGE,
}
_CODES = JobFailure._value2member_map_


def own_failure(t: TaskReport, is_call: bool) -> tuple[JobFailure, str | None, str | None]:
    """The code, detail and exit-action WHEN of a task that ended by the
    job's own fault (`failed-hard` or `timed-out`). WHEN is None when no
    exit action can match (the command never ran, a callable raised)."""
    if t.outcome == Outcome.TIMED_OUT:
        return JobFailure.TIMED_OUT, None, "timed-out"
    code = _BY_ERROR.get(t.code) if t.code else None
    if code is not None:
        return code, None, None
    if t.sig:
        return JobFailure.CRASHED, signal_name(t.sig), "crashed"
    if t.exit is not None and t.exit != 0:
        return JobFailure.EXIT_STATUS, str(t.exit), str(t.exit)
    if t.exit == 0:
        # Ended well, yet failed: a declared output was not written.
        return JobFailure.OUTPUT_MISSING, None, None
    return (JobFailure.CALLABLE_FAILED if is_call else JobFailure.INTERNAL), None, None


def soft_code(code: str | None) -> JobFailure:
    """The job failure an infrastructure failure means (`code`: the
    ErrorCode the node gave, or a JobFailure the coordinator chose)."""
    if code:
        known = _CODES.get(code)
        if known is not None:
            return known
        mapped = _BY_ERROR.get(code)
        if mapped is not None:
            return mapped
    return JobFailure.NODE_LOST


def signal_name(sig: int) -> str:
    try:
        return f"{sig} ({_signal.Signals(sig).name})"
    except ValueError:
        return str(sig)


def record(job: Job, node: str | None, started: float | None, ended: float, outcome: str,
           exit_code: int | None, sig: int | None, code: str | None, detail: str | None) -> tuple:
    """Append an ended attempt to `job`'s history; returns it (a journal row without the job id)."""
    history = job.history
    if history is None:
        history = job.history = []
    rec = (history[-1][0] + 1 if history else 1, node, started, ended, outcome, exit_code, sig, code, detail)
    history.append(rec)
    return rec


def views(job: Job) -> list[dict[str, Any]]:
    """Every ended attempt of `job`, oldest first, and the running one."""
    out = [{k: v for k, v in zip(FIELDS, rec, strict=True) if v is not None} for rec in job.history or ()]
    n = len(out) + 1
    if job.state == SUCCEEDED and job.ran_on is not None:
        d = {"n": n, "node": job.ran_on, "started": job.started, "ended": job.finished,
             "outcome": Outcome.SUCCESS, "exit_code": job.exit_code}
        out.append({k: v for k, v in d.items() if v is not None})
    elif job.node is not None and job.started is not None and not job.ahead:
        out.append({"n": n, "node": job.node, "started": job.started, "outcome": "running"})
    return out


_MESSAGES = {
    JobFailure.EXIT_STATUS: "the command exited with status {detail}",
    JobFailure.CRASHED: "killed by signal {detail}",
    JobFailure.TIMED_OUT: "ran longer than its time limit",
    JobFailure.PENDING_TIMEOUT: "not started within its pending timeout ({detail})",
    JobFailure.CANCELLED: "cancelled",
    JobFailure.COMMAND_NOT_FOUND: "the command was not found or is not executable",
    JobFailure.INPUT_FAILED: "an input's job failed: {detail}",
    JobFailure.INPUT_LOST: "an input is lost and nothing can make it again: {detail}",
    JobFailure.NODE_LOST: "its compute node was lost (too many times)",
    JobFailure.STORAGE_UNAVAILABLE: "storage could not be read or written (too many times)",
    JobFailure.SPAWN_LIMIT: "the compute node could not start its process (too many times)",
    JobFailure.NO_CAPACITY: "no compute node can run it",
    JobFailure.MEMORY_LIMIT: "it used more memory than allowed",
    JobFailure.OUTPUT_MISSING: "it did not write a declared output",
    JobFailure.CALLABLE_FAILED: "the callable raised an exception",
    JobFailure.BAD_SPEC: "its spec, delegation or exit action was invalid",
    JobFailure.INTERNAL: "internal error (a bug: see the daemon's log)",
}


def message(code: str | None, detail: str | None) -> str:
    """One line for a user: what the failure code means."""
    text = _MESSAGES.get(_CODES.get(code or ""), code or "failed")  # type: ignore[arg-type]
    return text.format(detail=detail or "?") if "{detail}" in text else text
