"""The wire records (weft.protocol): every record survives a trip through the
real codec, and the bytes of representative messages are exactly those the
nodes sent before the records existed (so a coordinator still on hand-built
dicts interoperates). (Malformed fields refused naming them:
test_protocol_malformed.py; shared values and helpers: protocol_support.py,
imported here, where test_protocol_submission.py takes SPEC and wire_bytes.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from protocol_support import BIG, SPEC, A, B, trip, wire_bytes

from weft.actors.model import JobSpec, SpecError
from weft.bus.codec import CALL, REPLY, decode, encode_frames
from weft.protocol import ErrorCode, JobState, ObjectState, Outcome, Role, TaskState, Wake
from weft.protocol.events import Ping, Poll, PollReply
from weft.protocol.jobs import (
    FlowPart,
    Hello,
    JobsRef,
    Locate,
    LocateReply,
    Status,
    Submit,
    SubmitReply,
    Submitted,
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
    Delegation,
    DeleteTasks,
    DeleteTasksReply,
    Refused,
    Start,
    StartMany,
    StartManyReply,
    TaskInventory,
    TaskRef,
    TaskReport,
)

RECORDS: list[Any] = [
    Start("j1", SPEC, {"x": ([A, B], "p1/result")}, {"result": [A]}, 5, {}, {"x": ("p1", 4)}, 9),
    Start("j2", SPEC, {"x": ([A], "p1/result")}, {"result": [A, B]}, 0, {"x": b"abc"}),
    Start("j3", SPEC, {"x": ([A], "p1/result")}, {"result": [A]}, 2, near={"x": B}),  # made on compute B
    StartMany([Start("j1", SPEC, {"x": ([A], "p1/result")}, {"result": [A]}, 1)], epoch=3),
    Refused("j1", ErrorCode.BAD_SPEC, "job spec must be a map"),
    TaskReport("j1", TaskState.RUNNING, 2, started=1.5),
    TaskReport("j1", TaskState.DONE, 2, Outcome.FAILED_SOFT, None, "input 'x': disk full",
               ErrorCode.NO_SPACE, None, True, None, 1.5, 2.5),
    TaskReport("j1", TaskState.DONE, 2, Outcome.SUCCESS, 0, None, None,
               {"job": {"o": ["out"], "call": "m:f"}, "stream": "out"}, False,
               {"result": ["storage-a", 3, b"abc"]}, 1.0, 2.0),
    TaskReport("j1", TaskState.DONE, 2, Outcome.FAILED_HARD, 1, "command 'cc' failed", tail="a.c:1: error\n ^"),
    StartManyReply([TaskReport("j1", TaskState.PENDING, 1), Refused(None, "bad-request", "no")]),
    TaskRef("j1", 4),
    TaskRef("j1"),
    DeleteTasks(["j1", "j2"], epoch=2),
    DeleteTasks(["j1"], single=True),
    DeleteTasksReply(["j1"], ["j2"]),
    TaskInventory([TaskReport("j1", TaskState.STORING, 1)], 17, "inc-1", 4, 1),
    TaskInventory([], 1, "inc-1", 2, 0, importable=["userfns", "weft.bench.workloads"]),
    ObjectInfo("j1/result", ObjectState.FINISHED, 3, 2, None, b"abc", "storage-a"),
    ObjectInfo("j1/result", ObjectState.DELEGATED, 0, 2, "j2/out"),
    Create("j1/result", 5, True, 3),
    Create("j1/result"),
    CreateMany([["j1/result", 1], ["j2/result", 2]], True, 3),
    CreateManyReply([{"name": "j1/result", "state": "empty"}], {"j2/result": {"code": "immutable", "message": "m"}}),
    Populate("j1/result", BIG, 2, 1 << 20),
    Populate("j1/result", b"small", 2),
    Put("j1/result", b"abc", 2, True),
    Put("j1/result", BIG, 2),
    Finish("j1/result", 2, 1 << 21, True),
    Read("j1/result", 1 << 20, 4096),
    ReadReply("j1/result", ObjectState.FINISHED, BIG, True, len(BIG)),
    ReadReply("j2/out", ObjectState.DELEGATED, target="j2/out"),
    DelegateObject("j1/result", "j2/out", 3, 1),
    ObjectRef("j1/result"),
    ListObjects("j1", frozenset({ObjectState.FINISHED, ObjectState.PARTIAL})),
    ListObjects(),
    ObjectInventory([ObjectInfo("j1/result", ObjectState.EMPTY)], 3, "inc-2"),
    DeleteObjects(["j1/result", "j2/out"], epoch=5),
    DeleteObjects(["j1/result"], single=True),
    Replicate([("j1/result", A), ("j2/out", B)], 4),
    ReplicateReply(["j1/result"], {"j2/out": {"code": "exists", "message": "m"}}),
    Submit([SPEC, JobSpec(command=["echo", "hi"], outputs=["stdout"])]),
    Submit([SPEC], flow=FlowPart("cbuild", ["cc-a"], 1), fail_fast="s1"),
    SubmitReply([Submitted("j1", JobState.WAITING, ["j1/result"], True)]),
    JobsRef(["j1", "j2"]),
    Status(["j1"]),
    Status(None, 50),
    Wait(["j1"], 2.5),
    WaitReply([{"job": "j1", "state": "succeeded"}], True),
    Locate("j1/result"),
    LocateReply("j1/result", "finished", A, [A, B], {"job": "j1"}, b"abc"),
    Hello(Role.COMPUTE, "compute-1", A, "inc-3"),
    Ping(4),
    Poll(3, 10.0, "inc-1", Wake.URGENT, 100),
    Poll(3, 10.0, "inc-1", Wake.URGENT, None, 0.005),
    PollReply([[1, "task", {"job": "j1"}]], 2, "inc-1", False),
    Probe(["mod", "pkg.sub_mod"]),
    ProbeReply(["pkg.sub_mod"], ["mod"]),
]


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: type(r).__name__)
def test_every_record_survives_the_codec(record: Any) -> None:
    back = type(record).from_wire(trip(record.to_wire()))
    assert back == record


def test_delegation_round_trip_and_handed_output() -> None:
    d = Delegation.of(JobSpec(call="m:f", outputs=["out"]), "out", "result")
    back = Delegation.from_wire(trip(d.to_wire()))
    assert (back.spec, back.stream, back.output) == (d.spec, d.stream, d.output)
    assert back.handed_output(SPEC) == "result"
    with pytest.raises(SpecError, match="several outputs"):
        Delegation.of(JobSpec(call="m:f", outputs=["out"]), "out").handed_output(
            JobSpec(call="m:f", outputs=["a", "b"]))


def test_large_bytes_arrive_as_views_of_the_frame_not_copies() -> None:
    frames = encode_frames(CALL, 1, "put", "test", Put("j1/result", BIG, 1).to_wire())
    assert len(frames) == 2 and frames[1] is BIG  # the sender hands the bytes themselves to ZeroMQ
    rec = Put.from_wire(decode(frames[0], attached=frames[1:]).body)
    assert type(rec.data) is memoryview and rec.data.obj is BIG


def test_enum_values_are_the_strings_the_wire_always_carried() -> None:
    assert [str(s) for s in JobState] == ["waiting", "runnable", "running", "cancelling", "succeeded", "failed",
                                          "cancelled"]
    assert [str(s) for s in TaskState] == ["pending", "fetching", "running", "storing", "done"]
    assert [str(s) for s in ObjectState] == ["empty", "partial", "finished", "delegated"]
    assert [str(s) for s in Outcome] == ["success", "failed-hard", "failed-soft", "cancelled", "timed-out"]
    assert ErrorCode.NO_SPACE == "no-space" and ErrorCode.BAD_REQUEST == "bad-request"
    from weft.actors import model
    from weft.actors.coordinator import graph

    assert model.TaskState is TaskState and model.Outcome is Outcome and model.ObjectState is ObjectState
    for name in ("WAITING", "RUNNABLE", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"):
        assert getattr(graph, name) == JobState[name]


# -- the bytes on the wire -----------------------------------------------------------------

TODAY: list[tuple[str, Any, dict]] = [
    # The coordinator's start_many (actors/coordinator/node.py _dispatch), by hand.
    ("start_many",
     StartMany([Start("j1", SPEC, {"x": ([A, B], "p1/result")}, {"result": [A]}, 5, {}, {"x": ("p1", 4)}),
                Start("j2", SPEC, {"x": ([A], "p1/result")}, {"result": [A, B]}, 1, {"x": b"abc"})], epoch=9),
     {"tasks": [
         {"job": "j1", "spec": SPEC.to_wire(), "inputs": {"x": [[A, B], "p1/result"]},
          "outputs": {"result": A}, "token": 5, "after": {"x": ["p1", 4]}},
         {"job": "j2", "spec": SPEC.to_wire(), "inputs": {"x": [A, "p1/result", b"abc"]},
          "outputs": {"result": [A, B]}, "token": 1},
     ], "epoch": 9}),
    ("task", TaskReport("j1", TaskState.DONE, 5, Outcome.SUCCESS, 0, None, None,
                        {"job": {"o": ["out"], "call": "m:f"}, "stream": "out"}, False,
                        {"result": ["storage-a", 3, b"abc"]}, 1.0, 2.0),
     {"job": "j1", "state": "done", "token": 5, "outcome": "success", "exit": 0,
      "delegation": {"job": {"o": ["out"], "call": "m:f"}, "stream": "out"},
      "stored": {"result": ["storage-a", 3, b"abc"]}, "started": 1.0, "finished": 2.0}),
    ("task", TaskReport("j1", TaskState.DONE, 5, Outcome.FAILED_SOFT, None, "unmet", None, None, True,
                        None, 1.0, 2.0),
     {"job": "j1", "state": "done", "token": 5, "outcome": "failed-soft", "cause": "unmet", "unmet": True,
      "started": 1.0, "finished": 2.0}),
    ("cancel", TaskRef("j1", 3), {"job": "j1", "epoch": 3}),
    ("delete", DeleteTasks(["j1", "j2"], epoch=3), {"jobs": ["j1", "j2"], "epoch": 3}),
    ("delete", DeleteObjects(["j1/result"], epoch=3), {"names": ["j1/result"], "epoch": 3}),
    ("replicate", Replicate([("j1/result", A)], 3), {"items": [["j1/result", A]], "epoch": 3}),
    ("create_many", CreateMany([["j1/result", 5]], True, 3), {"items": [["j1/result", 5]], "replace": True, "epoch": 3}),
    ("delegate", DelegateObject("j1/result", "j2/out", 5, 3), {"name": "j1/result", "target": "j2/out", "token": 5, "epoch": 3}),
    ("populate", Populate("j1/result", BIG, 5, 1 << 20), {"name": "j1/result", "data": BIG, "token": 5, "offset": 1 << 20}),
    ("put", Put("j1/result", b"abc", 5, True), {"name": "j1/result", "data": b"abc", "token": 5, "quiet": True}),
    ("finish", Finish("j1/result", 5, 10, True), {"name": "j1/result", "token": 5, "size": 10, "quiet": True}),
    ("create", Create("j1/result", 5), {"name": "j1/result", "token": 5}),
    ("read", Read("j1/result", 0, 1 << 20), {"name": "j1/result", "offset": 0, "length": 1 << 20}),
    ("poll", Poll(12, 25.0, "inc-1", Wake.URGENT), {"since": 12, "timeout": 25.0, "inc": "inc-1", "wake": "urgent"}),
    ("ping", Ping(3), {"epoch": 3}),
    ("hello", Hello(Role.STORAGE, "storage-a", A, "inc-1"), {"role": "storage", "node": "storage-a", "endpoint": A, "inc": "inc-1"}),
    ("submit", Submit([SPEC]), {"jobs": [SPEC.to_wire()]}),
    ("wait", Wait(["j1"], 30.0), {"jobs": ["j1"], "timeout": 30.0}),
    ("status", Status(["j1"]), {"jobs": ["j1"]}),
    ("cancel", JobsRef(["j1"]), {"jobs": ["j1"]}),
    ("locate", Locate("j1/result"), {"object": "j1/result"}),
    ("probe", Probe(["mod"]), {"modules": ["mod"]}),
]

TODAY_REPLIES: list[tuple[str, Any, dict]] = [
    ("read", ReadReply("j1/result", ObjectState.FINISHED, BIG, True, len(BIG)),
     {"name": "j1/result", "state": "finished", "size": len(BIG), "data": BIG, "eof": True}),
    ("read", ReadReply("j2/out", ObjectState.DELEGATED, target="j2/out"),
     {"name": "j2/out", "state": "delegated", "target": "j2/out", "data": b"", "eof": False}),
    ("finish", ObjectInfo("j1/result", ObjectState.FINISHED, 3, 5, None, None, "storage-a"),
     {"name": "j1/result", "state": "finished", "size": 3, "token": 5, "target": None, "node": "storage-a"}),
    ("start_many", StartManyReply([Refused("j1", "bad-spec", "m")]),
     {"tasks": [{"job": "j1", "error": {"code": "bad-spec", "message": "m"}}]}),
    ("list", TaskInventory([TaskReport("j1", TaskState.PENDING, 1)], 3, "inc", 4, 0),
     {"tasks": [{"job": "j1", "state": "pending", "token": 1}], "next": 3, "inc": "inc", "slots": 4, "busy": 0}),
    ("list", TaskInventory([], 3, "inc", 4, 0, importable=["userfns"]),
     {"tasks": [], "next": 3, "inc": "inc", "slots": 4, "busy": 0, "importable": ["userfns"]}),
    # The coordinator's answers, as its shell built them by hand before the records.
    ("submit", SubmitReply([Submitted("j1", JobState.WAITING, ["j1/result"]),
                            Submitted("j2", JobState.RUNNING, ["j2/out"], False, True, ["priority"])]),
     {"jobs": [{"job": "j1", "state": "waiting", "outputs": ["j1/result"], "cached": False, "joined": False,
                "differs": []},
               {"job": "j2", "state": "running", "outputs": ["j2/out"], "cached": False, "joined": True,
                "differs": ["priority"]}]}),
    ("wait", WaitReply([{"job": "j1", "state": JobState.SUCCEEDED}], True),
     {"jobs": [{"job": "j1", "state": "succeeded"}], "done": True}),
    ("locate", LocateReply("j1/result", ObjectState.FINISHED, A, [A, B], {"job": "j1"}, b"abc"),
     {"name": "j1/result", "state": "finished", "storage": A, "copies": [A, B], "producer": {"job": "j1"},
      "data": b"abc"}),
    ("locate", LocateReply("j1/result", "lost", None, [], None),
     {"name": "j1/result", "state": "lost", "storage": None, "copies": [], "producer": None}),
    ("probe", ProbeReply(["a"], ["b.c"]), {"found": ["a"], "missing": ["b.c"]}),
    ("replicate", ReplicateReply(["j1/result"], {"j2/out": {"code": "exists", "message": "m"}}),
     {"accepted": ["j1/result"], "refused": {"j2/out": {"code": "exists", "message": "m"}}}),
]


def _attach_big(d: Any) -> Any:
    """Today's senders wrapped large bytes with attach(): so does the hand-built dict."""
    from weft.bus.codec import attach

    if isinstance(d, dict):
        return {k: _attach_big(v) for k, v in d.items()}
    if isinstance(d, list):
        return [_attach_big(v) for v in d]
    return attach(d) if isinstance(d, bytes) and len(d) >= 1 << 16 else d


