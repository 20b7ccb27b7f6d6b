"""The client's `map` specs on the wire (actors/submitpipe.py): each item's
spec copied from the first one's is what building it in full gives, items
that are not plain (or large) are built in full, and a bad item is refused
by its number. In-process: no cluster is needed to compare specs."""

from __future__ import annotations

from typing import Any

import pytest

from weft.actors.client import Client
from weft.actors.model import JobSpec
from weft.actors.submitpipe import map_batches

FN = "weft.bench.workloads:noop"
KW: dict[str, Any] = {"y": "fixed", "priority": 3, "groups": ["g1"], "retries": 2}


def make(item: Any) -> JobSpec:
    # spec() uses the client only to put a Path; these items are values.
    return Client.spec(object.__new__(Client), FN, x=item, **KW)


def test_every_item_is_the_spec_built_in_full() -> None:
    items: list[Any] = ["a", b"b\x00", 3, 2.5, "é-ü", "x" * 100_000, -7, "last"]
    chunks = list(map_batches(make, items, "x", 3))
    assert [len(c) for c in chunks] == [3, 3, 2]
    wires = [w for c in chunks for w in c]
    assert wires == [make(i).to_wire() for i in items]
    assert [JobSpec.from_wire(w).job_id() for w in wires] == [make(i).job_id() for i in items]


def test_a_bad_item_is_named_by_its_number() -> None:
    for bad, error in ((True, TypeError), ({"a": 1}, TypeError), ("z" * (2 << 20), Exception)):
        items: list[Any] = ["a", "b", "c", bad, "e"]
        taken = map_batches(make, items, "x", 2)
        assert len(next(taken)) == 2  # the first batch is cut before the bad item is made
        with pytest.raises(error, match=r"^job #4: "):
            next(taken)
