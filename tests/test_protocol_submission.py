"""Submission-control records (protocol/submission.py, issue 18) and the
spec fields they add: bytes pinned, a submit without them keeps its bytes,
malformed fields refused naming them. (Beside tests/test_protocol.py, whose
helpers it uses, so parallel work on that file does not collide.)"""

from __future__ import annotations

import pytest
from test_protocol import SPEC, wire_bytes

from weft.actors.model import JobSpec, SpecError
from weft.protocol.fields import BadRequest
from weft.protocol.jobs import Submit
from weft.protocol.submission import JobEnd, Recurring, RootRef, TrySubmitReply

SLOTS = {"tiny": 4, "small": 4, "medium": 2, "large": 0}


def test_records_bytes() -> None:
    pinned = [
        ("submit", Submit([SPEC]), {"jobs": [SPEC.to_wire()]}),
        ("submit", Submit([SPEC], queue=False), {"jobs": [SPEC.to_wire()], "queue": False}),
        ("tree", RootRef("r1"), {"root": "r1"}),
        ("submit", TrySubmitReply(["a"], ["b"], SLOTS), {"started": ["a"], "rejected": ["b"], "slots": SLOTS}),
        ("job-end", JobEnd("a", "failed", 5.0, {"N": 1}, "exit-status", SLOTS),
         {"job": "a", "state": "failed", "finished": 5.0, "parameters": {"N": 1}, "code": "exit-status",
          "slots": SLOTS}),
        ("job-end", JobEnd("a", "succeeded", 5.0), {"job": "a", "state": "succeeded", "finished": 5.0}),
        ("recurring", Recurring("ls"), {"do": "ls"}),
        ("recurring", Recurring("add", "n", 60.0, {"o": [], "cmd": ["true"]}),
         {"do": "add", "name": "n", "every": 60.0, "job": {"o": [], "cmd": ["true"]}}),
    ]
    for op, record, today in pinned:
        assert wire_bytes(op, record.to_wire()) == wire_bytes(op, today)
        assert type(record).from_wire(today) == record


@pytest.mark.parametrize(("cls", "body", "says"), [
    (Submit, {"jobs": [SPEC.to_wire()], "queue": 0}, "submit: 'queue' must be true or false"),
    (RootRef, {"root": "../x"}, "tree: 'root' is not a job id"),
    (TrySubmitReply, {"started": [], "rejected": [], "slots": {"tiny": 1}}, "'slots' must map tiny"),
    (Recurring, {"do": "run"}, "recurring: 'do' must be add, ls or delete"),
    (Recurring, {"do": "add", "name": "n", "every": 0, "job": {}}, "'every' must be a positive number"),
])
def test_a_malformed_field_is_refused_naming_it(cls, body, says) -> None:
    with pytest.raises(BadRequest, match=says):
        cls.from_wire(body)


def test_spec_fields_bytes_and_identity() -> None:
    plain = JobSpec(command=["true"], outputs=["stdout"])
    spec = JobSpec(command=["true"], outputs=["stdout"], params={"N": 3, "MODE": "fast"}, spawned_by="p",
                   root="p", max_spawns=5, windows=[["allow", "Mon-Fri 18:00-08:00"], ["deny", "Sat-Sun"]],
                   block=["/shared/ready"])
    assert spec.to_wire() == {"o": ["stdout"], "cmd": ["true"], "pm": {"N": 3, "MODE": "fast"}, "sp": "p",
                              "rt": "p", "ms": 5, "win": [["allow", "Mon-Fri 18:00-08:00"], ["deny", "Sat-Sun"]],
                              "blk": ["/shared/ready"]}
    assert JobSpec.from_wire(spec.to_wire()) == spec
    # Parameters are the work (identity); the tree, the limit and the windows are not.
    assert JobSpec(command=["true"], outputs=["stdout"], params={"N": 3}).job_id() != plain.job_id()
    assert JobSpec(command=["true"], outputs=["stdout"], spawned_by="p", max_spawns=1,
                   windows=[["deny", "Sun"]]).job_id() == plain.job_id()
    with pytest.raises(SpecError, match="parameter name '1x'"):
        JobSpec(command=["true"], params={"1x": "a"})
    with pytest.raises(SpecError, match="parameters 'a' and 'A' both map to \\$WEFT_PARAM_A"):
        JobSpec(command=["true"], params={"a": "1", "A": "2"})
    with pytest.raises(SpecError, match="max spawns -1"):
        JobSpec(command=["true"], max_spawns=-1)
    with pytest.raises(SpecError, match="time window \\['sometimes', 'Mon'\\]"):
        JobSpec(command=["true"], windows=[["sometimes", "Mon"]])