@pytest.mark.parametrize("op,record,today", TODAY, ids=[f"{op}-{i}" for i, (op, _, _) in enumerate(TODAY)])
def test_requests_encode_to_todays_bytes(op: str, record: Any, today: dict) -> None:
    assert wire_bytes(op, record.to_wire()) == wire_bytes(op, _attach_big(today))


@pytest.mark.parametrize("op,record,today", TODAY_REPLIES, ids=[f"{op}-{i}" for i, (op, _, _) in enumerate(TODAY_REPLIES)])
def test_replies_encode_to_todays_bytes(op: str, record: Any, today: dict) -> None:
    mine = [bytes(f) for f in encode_frames(REPLY, 7, op, "test", record.to_wire())]
    assert mine == [bytes(f) for f in encode_frames(REPLY, 7, op, "test", _attach_big(today))]


def test_the_task_report_is_what_the_compute_node_reports() -> None:
    """A compute node's task summary is TaskReport's wire form, key order and all."""
    from weft.actors.compute.task import Task

    task = Task("j1", SPEC, {}, {}, 4)
    task.state, task.outcome, task.cause, task.code = TaskState.DONE, Outcome.FAILED_SOFT, "full", "no-space"
    task.started, task.finished = 1.0, 2.0
    assert list(task.summary().items()) == [
        ("job", "j1"), ("state", "done"), ("token", 4), ("outcome", "failed-soft"), ("cause", "full"),
        ("code", "no-space"), ("started", 1.0), ("finished", 2.0),
    ]


