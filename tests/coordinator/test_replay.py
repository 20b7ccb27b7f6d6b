"""A restarted coordinator rebuilds its state from a real SQLite journal."""

from __future__ import annotations

from pathlib import Path

from weft.actors.coordinator.graph import RUNNABLE, RUNNING, SUCCEEDED, WAITING
from weft.actors.coordinator.journal import Journal
from weft.actors.coordinator.replay import replay
from weft.actors.coordinator.state import CoordinatorState
from weft.actors.coordinator.views import job_detail
from weft.protocol.enums import JobState, ObjectState, Outcome, TaskState
from weft.protocol.objects import ObjectInfo
from weft.protocol.tasks import TaskReport

from .harness import Clock, Cluster, out, spec


def restart(path: Path, old: Cluster, **kw) -> Cluster:
    """Close the old journal, open it again, replay into a new state (epoch+1)."""
    old.journal.close()
    journal = Journal(path)
    clock = Clock()
    state = CoordinatorState(epoch=old.state.epoch + 1, wall=clock.wall, mono=clock.mono, follow_ahead=0)
    replay(journal, state)
    return Cluster(journal=journal, state=state, clock=clock, storages=0, computes=0, **kw)


def test_unfinished_jobs_are_relinked_to_their_inputs_after_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    c = Cluster(journal=Journal(path))
    c.submit(spec("a"), spec("b", "a"), spec("c", "b"))
    c.run("a")
    assert c.job("a").state == SUCCEEDED and c.job("b").state == RUNNABLE
    c2 = restart(path, c)
    assert c2.job("a").state == SUCCEEDED
    assert c2.job("b").state == WAITING and c2.job("c").state == WAITING
    # Storage comes back holding a's output: b runs, then c after it.
    c2.add_storage("storage-0", [ObjectInfo(out("a"), ObjectState.FINISHED, 3)])
    c2.add_compute("compute-0", 1)
    c2.clock.advance(5.0)
    assert c2.started() == ["b"]
    c2.ends("b")
    assert c2.started() == ["c"]


def test_finished_jobs_are_not_run_again_after_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    c = Cluster(journal=Journal(path))
    c.submit(spec("a"))
    c.run("a")
    c2 = restart(path, c)
    c2.add_storage("storage-0", [ObjectInfo(out("a"), ObjectState.FINISHED, 3)])
    c2.add_compute("compute-0", 1)
    assert c2.started() == []
    assert c2.job("a").state == SUCCEEDED and c2.state.settle_until <= c2.clock.mono()
    [s] = c2.submit(spec("a"))
    assert s.cached


