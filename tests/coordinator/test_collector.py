"""The coordinator daemon runs Python's cyclic collector less often
(collector.py): its young generation after COLLECT_AFTER net container
allocations instead of 700, the older generations' ratios unchanged, and the
collector still on. In process: a real CoordinatorNode started on a socket
of 127.0.0.1, then stopped."""

from __future__ import annotations

import gc
from pathlib import Path

import trio

from weft.actors.coordinator.collector import COLLECT_AFTER
from weft.actors.coordinator.node import CoordinatorNode
from weft.runtime.node import NodeConfig


def test_a_running_coordinator_collects_its_young_generation_less_often(tmp_path: Path) -> None:
    before = gc.get_threshold()
    gc.set_threshold(700, *before[1:])
    seen: list[tuple[int, ...]] = []

    async def main() -> None:
        node = CoordinatorNode(NodeConfig(data_dir=tmp_path, listen="tcp://127.0.0.1:0", beacon=False))
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                await nursery.start(node.run)
                seen.append(gc.get_threshold())
                node.stop()

    try:
        trio.run(main)
    finally:
        gc.set_threshold(*before)
    assert seen == [(COLLECT_AFTER, *before[1:])]
    assert COLLECT_AFTER > 700
    assert gc.isenabled()  # less often, not off: cyclic garbage is still collected