_RARE = {"cause": "c", "code": "no-space", "delegation": {"target": "j2/out"}, "unmet": True,
         "dropped": [["j1/result", "tcp://127.0.0.1:1"]], "sig": 9, "tail": "t"}


@pytest.mark.parametrize("rare", sorted(_RARE))
def test_a_task_reports_rare_field_is_read_beside_every_usual_one(rare: str) -> None:
    """The parse skips the rare fields when only the usual ones came: one
    that came with all of them (or with the token left out) is still read."""
    usual = {"job": "j1", "state": "done", "token": 3, "outcome": "success", "exit": 0,
             "stored": {"result": ["s", 0, b""]}, "started": 1.0, "finished": 2.0}
    for d in (usual, {k: v for k, v in usual.items() if k != "token"}):
        assert getattr(TaskReport.from_wire(trip({**d, rare: _RARE[rare]})), rare) == _RARE[rare]
        plain = TaskReport.from_wire(trip(d))
        assert (plain.token, plain.stored, plain.finished) == (d.get("token", 0), d["stored"], 2.0)
        assert getattr(plain, rare) in (None, False)


def test_a_callables_delegation_is_judged_on_the_node() -> None:
    """A Delegate comes back from the worker pickled, which skips its own check:
    the node judges it (once) before reporting it."""
    import pickle

    from weft.actors.compute.task import delegation_of
    from weft.actors.delegate import Delegate

    good = pickle.loads(pickle.dumps(Delegate(JobSpec(call="m:f", outputs=["out"]), "out")))
    assert delegation_of(good).to_wire() == good.to_wire()
    bad_one = pickle.loads(pickle.dumps(good))
    bad_one.stream = "nope"  # as a worker could send it: never re-validated on unpickling
    with pytest.raises(SpecError, match="'nope'"):
        delegation_of(bad_one)


