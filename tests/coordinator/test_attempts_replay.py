"""Attempts, nodes, times and `weft stats` counters survive a coordinator
restart (a real SQLite journal, replayed into a new state)."""

from __future__ import annotations

from pathlib import Path

import pytest

from weft.actors.coordinator.effects import Dispatch
from weft.actors.coordinator.graph import RUNNING, SUCCEEDED
from weft.actors.coordinator.journal import Journal
from weft.actors.coordinator.replay import replay
from weft.actors.coordinator.state import CoordinatorState
from weft.actors.coordinator.views import job_detail
from weft.protocol.enums import ObjectState, Outcome, TaskState
from weft.protocol.objects import ObjectInfo
from weft.protocol.tasks import TaskReport

from .harness import Clock, Cluster, out, spec


def start(path: Path, epoch: int = 1) -> Cluster:
    """A coordinator as node.py starts one: journal opened and replayed."""
    journal = Journal(path)
    clock = Clock()
    state = CoordinatorState(epoch=epoch, wall=clock.wall, mono=clock.mono, follow_ahead=0)
    replay(journal, state)
    return Cluster(journal=journal, state=state, clock=clock, storages=0, computes=0)


def restart(path: Path, old: Cluster) -> Cluster:
    old.journal.close()
    return start(path, old.state.epoch + 1)


def view(c: Cluster, name: str) -> dict:
    job = c.job(name)
    return job_detail(job, job.summary(c.clock.wall()))


def test_attempts_node_and_times_of_finished_jobs_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    c = start(path)
    c.add_storage("storage-0")
    c.add_compute("compute-0")
    c.submit(spec("a", command=["true"]))
    c.started()
    c.ends("a", "failed-soft", cause="worker died")
    c.clock.advance(1)
    c.started()
    c.clock.advance(2)
    c.ends("a", exit_code=0)
    before = view(c, "a")
    assert before["attempts"] == 2 and before["ran_on"] == "compute-0" and "started" in before
    c2 = restart(path, c)
    after = view(c2, "a")
    assert c2.job("a").state == SUCCEEDED
    for key in ("attempts", "ran_on", "started", "finished", "exit_code", "ran"):
        assert after[key] == before[key], key


