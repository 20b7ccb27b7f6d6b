"""The slot estimate a job-end event carries (`weft events`): free slots per
ready compute node, a node holding more than its slots counting none."""

from __future__ import annotations

from weft.actors.coordinator.submission_ops import slot_estimate

from .harness import Cluster


def test_a_node_running_more_than_its_slots_counts_no_free_slot() -> None:
    c = Cluster(computes=2, slots=2)
    busy = c.compute("compute-0")
    for j in ("a", "b", "c"):  # (more than its 2 slots: it shrank after a restart)
        busy.assign(j)
    c.compute("compute-1").assign("d")
    assert slot_estimate(list(c.state.computes.values())) == {"tiny": 1, "small": 1, "medium": 1, "large": 1}
    busy.ready = False  # a node not ready counts nothing
    c.compute("compute-1").unassign("d")
    assert slot_estimate(list(c.state.computes.values()))["tiny"] == 2


def test_a_node_that_says_its_memory_fits_only_what_its_free_memory_holds() -> None:
    c = Cluster(computes=0)
    c.add_compute("compute-0", 8, memory=512 << 20)  # 8 slots, 512 MiB
    c.compute("compute-0").used_chunks = 8  # 256 MiB of it taken by running jobs
    # 256 MiB free: 8 tiny (32 MiB), 2 small (128), 1 medium (256), no large (1024).
    assert slot_estimate(list(c.state.computes.values())) == {"tiny": 8, "small": 2, "medium": 1, "large": 0}