def test_news_parses_from_records_not_yet_encoded_too() -> None:
    """In-process senders (tests, a node's own reports) hand over members,
    not strings: the one parse takes both, and gives members."""
    t = TaskReport.from_wire(TaskReport("j1", TaskState.DONE, 3, Outcome.FAILED_SOFT, None, "full",
                                        ErrorCode.NO_SPACE).to_wire())
    assert t.state is TaskState.DONE and t.outcome is Outcome.FAILED_SOFT and t.code == "no-space"
    o = ObjectInfo.from_wire(ObjectInfo("j1/r", ObjectState.PARTIAL, 3).to_wire())
    assert o.state is ObjectState.PARTIAL
    w = trip(TaskReport("j1", TaskState.DONE, 3, Outcome.SUCCESS).to_wire())
    assert TaskReport.from_wire(w).outcome is Outcome.SUCCESS


# -- following a job (protocol/follow.py): added records, their bytes pinned ---------------
def test_follow_records_bytes() -> None:
    from weft.protocol.fields import BadRequest
    from weft.protocol.follow import LogChunk, LogRead, ProgressAsk, ProgressReply

    pinned = [
        ("logs", LogRead("j1", 10, 5.0), {"job": "j1", "offset": 10, "wait": 5.0}),
        ("log", LogRead("j1"), {"job": "j1", "offset": 0}),
        ("logs", LogRead("j1", 0, 0.0, 4096), {"job": "j1", "offset": 0, "limit": 4096}),
        ("logs", LogChunk(b"line\n", 15, True), {"data": b"line\n", "offset": 15, "done": True}),
        ("progress", ProgressAsk(["j1", "j2"]), {"jobs": ["j1", "j2"]}),
        ("progress", ProgressReply({"j1": (50.0, "half")}), {"progress": {"j1": [50.0, "half"]}}),
    ]
    for op, record, today in pinned:
        assert wire_bytes(op, record.to_wire()) == wire_bytes(op, today)
        assert type(record).from_wire(today) == record
    with pytest.raises(BadRequest, match="logs: 'wait' must be 0..30 seconds"):
        LogRead.from_wire({"job": "j1", "offset": 0, "wait": 99})
    with pytest.raises(BadRequest, match="progress reply: 'progress' entry 'j1' must be"):
        ProgressReply.from_wire({"progress": {"j1": ["x", "y"]}})


