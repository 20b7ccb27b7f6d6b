"""How a failure is worded for the jobs it takes down with it.

A dependent's cause names the root failure once: the job whose own failure
started it, by its flow name (`cbuild:cc-ares_buf`) or its command (`cc -c
ares_buf.c`) beside its id, and that job's own message; not a chain of
every job in between (`input ...: job ... failed: input ...: ...`).

    input j1/stdout: job j1 (cbuild:cc-ares_buf) failed: command 'cc' failed with exit code 1: ...
    input j2/lib: job j2 failed, because job j1 (cbuild:cc-ares_buf) failed: command 'cc' ...
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from weft.protocol.enums import JobFailure

if TYPE_CHECKING:
    from .records import Job

# A command shown in a cause is cut to this many characters.
COMMAND_CHARS = 60


def label(job: Job, labels: dict[str, str]) -> str:
    """What a person knows the job by: its flow name, else its command
    (or callable), cut short."""
    known = labels.get(job.id)
    if known is not None:
        return known
    spec = job.spec
    text = " ".join(spec.command) if spec.command is not None else str(spec.call)
    return text if len(text) <= COMMAND_CHARS else text[:COMMAND_CHARS - 3] + "..."


def root_failure(job: Job, state: str, cause: str, labels: dict[str, str]) -> str:
    """`job J (label) failed: cause`: the root of a cascade, said once."""
    return f"job {job.id} ({label(job, labels)}) {state}: {cause}".rstrip(": ")


def dependent_cause(prefix: str, via: Job, via_state: str, root: Job, root_text: str) -> str:
    """A dependent's cause: what it waited on (`prefix`: `input OBJ: ` or
    `after `), the job that did not make it, and the root failure."""
    if via is root:
        return f"{prefix}{root_text}"
    return f"{prefix}job {via.id} {via_state}, because {root_text}"


def cause_from_failed(prefix: str, failed: Job, jobs: dict[str, Job], labels: dict[str, str]) -> str:
    """The cause of a job that waits on `failed`, already failed or
    cancelled when it came (so no cascade worded it): `failed`'s root is
    found by following the jobs that failed it (their `detail`)."""
    root = failed
    for _ in range(10_000):  # (bounded: a chain of failed inputs is finite, but be sure)
        if root.code != JobFailure.INPUT_FAILED or not root.detail:
            break
        nxt = jobs.get(root.detail)
        if nxt is None or nxt is root:
            break
        root = nxt
    if root is not failed and root.code == JobFailure.INPUT_FAILED:
        root = failed  # the chain is gone (forgotten): its own cause says it
    text = root_failure(root, root.state, root.cause or "", labels)
    return dependent_cause(prefix, failed, failed.state, root, text)
