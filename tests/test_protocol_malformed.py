"""The wire records (weft.protocol) refuse what they cannot read: every
malformed field is a bad request naming that field, a bad item of a batch is
refused alone, and what older senders leave out takes its default. (Round
trips and the bytes on the wire: test_protocol.py.)"""

from __future__ import annotations

from typing import Any

import pytest
from protocol_support import SPEC, A

from weft.actors.model import JobSpec, SpecError
from weft.bus.errors import BusError
from weft.protocol import ErrorCode
from weft.protocol.events import Ping, Poll, PollReply
from weft.protocol.jobs import (
    Hello,
    JobsRef,
    Locate,
    LocateReply,
    Status,
    Submit,
    SubmitReply,
    Wait,
    WaitReply,
)
from weft.protocol.objects import (
    Create,
    CreateMany,
    CreateManyReply,
    DelegateObject,
    DeleteObjects,
    Finish,
    ListObjects,
    ObjectInfo,
    ObjectInventory,
    ObjectRef,
    Populate,
    Put,
    Read,
    ReadReply,
    Replicate,
    ReplicateReply,
)
from weft.protocol.probe import Probe, ProbeReply
from weft.protocol.tasks import (
    DeleteTasks,
    Refused,
    Start,
    StartMany,
    TaskInventory,
    TaskRef,
    TaskReport,
)

# -- malformed fields ------------------------------------------------------------------

GOOD_START = {"job": "j1", "spec": SPEC.to_wire(), "inputs": {"x": [A, "p1/result"]},
              "outputs": {"result": A}, "token": 1}


def _with(d: dict, **kw: Any) -> dict:
    out = dict(d)
    out.update(kw)
    return out