def test_unfinished_work_gives_running_tasks_time_to_be_adopted(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    c = Cluster(journal=Journal(path))
    c.submit(spec("a"))
    c.started()
    c2 = restart(path, c)
    assert c2.state.settle_until > c2.clock.mono()


def test_a_running_task_is_adopted_without_the_error_of_an_earlier_attempt(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    c = Cluster(journal=Journal(path))
    c.submit(spec("a"), spec("b", "a"))
    c.started()
    c.ends("a", "failed-soft", cause="worker died")
    assert c.started() == ["a"]
    token = c.job("a").token
    c2 = restart(path, c)
    assert c2.job("a").cause == "worker died"  # journalled with the soft failure
    c2.add_storage("storage-0")
    c2.add_compute("compute-0", 1, [TaskReport("a", TaskState.RUNNING, token, started=1.0)])
    a = c2.job("a")
    assert a.state == RUNNING and a.node == "compute-0" and a.token == token
    view = job_detail(a, a.summary())
    assert "cause" not in view and view["ran_on"] == "compute-0"
    c2.ends("a")
    assert c2.job("b").state == RUNNABLE


def test_a_delegation_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    c = Cluster(journal=Journal(path))
    c.submit(spec("a"), spec("dep", "a"))
    c.started()
    c.ends("a", delegation={"job": spec("b").to_wire(), "stream": "result"})
    c2 = restart(path, c)
    assert c2.graph.resolve(out("a")).name == out("b")
    assert c2.job("b").parent == "a" and c2.job("b").state == RUNNABLE
    c2.add_storage("storage-0")
    c2.add_compute("compute-0", 1)
    c2.clock.advance(5.0)
    assert c2.started() == ["b"]
    c2.ends("b")
    assert c2.started() == ["dep"]


def _old_journal(path: Path, rows: list[tuple]) -> None:
    """A journal as the coordinator wrote it before the state enums: the
    same schema, states and outcomes as plain strings."""
    import sqlite3

    import msgpack

    Journal(path).close()  # the schema
    db = sqlite3.connect(str(path))
    db.executemany("INSERT INTO jobs (id, seq, spec, state, outcome, cause, submitted, finished, delegate, "
                   "parent, attempts) VALUES (?,?,?,?,?,?,?,?,?,?,?)", [
        (jid, seq, msgpack.packb(s.to_wire()), state, outcome, cause, 100.0 + seq, finished, None, None, attempts)
        for jid, seq, s, state, outcome, cause, finished, attempts in rows
    ])
    db.commit()
    db.close()


def test_a_journal_written_before_the_state_enums_replays(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    _old_journal(path, [
        ("a", 1, spec("a"), "succeeded", "success", None, 110.0, 1),
        ("b", 2, spec("b", "a"), "running", None, None, None, 1),
        ("x", 3, spec("x"), "failed", "failed-hard", "command 'x' failed with exit code 1", 111.0, 1),
        ("y", 4, spec("y"), "cancelled", "cancelled", "cancelled by user", 112.0, 0),
        ("z", 5, spec("z"), "runnable", None, "worker died", None, 2),
    ])
    journal = Journal(path)
    clock = Clock()
    state = CoordinatorState(epoch=2, wall=clock.wall, mono=clock.mono, follow_ahead=0)
    assert replay(journal, state) == 2
    c = Cluster(journal=journal, state=state, clock=clock, storages=0, computes=0)
    jobs = {j: c.job(j) for j in "abxyz"}
    assert {j: (job.state, job.outcome) for j, job in jobs.items()} == {
        "a": (JobState.SUCCEEDED, Outcome.SUCCESS), "b": (JobState.WAITING, None),
        "x": (JobState.FAILED, Outcome.FAILED_HARD), "y": (JobState.CANCELLED, Outcome.CANCELLED),
        "z": (JobState.RUNNABLE, None),  # no inputs: queued at once
    }
    # Members, not strings that look like them: the rules compare members.
    assert all(type(job.state) is JobState for job in jobs.values())
    assert all(job.outcome is None or type(job.outcome) is Outcome for job in jobs.values())
    assert jobs["x"].cause == "command 'x' failed with exit code 1" and jobs["z"].attempts == 2
    # The unfinished ones run again once their inputs are there, and what
    # they become is journalled as the same strings as before.
    c.add_storage("storage-0", [ObjectInfo(out("a"), ObjectState.FINISHED, 3)])
    c.add_compute("compute-0", 2)
    c.clock.advance(5.0)
    assert sorted(c.started()) == ["b", "z"]
    c.ends("b")
    c.ends("z", "failed-hard", cause="boom")
    journal.close()
    import sqlite3

    db = sqlite3.connect(str(path))
    rows = dict((r[0], r[1:]) for r in db.execute("SELECT id, state, typeof(state), outcome FROM jobs"))
    db.close()
    assert rows["b"] == ("succeeded", "text", "success")
    assert rows["z"] == ("failed", "text", "failed-hard")
    assert rows["a"] == ("succeeded", "text", "success")


def test_a_journal_row_in_a_state_this_version_does_not_know_is_run_again(tmp_path: Path) -> None:
    """A state string from another version is unfinished work, not a crash."""
    path = tmp_path / "journal.sqlite"
    _old_journal(path, [("a", 1, spec("a"), "paused", None, None, None, 0)])
    journal = Journal(path)
    clock = Clock()
    state = CoordinatorState(epoch=2, wall=clock.wall, mono=clock.mono, follow_ahead=0)
    assert replay(journal, state) == 1
    c = Cluster(journal=journal, state=state, clock=clock)
    assert c.job("a").state == JobState.RUNNABLE
    c.clock.advance(5.0)
    assert c.started() == ["a"]
