"""Forgetting finished jobs, in-process (gc.py): what garbage collection
takes and keeps, what `delete` refuses, what storage and the journal are
told; and that the janitor deletes only tasks of jobs we dispatched."""

from __future__ import annotations

from pathlib import Path

import pytest

from weft.actors.coordinator import gc
from weft.actors.coordinator.journal import Journal
from weft.actors.model import SpecError
from weft.bus.errors import BusError
from weft.protocol.enums import JobState, Outcome, TaskState
from weft.protocol.tasks import TaskReport

from .harness import Cluster, out, spec

HOUR = 3600.0


def finished(c: Cluster, *names: str) -> None:
    """Run each job (they must be runnable, one slot) to success, its output finished."""
    for n in names:
        c.run(n)
        c.object_finished(out(n))
    for n in names:
        assert c.job(n).state == JobState.SUCCEEDED


def test_old_finished_jobs_go_young_and_unfinished_ones_stay() -> None:
    c = Cluster()
    c.submit(spec("old"))
    finished(c, "old")
    c.clock.advance(2 * HOUR)
    c.submit(spec("young"))
    finished(c, "young")
    c.submit(spec("pending", "never"), spec("never", value="x"))  # (never runs: no round)
    jobs, kept = gc.collectable(c.graph, c.clock.wall(), HOUR)
    assert [j.id for j in jobs] == ["old"]
    assert kept == 1
    f = gc.forget(c.state, jobs)
    assert f.jobs == ["old"]
    assert "old" not in c.graph.jobs and out("old") not in c.graph.objects
    assert set(c.graph.jobs) == {"young", "pending", "never"}
    # Its output and its log, on the node holding them.
    assert f.objects == {"storage-0": [out("old"), "old/_log"]}
    assert f.bytes == 3


def test_a_forgotten_jobs_depfile_record_goes_with_it() -> None:
    c = Cluster()
    c.submit(spec("built"), spec("plain"))
    finished(c, "built", "plain")
    c.object_finished("built/_deps")  # its command wrote $WEFT_DEPFILE (compute/layout.py)
    f = gc.forget(c.state, [c.job("built"), c.job("plain")])
    assert f.objects == {"storage-0": [out("built"), "built/_log", "built/_deps", out("plain"), "plain/_log"]}
    assert "built/_deps" not in c.graph.objects  # nor kept in the coordinator's memory


def test_a_finished_job_an_unfinished_one_reads_is_kept_whatever_its_age() -> None:
    c = Cluster()
    c.submit(spec("a"), spec("slow"))
    finished(c, "a")
    c.submit(spec("reader", "a", "slow"))  # waits on slow, reads a
    c.clock.advance(30 * 86400)
    jobs, _ = gc.collectable(c.graph, c.clock.wall(), HOUR)
    assert "a" not in [j.id for j in jobs]
    with pytest.raises(SpecError, match="job a is needed by 1 unfinished job.*reader.*--force"):
        gc.resolve_for_delete(c.graph, ["a"], force=False)


def test_a_forced_delete_fails_the_waiting_readers_naming_it() -> None:
    c = Cluster()
    c.submit(spec("a"), spec("slow"))
    finished(c, "a")
    c.submit(spec("reader", "a", "slow"))
    jobs = gc.resolve_for_delete(c.graph, ["a"], force=True)
    f = gc.forget(c.state, jobs, fail_readers=True)
    assert f.failed == ["reader"]
    r = c.job("reader")
    assert r.state == JobState.FAILED and "job a was deleted" in r.cause


def test_delete_refuses_an_unfinished_job_and_an_unknown_one() -> None:
    c = Cluster()
    c.submit(spec("a"))
    assert c.started() == ["a"]
    with pytest.raises(SpecError, match="job a is running: only finished jobs can be deleted"):
        gc.resolve_for_delete(c.graph, ["a"], force=True)
    with pytest.raises(BusError, match="no job 'zz'"):
        gc.resolve_for_delete(c.graph, ["zz"], force=False)


def test_delete_by_name_takes_the_newest_version_and_keeps_the_older() -> None:
    c = Cluster()
    c.submit(spec("b", value="1"))
    finished(c, "b")
    c.state.submit([spec("b", value="2")], replace=True)
    finished(c, "b@2")
    [job] = gc.resolve_for_delete(c.graph, ["b"], force=False)
    assert job.id == "b@2"
    gc.forget(c.state, [job])
    assert c.graph.names.resolve("b") == "b"
    assert c.job("b").state == JobState.SUCCEEDED


def test_a_delegate_stays_while_its_delegator_stays() -> None:
    c = Cluster()
    c.submit(spec("d"))
    finished(c, "d")
    c.clock.advance(10)
    c.submit(spec("e"))
    finished(c, "e")
    c.job("e").delegate = "d"  # e's output is d's
    c.clock.advance(HOUR + 5)
    jobs, _ = gc.collectable(c.graph, c.clock.wall(), HOUR + 7)
    assert [j.id for j in jobs] == []  # e is young, so d stays though it is old
    jobs, _ = gc.collectable(c.graph, c.clock.wall(), 0.0)
    assert sorted(j.id for j in jobs) == ["d", "e"]


def test_forgotten_rows_leave_the_journal_and_it_shrinks_when_compacted(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.sqlite")
    c = Cluster(journal=journal, slots=1, prefetch=0)
    n = 300
    c.submit(*[spec(f"j{i}", value="x" * 2000) for i in range(n)])
    for i in range(n):
        finished(c, f"j{i}")
    c.take([])
    assert journal._db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0] == n
    jobs, _ = gc.collectable(c.graph, c.clock.wall() + 1, 0.0)
    f = gc.forget(c.state, jobs)
    assert len(f.jobs) == n and not c.graph.jobs and not c.graph.objects
    before = journal.size()
    journal.stage_forget(f.jobs)
    journal.commit()
    assert journal._db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0] == 0
    journal.compact()
    after = journal.size()
    print(f"journal of {n} jobs: {before} -> {after} bytes")
    assert after < before / 4


def test_a_job_forgotten_and_submitted_again_is_journaled(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.sqlite")
    c = Cluster(journal=journal)
    c.submit(spec("a"))
    finished(c, "a")
    f = gc.forget(c.state, [c.job("a")])
    journal.stage_forget(f.jobs)
    c.submit(spec("a"))  # staged new in the same batch: inserted after the delete
    journal.commit()
    [(state,)] = journal._db.execute("SELECT state FROM jobs WHERE id='a'").fetchall()
    assert state in ("waiting", "runnable")


def test_the_janitor_deletes_only_tasks_of_jobs_we_dispatched() -> None:
    c = Cluster()
    c.submit(spec("ours"))
    assert c.started() == ["ours"]
    c.ends("ours")
    # A task started by hand on the node (`weft task create`): token 0, no job of ours.
    hand = TaskReport("hello-abc", TaskState.DONE, 0, Outcome.SUCCESS, 0)
    c.task_news("compute-0", hand)
    deletions = {ref.node: jobs for ref, jobs in c.state.take_deletions()}
    assert deletions == {"compute-0": ["ours"]}