BAD: list[tuple[Any, Any, str]] = [
    (Start, _with(GOOD_START, job="../x"), "job"),
    (Start, _with(GOOD_START, token=-1), "token"),
    (Start, _with(GOOD_START, token=1 << 63), "token"),
    (Start, _with(GOOD_START, inputs={"x": 5}), "inputs"),
    (Start, _with(GOOD_START, inputs={"x": [A, "p1/result", "str"]}), "inputs"),
    (Start, _with(GOOD_START, inputs={"x": [A, "no-slash"]}), "inputs"),
    (Start, _with(GOOD_START, outputs=[A]), "outputs"),
    (Start, _with(GOOD_START, outputs={}), "outputs"),
    (Start, _with(GOOD_START, after={"y": ["p1", 1]}), "after"),
    (Start, _with(GOOD_START, after={"x": ["p1", "1"]}), "after"),
    (Start, _with(GOOD_START, near={"y": A}), "near"),
    (Start, _with(GOOD_START, near={"x": 5}), "near"),
    (Start, _with(GOOD_START, near=[A]), "near"),
    (Start, _with(GOOD_START, epoch=-2), "epoch"),
    (Start, [1, 2], "body"),
    (StartMany, {"tasks": "x"}, "tasks"),
    (TaskReport, {"job": "j1", "state": "nap"}, "state"),
    (TaskReport, {"job": 1, "state": "done"}, "job"),
    (TaskReport, {"job": "j1", "state": "done", "outcome": "won"}, "outcome"),
    (TaskReport, {"job": "j1", "state": "done", "token": "1"}, "token"),
    (TaskReport, {"job": "j1", "state": "done", "code": 7}, "code"),
    (TaskReport, {"job": "j1", "state": "done", "stored": []}, "stored"),
    (TaskReport, {"job": "j1", "state": "done", "delegation": "x"}, "delegation"),
    (TaskInventory, {"tasks": {}, "next": 1, "inc": "i"}, "tasks"),
    (TaskInventory, {"tasks": [], "next": 1, "inc": 5}, "inc"),
    (TaskInventory, {"tasks": [], "next": 1, "inc": "i", "importable": ["ok", 5]}, "importable"),
    (TaskRef, {"job": None}, "job"),
    (DeleteTasks, {"jobs": "j1"}, "jobs"),
    (Refused, {"job": "j1", "error": "boom"}, "error"),
    (Create, {"name": "no-slash"}, "name"),
    (Create, {"name": "j1/r", "token": "1"}, "token"),
    (CreateMany, {"items": {}}, "items"),
    (Populate, {"name": "j1/r", "data": "text"}, "data"),
    (Populate, {"name": "j1/r", "data": b"", "offset": -1}, "offset"),
    (Put, {"name": "j1/r", "data": 5}, "data"),
    (Finish, {"name": "j1/r", "size": 1.5}, "size"),
    (Read, {"name": "j1/r", "offset": None}, "offset"),
    (Read, {"name": "j1/r", "length": 0}, "length"),
    (ReadReply, {"name": "j1/r", "state": "gone", "data": b""}, "state"),
    (ReadReply, {"name": "j1/r", "state": "finished", "data": "x"}, "data"),
    (DelegateObject, {"name": "j1/r", "target": "../x"}, "target"),
    (ObjectRef, {"name": 5}, "name"),
    (ListObjects, {"prefix": 5}, "prefix"),
    (ListObjects, {"states": ["finished", "gone"]}, "states"),
    (DeleteObjects, {"names": ["j1/r", "bad"]}, "names"),
    (Replicate, {"items": []}, "items"),
    (Replicate, {"items": [["j1/r"]]}, "items"),
    (Replicate, {"items": [["bad", A]]}, "items"),
    (Replicate, {"items": [["j1/r", 5]]}, "items"),
    (Replicate, {"items": [["j1/r", "storage-0:5"]]}, "items"),
    (ReplicateReply, {"accepted": "j1/r"}, "accepted"),
    (ReplicateReply, {"accepted": [], "refused": {"j1/r": "x"}}, "refused"),
    (ObjectInfo, {"name": "j1/r", "state": "finished", "size": -1}, "size"),
    (ObjectInventory, {"objects": None, "next": 0, "inc": "i"}, "objects"),
    (CreateManyReply, {"created": [], "errors": {"a/b": "x"}}, "errors"),
    (Submit, {"jobs": []}, "jobs"),
    (Submit, {"jobs": [SPEC.to_wire()], "flow": {"name": "f", "jobs": ["a", "b"]}}, "flow.jobs"),
    (Submit, {"jobs": [SPEC.to_wire()], "flow": {"name": "f:g", "jobs": ["a"]}}, "flow.name"),
    (Submit, {"jobs": [SPEC.to_wire()], "fail_fast": True}, "fail_fast"),
    (TaskReport, {"job": "j1", "state": "done", "tail": 5}, "tail"),
    (SubmitReply, {"jobs": [{"job": "j1"}]}, "jobs"),
    (SubmitReply, {"jobs": [{"job": "j1", "outputs": [], "differs": "priority"}]}, "differs"),
    (SubmitReply, {"jobs": [{"job": "j1", "outputs": [], "differs": ["priority", 1]}]}, "differs"),
    (JobsRef, {"jobs": ["a", 1]}, "jobs"),
    (Status, {"limit": 1.5}, "limit"),
    (Wait, {"jobs": ["a"], "timeout": 301}, "timeout"),
    (WaitReply, {"jobs": [{}], "done": True}, "jobs"),
    (Locate, {"object": "x"}, "object"),
    (LocateReply, {"name": "a/b", "state": "finished", "copies": "x"}, "copies"),
    (Hello, {"role": "wizard", "node": "n", "endpoint": A}, "role"),
    (Hello, {"role": "compute", "node": 5, "endpoint": A}, "node"),
    (Ping, {"epoch": "1"}, "epoch"),
    (Poll, {"since": -1}, "since"),
    (Poll, {"since": 0, "wake": "never"}, "wake"),
    (Poll, {"since": 0, "timeout": "soon"}, "timeout"),
    (PollReply, {"events": [[1, "task"]], "next": 1}, "events"),
    (Probe, {"modules": []}, "modules"),
    (Probe, {"modules": ["os path"]}, "modules"),
    (Probe, {"modules": [".rel"]}, "modules"),
    (Probe, {"modules": ["m"] * 257}, "modules"),
    (Probe, {"modules": "mod"}, "modules"),
    (ProbeReply, {"found": "mod", "missing": []}, "found"),
    (ProbeReply, {"found": [], "missing": [1]}, "missing"),
    (ObjectInfo, {"name": "j1/r", "state": "finished", "token": 1 << 63}, "token"),
    (ObjectInfo, {"name": "j1/r", "state": ["finished"]}, "state"),
    (ObjectInfo, {"name": "j1/r"}, "state"),
    (ObjectInfo, {"name": "j1/r", "state": "finished", "target": 5}, "target"),
    (ObjectInfo, {"name": "j1/r", "state": "finished", "node": b"n"}, "node"),
    (ObjectInfo, {"name": "j1/r", "state": "finished", "data": "text"}, "data"),
    (TaskReport, {"job": "j1"}, "state"),
    (TaskReport, {"job": "j1", "state": {}}, "state"),
    (TaskReport, {"job": "j1", "state": "done", "outcome": ["success"]}, "outcome"),
    (TaskReport, {"job": "j1", "state": "done", "exit": "0"}, "exit"),
    (TaskReport, {"job": "j1", "state": "done", "cause": 5}, "cause"),
    (TaskReport, {"job": "j1", "state": "done", "started": "noon"}, "started"),
    (TaskReport, {"job": "j1", "state": "done", "finished": None, "started": [1]}, "started"),
    (TaskReport, {"job": "j1", "state": "done", "finished": "later"}, "finished"),
]


