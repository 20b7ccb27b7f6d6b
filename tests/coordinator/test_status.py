"""What `status` shows of a job, and waiters."""

from __future__ import annotations

from weft.actors.coordinator.effects import Waiter
from weft.actors.coordinator.views import job_detail

from .harness import Cluster, out, spec, woken


def test_status_shows_the_work_inputs_node_and_exit_code() -> None:
    c = Cluster()
    long = "x" * 200
    c.submit(spec("a"), spec("b", "a", command=["sh", "-c", "exit 3"], value=long, timeout=9))
    c.run("a")
    c.started()
    c.ends("b", "failed-hard", cause="exit code 3", exit_code=3)
    b = c.job("b")
    d = job_detail(b, b.summary())
    assert d["command"] == ["sh", "-c", "exit 3"] and "call" not in d
    assert len(d["inputs"]["v"]) <= 60 and d["inputs"]["v"].startswith("xxx")
    assert d["refs"] == {"in0": out("a")}
    assert d["ran_on"] == "compute-0" and d["exit_code"] == 3 and d["attempts"] == 1
    assert d["time_limit"] == 9
    assert {"submitted", "started", "finished"} <= set(d)


def test_a_new_attempt_does_not_show_the_last_attempts_exit_code() -> None:
    c = Cluster()
    c.submit(spec("a", command=["false"]))
    c.started()
    c.ends("a", "failed-soft", cause="lost", exit_code=1)
    c.started()
    assert "exit_code" not in job_detail(c.job("a"), {})


def test_a_waiter_wakes_when_its_last_job_ends() -> None:
    c = Cluster(slots=2)
    c.submit(spec("a"), spec("b"))
    w = c.state.watch([c.job("a"), c.job("b")], Waiter())
    assert w.remaining == 2
    c.started()
    assert woken(c.ends("a")) == []
    assert woken(c.ends("b")) == [w]


def test_an_unwatched_waiter_is_not_woken() -> None:
    c = Cluster()
    c.submit(spec("a"))
    w = c.state.watch([c.job("a")], Waiter())
    c.state.unwatch(w)
    c.started()
    assert woken(c.ends("a")) == [] and c.state.watchers == {}
