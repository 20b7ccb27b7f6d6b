"""Work stealing in-process: an idle node takes queued jobs from a busy one,
the freest first, and what moves is not counted as an attempt."""

from __future__ import annotations

import dataclasses

from weft.actors.coordinator.graph import RUNNING

from .harness import Cluster, sends, spec


def uneven() -> Cluster:
    """Node a took 16 jobs ahead of its 1 CPU; node b joins with nothing to do."""
    c = Cluster(computes=0, prefetch=20)
    c.add_compute("a", slots=1)
    c.submit(*[spec(f"j{i:02}") for i in range(16)])
    assert len(c.started()) == 16
    c.add_compute("b", slots=1)
    return c


def test_an_idle_node_takes_queued_jobs_from_a_busy_one_after_its_delay() -> None:
    c = uneven()
    assert sends(c.take(c.state.schedule_round()), "withdraw") == []  # not before its delay
    due = c.state.next_due()
    assert due is not None and due > c.clock.mono()
    c.clock.advance(due - c.clock.mono())
    [ask] = sends(c.take(c.state.schedule_round()), "withdraw")
    # Half of the 15 queued past its CPU, at most 4 per free CPU of the thief.
    assert ask.endpoint == "tcp://a:1" and ask.body.count == 4
    # a gives back the newest queued ones: they ended without starting.
    given = sorted(c.compute("a").running)[-4:]
    for name in given:
        c.ends(name, "failed-soft", code="withdrawn", cause="withdrawn", ran=False)
    assert c.state.stats["withdrawn"] == 4
    placed = c.started()
    assert placed and all(c.job(j).node == "b" for j in placed)
    assert all(c.job(j).state == RUNNING and c.job(j).summary()["attempts"] == 1 for j in placed)
    assert sends(c.take(c.state.schedule_round()), "withdraw") == []  # not asked again at once


def test_the_freest_idle_node_steals_first() -> None:
    c = Cluster(computes=0, prefetch=20)
    c.add_compute("a", slots=1)
    c.submit(*[spec(f"k{i:02}") for i in range(16)])
    c.started()
    c.add_compute("half", slots=2)
    c.add_compute("idle", slots=2)
    c.submit(dataclasses.replace(spec("keeps-half-busy"), node="half"))
    assert c.started() == ["keeps-half-busy"]
    c.clock.advance(0.6)  # past the idle node's delay (0.5 s), not the half-loaded one's (0.75 s)
    [ask] = sends(c.take(c.state.schedule_round()), "withdraw")
    assert ask.endpoint == "tcp://a:1" and ask.body.count == 8  # (2 free CPUs: up to 8)
    stealing = c.state.planner.stealing
    assert "idle" not in stealing.idle_since and "half" in stealing.idle_since  # the freest won