def test_a_job_running_at_the_restart_is_adopted_with_its_node_time_and_one_attempt(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    c = start(path)
    c.add_storage("storage-0")
    c.add_compute("compute-0")
    c.submit(spec("a"), spec("b"))
    c.add_compute("compute-1")
    assert sorted(c.started()) == ["a", "b"]
    tokens = {n: c.job(n).token for n in "ab"}
    c2 = restart(path, c)
    c2.add_storage("storage-0")
    # a still runs on compute-0; b ended on compute-1 while no coordinator was up.
    c2.add_compute("compute-0", 1, [TaskReport("a", TaskState.RUNNING, tokens["a"], started=1001.0)])
    done = TaskReport("b", TaskState.DONE, tokens["b"], Outcome.SUCCESS, 0, None, None, None, False,
                      {"result": ["storage-0", 3, b"abc"]}, started=1002.0, finished=1003.0)
    c2.add_compute("compute-1", 1, [done])
    c2.object_finished(out("b"))
    a, b = view(c2, "a"), view(c2, "b")
    assert c2.job("a").state == RUNNING
    assert a["node"] == "compute-0" and a["started"] == 1001.0 and a["attempts"] == 1
    assert c2.job("b").state == SUCCEEDED
    assert b["ran_on"] == "compute-1" and b["started"] == 1002.0 and b["attempts"] == 1
    # And the next restart still says so.
    c3 = restart(path, c2)
    b3 = view(c3, "b")
    assert b3["attempts"] == 1 and b3["ran_on"] == "compute-1" and b3["started"] == 1002.0


def test_a_job_journalled_while_running_is_not_counted_twice_when_adopted(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    c = start(path)
    c.add_storage("storage-0")
    c.add_compute("compute-0")
    c.submit(spec("a"))
    c.started()
    # Its row is written while it runs (the group commit reads the job as it is then).
    c.journal.stage(c.job("a"))
    c.journal.commit()
    token = c.job("a").token
    c2 = restart(path, c)
    c2.add_storage("storage-0")
    c2.add_compute("compute-0", 1, [TaskReport("a", TaskState.RUNNING, token, started=1001.0)])
    assert view(c2, "a")["attempts"] == 1


def test_stats_counters_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    c = start(path)
    c.add_storage("storage-0")
    c.add_compute("compute-0")
    c.submit(spec("a"), spec("b"))
    c.run("a")
    c.started()
    c.ends("b", "failed-hard", cause="boom")
    stats = dict(c.state.stats)
    assert stats["dispatched"] == 2 and stats["succeeded"] == 1 and stats["failed"] == 1
    c2 = restart(path, c)
    assert c2.state.stats == stats
    c2.add_storage("storage-0", [ObjectInfo(out("c0"), ObjectState.FINISHED, 3)])
    c2.add_compute("compute-0")
    c2.submit(spec("c"))
    c2.run("c")
    assert c2.state.stats["succeeded"] == 2 and c2.state.stats["dispatched"] == 3


def test_a_journal_from_before_the_run_columns_opens_and_replays(tmp_path: Path) -> None:
    import sqlite3

    import msgpack

    path = tmp_path / "journal.sqlite"
    db = sqlite3.connect(str(path))
    db.executescript("""
        CREATE TABLE jobs (id TEXT PRIMARY KEY, seq INTEGER NOT NULL, spec BLOB NOT NULL, state TEXT NOT NULL,
            outcome TEXT, cause TEXT, submitted REAL NOT NULL, finished REAL, delegate TEXT, parent TEXT,
            attempts INTEGER NOT NULL DEFAULT 0);
        CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB);
    """)
    db.execute("INSERT INTO jobs VALUES (?,?,?,?,?,?,?,?,?,?,?)",
               ("a", 1, msgpack.packb(spec("a").to_wire()), "succeeded", "success", None, 100.0, 101.0,
                None, None, 1))
    db.commit()
    db.close()
    c = start(path, epoch=2)
    a = view(c, "a")
    assert c.job("a").state == SUCCEEDED and a["attempts"] == 1 and "ran_on" not in a
    c.submit(spec("b"))  # and it takes new rows with the new columns
    c2 = restart(path, c)
    assert c2.job("b").state != SUCCEEDED and c2.job("a").state == SUCCEEDED


def test_a_job_that_ran_unjournalled_before_a_crash_shows_the_attempt_that_made_its_outputs(tmp_path: Path) -> None:
    # Dispatched, run and ended inside one group-commit window, then the
    # coordinator died: the journal still says waiting at 0 attempts, the
    # node deleted the ended task, and only storage shows it ran.
    path = tmp_path / "journal.sqlite"
    c = start(path)
    c.add_storage("storage-0")
    c.add_compute("compute-0")
    c.submit(spec("a"))
    journal, c.journal = c.journal, None  # nothing from here reaches the journal
    c.run("a")
    c.journal = journal
    c2 = restart(path, c)
    assert view(c2, "a")["attempts"] == 0
    c2.add_storage("storage-0", [ObjectInfo(out("a"), ObjectState.FINISHED, 3)])
    c2.add_compute("compute-0")
    c2.clock.advance(10)  # past the settle time given to inventories
    assert c2.started() == []  # not run again: its output exists
    assert c2.job("a").state == SUCCEEDED
    assert view(c2, "a")["attempts"] == 1
    c3 = restart(path, c2)
    assert view(c3, "a")["attempts"] == 1


@pytest.mark.parametrize("journalled", [False, True])
def test_a_job_started_again_on_the_node_still_running_it_counts_one_attempt(tmp_path: Path, journalled: bool) -> None:
    # The node's inventory came after the restart's settle time (a loaded
    # node): the job is started again there, and the node answers with the
    # task it already runs. That task is the job's one attempt; the start
    # that found it was none.
    path = tmp_path / "journal.sqlite"
    c = start(path)
    c.add_storage("storage-0")
    c.add_compute("compute-0")
    c.submit(spec("a"))
    assert c.started() == ["a"]
    old = c.job("a").token
    if journalled:  # written while it ran (a start alone is not journalled)
        c.journal.stage(c.job("a"))
        c.journal.commit()
    c2 = restart(path, c)
    c2.add_storage("storage-0")
    c2.clock.advance(10)  # past the settle time, no inventory yet
    ref = c2.add_compute("compute-0", 1, [])
    dispatches = [e for e in c2.take(c2.state.schedule_round()) if isinstance(e, Dispatch)]
    (d,) = dispatches
    tokens = c2.state.attempt_tokens(d)
    starts = c2.state.start_messages(d, tokens, {}, {})
    assert [s.job for s in starts] == ["a"]
    c2.state.starts_answered(d, tokens, [TaskReport("a", TaskState.RUNNING, old, started=1001.0)])
    c2.take(c2.state.dispatch_ended(d, tokens, {}))
    a = c2.job("a")
    assert a.token == old and a.node == ref.node
    assert view(c2, "a")["attempts"] == 1
    c2.ends("a")
    assert a.state == SUCCEEDED and view(c2, "a")["attempts"] == 1