# -- job control (protocol/jobs.py): added records, their bytes pinned ---------------------
def test_job_control_records_bytes() -> None:
    from weft.protocol.fields import BadRequest
    from weft.protocol.jobs import Cancel, GroupRef, ListJobs, Pause

    pinned = [
        # Without --no-dependents or groups, a cancel is JobsRef's bytes.
        ("cancel", Cancel(["j1"]), JobsRef(["j1"]).to_wire()),
        ("cancel", Cancel(["j1"], False, ["g"]), {"jobs": ["j1"], "groups": ["g"], "dependents": False}),
        ("jobs", ListJobs(["running"], "g", 5.0, 10), {"limit": 10, "states": ["running"], "group": "g", "since": 5.0}),
        ("jobs", ListJobs(), {"limit": 10000}),
        ("pause", Pause(), {}),
        ("pause", Pause("g"), {"group": "g"}),
        ("group", GroupRef("g"), {"group": "g"}),
    ]
    for op, record, today in pinned:
        assert wire_bytes(op, record.to_wire()) == wire_bytes(op, today)
        assert type(record).from_wire(today) == record
    with pytest.raises(BadRequest, match="cancel: 'dependents' must be true or false"):
        Cancel.from_wire({"jobs": [], "dependents": "no"})
    with pytest.raises(BadRequest, match="jobs: 'states' has 'sleeping'"):
        ListJobs.from_wire({"states": ["sleeping"]})


