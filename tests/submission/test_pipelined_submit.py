"""A submit of many batches, one in flight while the next is built
(actors/submitpipe.py), on a real cluster: the coordinator takes the jobs
in the order given, each future is its own item's job, and a bad item in a
later batch is refused by its number with the batches before it kept and
none after it sent. The jobs are held (their group paused) so the module's
cluster does not run them."""

from __future__ import annotations

import pytest

import weft.actors.client as client_module
from weft.actors.client import Client

NOOP = "weft.bench.workloads:noop"


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> int:
    # Batches above the coordinator's submit slice (1,000): two batches
    # taken at once would interleave there, and the order would show it.
    monkeypatch.setattr(client_module, "_MAP_BATCH", 1500)
    return 1500


def test_batches_are_taken_in_order_and_answers_matched(client: Client, small_batches: int) -> None:
    group = "pipe-order"
    client.pause(group)
    try:
        items = [f"item-{i}" for i in range(3 * small_batches + 7)]  # four batches
        futures = client.map(NOOP, items, key="x", groups=[group])
        assert [f.job for f in futures] == [client.spec(NOOP, x=i, groups=[group]).job_id() for i in items]
        # Taken in the order given (`jobs` lists in submit order).
        taken = [j["job"] for j in client.jobs(group=group)]
        assert taken == [f.job for f in futures], \
            next(i for i, (a, b) in enumerate(zip(taken, futures, strict=False)) if a != b.job)
    finally:
        client.cancel(groups=[group])
        client.resume(group)


def test_a_bad_item_is_named_and_later_batches_are_not_sent(client: Client, small_batches: int) -> None:
    group = "pipe-bad"
    client.pause(group)
    try:
        items: list[object] = [f"good-{i}" for i in range(4 * small_batches)]
        bad = 2 * small_batches + 10  # in the third batch
        items[bad] = {"not": "an input"}
        with pytest.raises(TypeError, match=rf"^job #{bad + 1}: input 'x': pass str"):
            client.map(NOOP, items, key="x", groups=[group])
        kept = {j["job"] for j in client.jobs(group=group)}
        first_two = {client.spec(NOOP, x=i, groups=[group]).job_id() for i in items[:2 * small_batches]}
        assert kept == first_two, (len(kept), len(first_two))
    finally:
        client.cancel(groups=[group])
        client.resume(group)
