"""Prefetch by time (planner.ahead_per_slot): with a deep queue a node whose
tasks run in microseconds is sent more of them ahead of its CPU than
`--prefetch` (enough for AHEAD_SECONDS of work, at most PREFETCH_MAX), so it
does not run dry in the round trip to the coordinator; a node of long tasks
gets `--prefetch` as before. In process, on the state."""

from __future__ import annotations

from weft.actors.coordinator.planner import AHEAD_SECONDS, PREFETCH_MAX, ahead_per_slot

from .harness import Cluster, spec


def held_by(c: Cluster, node: str) -> int:
    return len(c.compute(node).assigned)


def queue_of(n: int, prefix: str) -> Cluster:
    c = Cluster(computes=0, prefetch=8)
    c.add_compute("a", slots=1)
    c.submit(*[spec(f"{prefix}{i:03}") for i in range(n)])
    assert len(c.started()) == 9  # nothing known of its tasks yet: 1 running + 8 ahead
    return c


def test_a_node_of_short_tasks_is_sent_more_ahead_than_prefetch() -> None:
    c = queue_of(200, "s")
    for name in sorted(c.compute("a").assigned)[:5]:
        c.ends(name, ran_for=0.0001)  # 100 us each
    c.started()
    assert held_by(c, "a") == 1 + PREFETCH_MAX


def test_a_node_of_long_tasks_keeps_prefetch() -> None:
    c = queue_of(200, "l")
    for name in sorted(c.compute("a").assigned)[:5]:
        c.ends(name, ran_for=2.0)
    c.started()
    assert held_by(c, "a") == 9


def test_ahead_is_bounded_by_time_between_prefetch_and_its_cap() -> None:
    assert ahead_per_slot(8, 0.0) == 8  # nothing seen yet
    assert ahead_per_slot(8, AHEAD_SECONDS / 8) == 8  # long enough: prefetch holds
    assert ahead_per_slot(8, AHEAD_SECONDS / 20) == 20  # AHEAD_SECONDS of work
    assert ahead_per_slot(8, 1e-7) == PREFETCH_MAX
    assert ahead_per_slot(0, 1e-7) == 0  # --prefetch 0 sends nothing ahead, whatever the tasks
