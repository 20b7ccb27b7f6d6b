"""The per-node latency bound: the floor for a quick node, a multiple of what
a slow node usually takes, and not thrown off by one answer after a pause."""

from __future__ import annotations

from weft.actors.storage.client import Latency


def test_a_quick_node_gets_the_floor_and_a_slow_one_a_multiple_of_its_latency() -> None:
    lat = Latency(floor=1.5, factor=8.0)
    assert lat.bound("never-called") == 1.5
    for _ in range(100):
        lat.record("quick", 0.002)
        lat.record("slow", 0.5)
    assert lat.bound("quick") == 1.5
    assert 3.5 < lat.bound("slow") <= 4.0  # 8 x ~0.5 s


def test_one_answer_that_waited_out_a_pause_barely_moves_the_bound() -> None:
    lat = Latency(floor=1.5, factor=8.0)
    for _ in range(100):
        lat.record("node", 0.002)
    lat.record("node", 8.0)  # the reply to a call made just before an 8 s SIGSTOP
    assert lat.bound("node") == 1.5