def test_job_control_spec_fields_bytes_and_identity() -> None:
    plain = JobSpec(command=["true"], outputs=["stdout"])
    spec = JobSpec(command=["true"], outputs=["stdout"], cancel_time=2.0, groups=["g"], after=["j1"],
                   after_groups=["h"])
    assert spec.to_wire() == {"o": ["stdout"], "cmd": ["true"], "kt": 2.0, "g": ["g"], "a": ["j1"], "ag": ["h"]}
    assert JobSpec.from_wire(spec.to_wire()) == spec
    # Labels and the cancellation grace are not identity; ordering is.
    assert JobSpec(command=["true"], outputs=["stdout"], cancel_time=2.0, groups=["g"]).job_id() == plain.job_id()
    assert JobSpec(command=["true"], outputs=["stdout"], after=["j1"]).job_id() != plain.job_id()
    with pytest.raises(SpecError, match="max cancellation time -1"):
        JobSpec(command=["true"], cancel_time=-1)
    with pytest.raises(SpecError, match="group name 'a/b'"):
        JobSpec(command=["true"], groups=["a/b"])


def test_job_failure_codes_are_the_documented_set() -> None:
    from weft.protocol.enums import JobFailure

    assert [str(c) for c in JobFailure] == [
        "exit-status", "crashed", "timed-out", "pending-timeout", "cancelled", "command-not-found",
        "input-failed", "input-lost", "node-lost", "storage-unavailable", "spawn-limit", "no-capacity",
        "memory-limit", "output-missing", "callable-failed", "bad-spec", "internal",
    ]
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    for code in JobFailure:
        assert f"`{code}`" in readme, f"README does not document failure code {code}"


