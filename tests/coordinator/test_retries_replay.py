"""Attempts, failure codes, retries used and pending timeouts survive a
coordinator restart (a real SQLite journal, replayed into a new state)."""

from __future__ import annotations

from pathlib import Path

from weft.actors.coordinator.attempts import views
from weft.actors.coordinator.graph import FAILED
from weft.actors.coordinator.journal import Journal
from weft.actors.coordinator.replay import replay
from weft.actors.coordinator.state import CoordinatorState

from .harness import Clock, Cluster
from .test_retries import end, job, tick


def start(path: Path, epoch: int = 1, clock: Clock | None = None) -> Cluster:
    journal = Journal(path)
    clock = clock or Clock()
    state = CoordinatorState(epoch=epoch, wall=clock.wall, mono=clock.mono, follow_ahead=0)
    replay(journal, state, settle=0)
    return Cluster(journal=journal, state=state, clock=clock, storages=0, computes=0)


def restart(path: Path, old: Cluster) -> Cluster:
    old.journal.close()
    return start(path, old.state.epoch + 1, old.clock)


def test_attempts_codes_and_retries_used_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    c = start(path)
    c.add_storage("storage-0")
    c.add_compute("compute-0")
    c.submit(job("b"), job("a", retries=1, retry_delay=0))
    assert c.started() == ["b"]
    end(c, "b", sig=9)
    assert c.started() == ["a"]
    end(c, "a", exit_code=1)  # retried: its one retry used
    before = views(c.job("a")), views(c.job("b"))
    c2 = restart(path, c)
    assert (views(c2.job("a")), views(c2.job("b"))) == before
    assert [t["code"] for t in before[0]] == ["exit-status"]
    b = c2.job("b")
    assert b.state == FAILED and (b.code, b.detail) == ("crashed", "9 (SIGKILL)")
    assert c2.job("a").own == 1
    c2.add_storage("storage-0")
    c2.add_compute("compute-0")
    assert c2.started() == ["a"]
    end(c2, "a", exit_code=1)  # its retry was used before the restart: final now
    a = c2.job("a")
    assert a.state == FAILED and [t["n"] for t in views(a)] == [1, 2]
    assert c2.state.stats["retries"] == 1


def test_a_pending_timeout_goes_on_across_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    c = start(path)
    c.add_storage("storage-0")
    c.submit(job("a", pending_timeout=10))
    c.clock.advance(6)
    c2 = restart(path, c)
    assert c2.state.next_due() == c2.clock.t + 4  # what was left of it, not 10 s again
    tick(c2, 4.1)
    a = c2.job("a")
    assert a.state == FAILED and a.code == "pending-timeout" and a.detail.startswith("no-capacity")
