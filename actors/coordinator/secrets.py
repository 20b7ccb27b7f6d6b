"""Secret inputs on the coordinator (docs/security.md, "Secret inputs").

A submit's secrets (NAME -> value, protocol/secrets.py) are held in memory
only, in `state.secrets` (job -> the map; the jobs of one submit share one),
and go to the compute node in the job's start message, beside its spec; the
node puts them in the command's environment and writes them nowhere. They
are never in the journal: it keeps only each job's secret NAMES (a meta row),
so that after a restart a job that has not run yet fails with a clear cause
(`input-lost`: submit it again with its secrets) instead of running without
them. A job's secrets are dropped when it ends.

Not identity: a secret does not change a job's id, so a build cache does not
tell (by a new id, or a rerun) that a secret changed. To run identical work
again with another secret, name it and `--replace` it, or vary an input.
"""

from __future__ import annotations

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


def drop_ended(state: CoordinatorState, changed: list[Job]) -> None:
    """Ended jobs need their secrets no more (a resubmit brings them again)."""
    for job in changed:
        if job.done:
            state.secrets.pop(job.id, None)


def lost_after_restart(journal: Journal, unfinished: list[Job], fail: Any) -> list[Job]:
    """At replay: unfinished jobs that had secrets fail (their values were in
    memory only); returns the rest."""
    names = journal.get_meta(SECRET_JOBS)
    if not isinstance(names, dict) or not names:
        return unfinished
    kept = []
    for job in unfinished:
        had = names.get(job.id)
        if had:
            fail(job, f"its secret inputs ({', '.join(map(str, had))}) were kept in the coordinator's memory only, "
                      "and the coordinator restarted: submit it again with them",
                 code=JobFailure.INPUT_LOST, detail="secret inputs")
        else:
            kept.append(job)
    journal.set_meta(SECRET_JOBS, {})
    return kept
