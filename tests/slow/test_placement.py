"""Placement avoids a storage node that is slow or not answering (in-process:
the coordinator's state with fake nodes, as in tests/coordinator/)."""

from __future__ import annotations

from coordinator.harness import Cluster, spec


def test_new_outputs_go_around_an_unanswering_storage_node() -> None:
    c = Cluster(computes=1, slots=8, storages=3, replicas=2)
    c.state.planner.slow = lambda s: s.node == "storage-0"  # pinged, no answer yet
    c.submit(*(spec(f"j{i}") for i in range(6)))
    c.round()
    placements = [c.job(f"j{i}").placement for i in range(6)]
    assert all(sorted(p) == ["storage-1", "storage-2"] for p in placements), placements


def test_with_too_few_other_nodes_the_slow_one_still_takes_outputs() -> None:
    # Better a write that may drop one copy than no write at all.
    c = Cluster(computes=1, slots=2, storages=2, replicas=2)
    c.state.planner.slow = lambda s: s.node == "storage-0"
    c.submit(spec("a"))
    c.round()
    assert sorted(c.job("a").placement) == ["storage-0", "storage-1"]
