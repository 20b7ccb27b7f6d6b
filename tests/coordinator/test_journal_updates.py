"""The journal's row of a job that changed reads back as the job was
(real SQLite): a success writes only the columns it changes, and a failure's
columns, cleared in memory by a resubmit, are cleared on disk too."""

from __future__ import annotations

from pathlib import Path

from weft.actors.coordinator.journal import Journal
from weft.protocol.enums import JobState

from .harness import Cluster, spec
from .test_replay import restart

# The columns a job's update writes (journal.py), as the job holds them.
_FIELDS = ("state", "outcome", "cause", "finished", "attempts", "excused", "token", "ran_on", "started",
           "exit_code", "code", "detail", "own", "tail", "empty")


def _row(job) -> tuple:  # noqa: ANN001
    return tuple(getattr(job, f) for f in _FIELDS)


def test_a_success_replays_with_every_column_it_had(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    c = Cluster(journal=Journal(path))
    c.submit(spec("a"), spec("b", "a"))
    c.run("a")
    c.started()
    c.ends("b", exit_code=0)
    before = {j: _row(c.job(j)) for j in ("a", "b")}
    assert before["b"][0] == JobState.SUCCEEDED and before["b"][6] > 0 and before["b"][7] == "compute-0"
    c2 = restart(path, c)
    assert {j: _row(c2.job(j)) for j in ("a", "b")} == before


def test_a_failure_cleared_by_a_resubmit_is_cleared_in_the_journal(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    c = Cluster(journal=Journal(path))
    c.submit(spec("a"))
    c.started()
    c.ends("a", "failed-hard", cause="boom", code="exit", exit_code=3)
    failed = c.job("a")
    assert failed.state == JobState.FAILED and failed.cause == "boom"  # (journalled: the harness commits)
    # The resubmit, its run and its success within one commit window: the
    # journal writes the job once, after its failure columns were cleared.
    journal, c.journal = c.journal, None
    c.submit(spec("a"))
    c.run("a")
    a = c.job("a")
    assert a.state == JobState.SUCCEEDED and a.cause is None and a.code is None
    journal.stage(a)
    journal.commit()
    c.journal = journal
    c2 = restart(path, c)
    assert _row(c2.job("a")) == _row(a)
    assert (c2.job("a").cause, c2.job("a").code, c2.job("a").detail) == (None, None, None)
