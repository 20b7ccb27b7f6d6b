"""A submit of many batches, one in flight while the next is built
(actors/submitpipe.py), on a real cluster: the coordinator takes the jobs
in the order given, each future is its own item's job, and a bad item in a
later batch is refused by its number with the batches before it kept and
none after it sent; the coordinator takes a submit's batches in their
order even when they arrive out of it. The jobs are held (their group paused) so the module's
cluster does not run them."""

from __future__ import annotations

import time
from typing import Any

import pytest

import weft.actors.client as client_module
from weft.actors.client import Client
from weft.actors.submitpipe import InFlight, submit_body
from weft.bus.errors import RemoteError
from weft.protocol.jobs import Submit

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


def _batch(client: Client, group: str, tag: str, token: str, part: int, n: int = 50) -> dict[str, Any]:
    wires = [client.spec(NOOP, x=f"{tag}-{i}", groups=[group]).to_wire() for i in range(n)]
    return submit_body(wires, Submit([], order=(token, part)))


def test_the_coordinator_takes_a_submits_batches_in_their_order(client: Client) -> None:
    """Batch 1 arriving first waits for batch 0; a refused batch refuses the later ones."""
    group = "pipe-turn"
    client.pause(group)
    try:
        calls = InFlight(client)
        calls.start("submit", _batch(client, group, "second", "t-order", 1), timeout=30.0)
        time.sleep(0.3)  # (batch 1 is there first; it must wait, not be taken)
        calls.start("submit", _batch(client, group, "first", "t-order", 0), timeout=30.0)
        second, first = calls.take(), calls.take()  # (taken in the order started)
        taken = [j["job"] for j in client.jobs(group=group)]
        assert taken == [j["job"] for j in first["jobs"] + second["jobs"]]

        bad = _batch(client, group, "bad", "t-refused", 0, n=3)
        bad["jobs"][1]["a"] = ["no-such-job"]  # (runs after a job that does not exist: refused)
        calls.start("submit", bad, timeout=30.0)
        calls.start("submit", _batch(client, group, "after-bad", "t-refused", 1), timeout=30.0)
        with pytest.raises(RemoteError, match="no such job"):
            calls.take()
        with pytest.raises(RemoteError, match=r"batch 2 of this submit is not taken: an earlier batch was refused"):
            calls.take()
        assert len(client.jobs(group=group)) == len(taken)  # nothing of either taken
    finally:
        client.cancel(groups=[group])
        client.resume(group)