@pytest.mark.parametrize("cls,body,field", BAD, ids=[f"{c.__name__}-{f}-{i}" for i, (c, _, f) in enumerate(BAD)])
def test_a_malformed_field_is_a_bad_request_naming_it(cls: Any, body: Any, field: str) -> None:
    with pytest.raises(BusError) as e:
        cls.from_wire(body)
    assert e.value.code == ErrorCode.BAD_REQUEST, e.value
    message = str(e.value)
    assert "\n" not in message
    if field == "body":
        assert "body must be a map" in message
    else:
        assert f"{field!r}" in message, message


def test_a_bad_spec_inside_a_start_keeps_its_own_code() -> None:
    with pytest.raises(SpecError) as e:
        Start.from_wire(_with(GOOD_START, spec={"cmd": "echo", "o": []}))
    assert e.value.code == "bad-spec" and "'command'" in str(e.value)


def test_a_bad_storage_endpoint_is_refused_every_time_after_good_ones_were_seen() -> None:
    # The parse remembers endpoints it found connectable (each checked once
    # per node, not per task): never one it refused.
    for _ in range(2):
        assert Start.from_wire(GOOD_START).outputs == {"result": [A]}
    for _ in range(2):
        with pytest.raises(BusError) as e:
            Start.from_wire(_with(GOOD_START, outputs={"result": "tcp://nowhere"}))
        assert e.value.code == ErrorCode.BAD_REQUEST and "output 'result'" in str(e.value), e.value
        with pytest.raises(BusError) as e:
            Start.from_wire(_with(GOOD_START, inputs={"x": ["tcp://nowhere", "p1/result"]}))
        assert "input 'x'" in str(e.value) and "tcp://nowhere" in str(e.value), e.value


def test_start_many_refuses_bad_items_alone() -> None:
    r = StartMany.from_wire({"tasks": [GOOD_START, _with(GOOD_START, job="j2", token="x"), "junk"]})
    good, bad_token, junk = r.tasks
    assert type(good) is Start and good.job == "j1"
    assert bad_token == Refused("j2", ErrorCode.BAD_REQUEST, bad_token.message) and "'token'" in bad_token.message
    assert type(junk) is Refused and junk.job is None


def test_absent_optional_fields_take_their_defaults() -> None:
    """Receivers accept what older senders leave out (code, after, quiet, ...)."""
    t = TaskReport.from_wire({"job": "j1", "state": "done", "outcome": "failed-soft", "cause": "x"})
    assert t.code is None and t.token == 0 and not t.unmet
    s = Start.from_wire({"job": "j1", "spec": JobSpec(command=["true"]).to_wire()})
    assert s.token == 0 and s.after == {} and s.epoch is None
    assert Finish.from_wire({"name": "j1/r"}) == Finish("j1/r", 0, None, False)