def test_names_delete_and_gc_records_bytes() -> None:
    """Names and garbage collection (issue 16): a submit without `replace`
    keeps its bytes; the new records' bytes are pinned here."""
    from weft.protocol.fields import BadRequest
    from weft.protocol.jobs import DeleteJobs, Gc, GcReply

    pinned = [
        ("submit", Submit([SPEC]), {"jobs": [SPEC.to_wire()]}),
        ("submit", Submit([SPEC], True), {"jobs": [SPEC.to_wire()], "replace": True}),
        ("delete", DeleteJobs(["j1", "name@2"]), {"jobs": ["j1", "name@2"], "force": False}),
        ("delete", DeleteJobs(["j1"], True), {"jobs": ["j1"], "force": True}),
        ("gc", Gc(), {}),
        ("gc", Gc(0.0), {"keep": 0.0}),
        ("gc", GcReply(["j1"], 2, 30, 5, 4096, 1024, 0.25, ["j2"]),
         {"jobs": ["j1"], "objects": 2, "bytes": 30, "retained": 5, "journal_before": 4096,
          "journal_after": 1024, "compact_seconds": 0.25, "failed": ["j2"]}),
    ]
    for op, record, today in pinned:
        assert wire_bytes(op, record.to_wire()) == wire_bytes(op, today)
        assert type(record).from_wire(today) == record
    assert Gc.from_wire(None) == Gc()
    with pytest.raises(BadRequest, match="gc: 'keep' must be seconds >= 0"):
        Gc.from_wire({"keep": -1})
    with pytest.raises(BadRequest, match="delete: 'force' must be true or false"):
        DeleteJobs.from_wire({"jobs": ["j1"], "force": "yes"})
    with pytest.raises(BadRequest, match="delete: 'jobs' must be a non-empty list"):
        DeleteJobs.from_wire({"jobs": []})
    with pytest.raises(BadRequest, match="submit: 'replace' must be true or false"):
        Submit.from_wire({"jobs": [SPEC.to_wire()], "replace": 1})


@pytest.mark.parametrize("wire", [
    {"call": "m:f", "in": {"x": "1"}, "o": ["result"]},
    {"call": "m:f"},
    {"o": ["r"]},
    {"call": "m:f", "in": {"bad name": "1"}, "o": ["r"]},
    {"call": "m:f", "in": ["x"], "o": ["r"]},
    {"call": "m f", "o": ["r"]},
    {"call": "m:f", "o": ["r", "r"]},
    {"call": "m:f", "in": {"x": 1}, "o": ["r"]},
    # the one-input, one-output shape (checked by its own path: plainspec.plain_from_wire)
    {"call": "m:f", "in": {"x": b"1"}, "o": ["a..b"]},
    {"call": "m:f", "in": {"x..y": "1"}, "o": ["r"]},
    {"call": "bad", "in": {"x": "1"}, "o": ["r"]},
    {"call": 5, "in": {"x": "1"}, "o": ["r"]},
    {"call": "m:f", "in": {7: "1"}, "o": ["r"]},
    {"call": "m:f", "in": {"x": "1"}, "o": [7]},
    {"call": "m:f", "in": {"x": "1"}, "o": None},
    {"call": "m:f", "in": {"x": "1"}},
    {"call": "m:f", "in": {"x": None}, "o": ["r"]},
])
def test_a_submit_parses_plain_specs_as_any_spec(wire: dict) -> None:
    # Submit.from_wire takes plain callable specs by a shorter path: the
    # same spec, or the same error, as JobSpec.from_wire.
    try:
        want: Any = JobSpec.from_wire(wire)
    except SpecError as e:
        want = f"job #1: {e}"
    try:
        got: Any = Submit.from_wire({"jobs": [wire]}).jobs[0]
    except SpecError as e:
        got = str(e)
    assert got == want
