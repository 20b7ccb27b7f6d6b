"""Secret inputs on the coordinator (docs/security.md, "Secret inputs").

A submit's secrets (NAME -> value, protocol/secrets.py) are held in memory,
in `state.secrets` (job -> the map; the jobs of one submit share one), and go
to the compute node in the job's start message, beside its spec; the node
puts them in the command's environment and writes them nowhere. They are
never in the journal: it keeps only each job's secret NAMES (a meta row).
The values are also kept in a file of their own beside it, `secrets` in the
coordinator's data directory (mode 0600, replaced whole at each change: a
submit with secrets, or a job that had some ending; removed when none is
left), so that a job not run before a coordinator restart gets them after.
A job whose names the journal has but whose values the file lacks (a file
lost, or written by an older weft) fails with a clear cause (`input-lost`:
submit it again with its secrets) instead of running without them. Not
encrypted: a key would have to sit beside it on the same disk. What keeps
jobs from reading it is the sandbox (docs/security.md).

Not identity: a secret does not change a job's id, so a build cache does not
tell (by a new id, or a rerun) that a secret changed. To run identical work
again with another secret, name it and `--replace` it, or vary an input.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from weft.actors.model import JobSpec, SpecError
from weft.protocol.enums import JobFailure

if TYPE_CHECKING:
    from .journal import Journal
    from .records import Job
    from .state import CoordinatorState
    from .submit import Submitted

# The journal's meta key: job -> the names (never the values) of its secrets.
SECRET_JOBS = "secret_jobs"
FILE = "secrets"
log = logging.getLogger("weft.coordinator")


def path_of(journal: Journal) -> Path:
    return Path(journal.path).parent / FILE


def save(state: CoordinatorState, journal: Journal) -> None:
    """The secrets of jobs not ended, to their file (0600, written apart and renamed in: never half)."""
    path = path_of(journal)
    if not state.secrets:
        path.unlink(missing_ok=True)
        return
    tmp = path.with_name(f".{FILE}.{os.getpid()}.tmp")
    try:
        tmp.unlink(missing_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(state.secrets, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        # Only a restart needs the file: the jobs run now either way, and fail input-lost after one.
        log.warning("secret inputs not saved to %s (a restart would lose them): %s", path, e)


def load(journal: Journal) -> dict[str, dict[str, str]]:
    """The saved secrets (job -> map); {} when there are none or the file is unusable (said once)."""
    path = path_of(journal)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        log.warning("secret inputs in %s not usable: %s", path, e)
        return {}
    if not isinstance(doc, dict):
        return {}
    return {j: v for j, v in doc.items() if isinstance(v, dict)
            and all(isinstance(k, str) and isinstance(x, str) for k, x in v.items())}


def check(specs: list[JobSpec], secrets: dict[str, str] | None) -> None:
    if secrets and any(s.command is None for s in specs):
        raise SpecError("secret inputs (--secret) are for command jobs: they arrive as environment variables")


def keep(state: CoordinatorState, journal: Journal, results: list[Submitted], secrets: dict[str, str] | None) -> None:
    """The secrets of the jobs this submit made or runs again (a job it
    joined or answered from cache keeps what it had)."""
    if not secrets:
        return
    for r in results:
        if not r.cached and not r.joined:
            state.secrets[r.job.id] = secrets
    journal.stage_meta(SECRET_JOBS, {jid: sorted(v) for jid, v in state.secrets.items()})
    save(state, journal)


def drop_ended(state: CoordinatorState, changed: list[Job], journal: Journal | None = None) -> None:
    """Ended jobs need their secrets no more (a resubmit brings them again): out of memory and the file."""
    dropped = False
    for job in changed:
        if job.done and state.secrets.pop(job.id, None) is not None:
            dropped = True
    if dropped and journal is not None:
        save(state, journal)


def lost_after_restart(journal: Journal, unfinished: list[Job], fail: Any,
                       state: CoordinatorState | None = None) -> list[Job]:
    """At replay: unfinished jobs that had secrets get them back from their
    file (into `state`); those whose values are not there fail. Returns the
    jobs that go on."""
    names = journal.get_meta(SECRET_JOBS)
    if not isinstance(names, dict) or not names:
        path_of(journal).unlink(missing_ok=True)
        return unfinished
    saved = load(journal) if state is not None else {}
    kept = []
    for job in unfinished:
        had = names.get(job.id)
        values = saved.get(job.id)
        if had and values is not None and set(values) >= set(map(str, had)):
            state.secrets[job.id] = values  # type: ignore[union-attr]
            kept.append(job)
        elif had:
            fail(job, f"its secret inputs ({', '.join(map(str, had))}) were lost with the coordinator's restart "
                      "(not in its secrets file): submit it again with them",
                 code=JobFailure.INPUT_LOST, detail="secret inputs")
        else:
            kept.append(job)
    if state is not None:
        journal.set_meta(SECRET_JOBS, {jid: sorted(v) for jid, v in state.secrets.items()})
        save(state, journal)
    else:
        journal.set_meta(SECRET_JOBS, {})
    return kept
