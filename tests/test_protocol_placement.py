"""The placement wire forms pinned: drain/undrain, withdraw, what a compute
node's inventory says of its resources, and a spec's placement keys."""

from __future__ import annotations

from typing import Any

import pytest

from weft.actors.model import JobSpec
from weft.bus.codec import CALL, encode_frames
from weft.bus.errors import BusError
from weft.protocol.enums import ErrorCode
from weft.protocol.jobs import NodeDrain
from weft.protocol.tasks import TaskInventory, Withdraw


def wire_bytes(op: str, body: Any) -> list[bytes]:
    return [bytes(f) for f in encode_frames(CALL, 7, op, "test", body)]


@pytest.mark.parametrize("op,record,today", [
    ("drain", NodeDrain("compute-1"), {"node": "compute-1"}),
    ("undrain", NodeDrain("storage-2"), {"node": "storage-2"}),
    ("withdraw", Withdraw(4, 3), {"count": 4, "epoch": 3}),
    ("list", TaskInventory([], 3, "inc", 4, 0, 512 << 20, "b2"),
     {"tasks": [], "next": 3, "inc": "inc", "slots": 4, "busy": 0, "memory": 512 << 20, "host": "b2"}),
])
def test_placement_records_bytes(op: str, record: Any, today: dict) -> None:
    assert wire_bytes(op, record.to_wire()) == wire_bytes(op, today)
    assert type(record).from_wire(today) == record


def test_an_older_nodes_inventory_says_no_memory_or_host() -> None:
    inv = TaskInventory.from_wire({"tasks": [], "next": 0, "inc": "i", "slots": 2, "busy": 0})
    assert (inv.memory, inv.host) == (0, None)


@pytest.mark.parametrize("cls,body,field", [
    (NodeDrain, {}, "node"),
    (NodeDrain, {"node": 5}, "node"),
    (Withdraw, {"count": 0}, "count"),
    (Withdraw, {}, "count"),
    (TaskInventory, {"tasks": [], "inc": "i", "memory": -1}, "memory"),
    (TaskInventory, {"tasks": [], "inc": "i", "host": ""}, "host"),
])
def test_a_malformed_placement_field_is_a_bad_request_naming_it(cls: Any, body: Any, field: str) -> None:
    with pytest.raises(BusError) as e:
        cls.from_wire(body)
    assert e.value.code == ErrorCode.BAD_REQUEST and repr(field) in str(e.value), e.value


def test_spec_placement_keys() -> None:
    spec = JobSpec(command=["true"], cpus=2, memory=1 << 30, host="gpu7", prefer_host="b2", node="compute-1",
                   job_class="workorder", deadline=1800000000.0)
    assert spec.to_wire() == {"o": [], "cmd": ["true"], "cpu": 2, "mem": 1 << 30, "h": "gpu7", "ph": "b2",
                              "nd": "compute-1", "cls": "workorder", "dl": 1800000000.0}
