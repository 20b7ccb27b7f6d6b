"""The journal's rows for new jobs: a job not yet tried is written with its
short row (its other columns are their defaults), any other new job in full;
both come back the same from a real SQLite journal after a restart."""

from __future__ import annotations

from pathlib import Path

from weft.actors.coordinator.journal import Journal
from weft.actors.coordinator.replay import replay
from weft.actors.coordinator.state import CoordinatorState
from weft.actors.model import JobSpec
from weft.actors.plainspec import PlainSpec
from weft.protocol.enums import JobState, Outcome
from weft.protocol.jobs import Submit

from .harness import Clock, Cluster, spec


def _replayed(path: Path) -> CoordinatorState:
    clock = Clock()
    state = CoordinatorState(epoch=2, wall=clock.wall, mono=clock.mono, follow_ahead=0)
    journal = Journal(path)
    replay(journal, state)
    journal.close()
    return state


def test_a_job_that_ran_before_its_first_commit_is_journalled_in_full(tmp_path: Path) -> None:
    # The group commit may first see a job after it ran and failed: its row
    # must carry the attempt, not the short row of a job not yet tried.
    c = Cluster(slots=2)  # (no journal: the rows are staged below, all at once)
    c.submit(spec("a"), spec("b"), spec("c", "a"))
    assert sorted(c.started()) == ["a", "b"]
    c.ends("a", "failed-soft", cause="worker died")
    c.ends("b", "failed-hard", cause="exit 3", exit_code=3)
    a, b, cj = c.job("a"), c.job("b"), c.job("c")
    assert a.attempts == 1 and a.state == JobState.RUNNABLE and b.state == JobState.FAILED
    path = tmp_path / "journal.sqlite"
    journal = Journal(path)
    for job in (a, b, cj):
        journal.stage_new(job)
    journal.close()
    state = _replayed(path)
    a2, b2, c2 = (state.graph.jobs[j] for j in ("a", "b", "c"))
    assert (a2.attempts, a2.token, a2.cause, a2.ran_on) == (1, a.token, "worker died", a.ran_on)
    assert (b2.state, b2.outcome, b2.exit_code, b2.cause) == (JobState.FAILED, Outcome.FAILED_HARD, 3, b.cause)
    assert b2.finished == b.finished and b2.started == b.started
    assert (c2.state, c2.attempts, c2.token, c2.cause) == (JobState.WAITING, 0, 0, None)
    assert c2.spec == cj.spec and c2.submitted == cj.submitted and c2.seq == cj.seq


def test_plain_specs_come_back_plain_with_their_ids(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    c = Cluster(journal=Journal(path))
    wires = [{"call": "m:f", "in": {"x": f"v{i}"}, "o": ["result"]} for i in range(3)] + [{"call": "m:f", "o": []}]
    results = c.submit(*Submit.from_wire({"jobs": wires}).jobs)
    assert all(type(r.job.spec) is PlainSpec for r in results)
    c.journal.close()
    state = _replayed(path)
    for r, w in zip(results, wires, strict=True):
        back = state.graph.jobs[r.job.id]
        assert type(back.spec) is PlainSpec and back.spec == JobSpec.from_wire(w)
        assert back.spec.job_id() == r.job.id == JobSpec.from_wire(w).job_id()


def test_new_rows_are_laid_out_in_submit_order(tmp_path: Path) -> None:
    # Jobs are dispatched and end roughly in submit order; their rows must sit
    # in that order on disk, so that a group commit of a few hundred updates
    # rewrites a few pages, not one page per row (hashed ids scatter them).
    c = Cluster()
    jobs = [s.job for s in c.submit(*[JobSpec(call="m:f", inputs={"x": str(i)}, outputs=["r"]) for i in range(200)])]
    assert [j.id for j in jobs] != sorted(j.id for j in jobs)  # (else the order tells nothing)
    journal = Journal(tmp_path / "journal.sqlite")
    for job in jobs:
        journal.stage_new(job)
    journal.commit()
    laid_out = [row[0] for row in journal._db.execute("SELECT id FROM jobs ORDER BY rowid")]
    journal.close()
    assert laid_out == [j.id for j in jobs]


def test_a_new_jobs_state_is_stored_as_its_plain_name(tmp_path: Path) -> None:
    # `weft` reads the journal after a restart, and so may a user with sqlite3:
    # the state column holds the state's name ("runnable"), nothing else.
    import sqlite3

    c = Cluster(computes=0)
    path = tmp_path / "journal.sqlite"
    journal = Journal(path)
    for s in c.submit(spec("a"), spec("b", "a")):
        journal.stage_new(s.job)
    journal.close()
    db = sqlite3.connect(path)
    try:
        states = sorted(row[0] for row in db.execute("SELECT state FROM jobs"))
    finally:
        db.close()
    assert states == ["runnable", "waiting"]  # (b waits for a)
    replayed = _replayed(path)
    assert sorted(j.state for j in replayed.graph.jobs.values()) == [JobState.RUNNABLE, JobState.WAITING]
