"""A restarted coordinator rebuilds its state from a real SQLite journal."""

from __future__ import annotations

from pathlib import Path

from weft.actors.coordinator.graph import RUNNABLE, RUNNING, SUCCEEDED, WAITING
from weft.actors.coordinator.journal import Journal
from weft.actors.coordinator.news import ObjectNews, TaskNews
from weft.actors.coordinator.replay import replay
from weft.actors.coordinator.state import CoordinatorState
from weft.actors.coordinator.views import job_detail

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
    c2.add_storage("storage-0", [ObjectNews(out("a"), "finished", 3)])
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
    c2.add_storage("storage-0", [ObjectNews(out("a"), "finished", 3)])
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
    c2.add_compute("compute-0", 1, [TaskNews("a", "running", token, started=1.0)])
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
