"""The coordinator's parse of plain callable specs (actors/plainspec.py) makes
what JobSpec(...) makes, and refuses what it refuses, in the same words."""

from __future__ import annotations

import sys
from dataclasses import fields
from typing import Any

import pytest

from weft.actors.model import JobSpec, SpecError
from weft.actors.plainspec import PlainSpec, plain_spec

GOOD: list[tuple[Any, Any, Any]] = [
    ("m:f", {"x": "1"}, ["result"]),
    ("pkg.mod:fn_2", {"a": b"\x00bytes", "b.c-d": ""}, ["r1", "r2"]),
    ("m:f", {}, []),
    ("m:f", {}, ["result"]),
    ("m:f", {"x": b"\xa2in\xc0"}, ["b", "a"]),
    ("m:f", {"in": "\u00e9\u4e2d" * 40}, ["result"]),
    ("m:f", {"x": "v" * 70_000}, ["z", "y", "x"]),
    ("m:f", {"x": b""}, []),
]
BAD: list[tuple[Any, Any, Any]] = [
    ("not a call", {}, ["result"]),
    (7, {}, ["result"]),
    ("m:f", {"bad name!": "1"}, ["result"]),
    ("m:f", {"x": 1}, ["result"]),
    ("m:f", {"x": None}, ["result"]),
    ("m:f", ["x"], ["result"]),
    ("m:f", {}, "result"),
    ("m:f", {}, ["a", "a"]),
    ("m:f", {}, ["a", "../b"]),
    ("m:f", {}, [""]),
    ("m:f", {}, [3]),
]


@pytest.mark.parametrize("call,inputs,outputs", GOOD)
def test_a_plain_spec_is_what_the_constructor_makes(call: Any, inputs: Any, outputs: Any) -> None:
    made = plain_spec(call, inputs, outputs)
    assert made == JobSpec(call=call, inputs=inputs, outputs=outputs)
    assert made.job_id() == JobSpec(call=call, inputs=inputs, outputs=outputs).job_id()
    made.validate()  # (and passes the full check)


@pytest.mark.parametrize("call,inputs,outputs", GOOD)
def test_a_plain_spec_reads_as_the_jobspec_it_stands_for(call: Any, inputs: Any, outputs: Any) -> None:
    # What the coordinator reads of a queued job (job.spec.*) and writes to
    # the journal and the start message is the constructor's, field by field.
    made, want = plain_spec(call, inputs, outputs), JobSpec(call=call, inputs=inputs, outputs=outputs)
    for f in fields(JobSpec):
        assert getattr(made, f.name) == getattr(want, f.name), f.name
    assert made.to_wire() == want.to_wire()
    assert JobSpec.from_wire(made.to_wire()) == want
    assert made.identity() == want.identity()
    assert made.payload_size() == want.payload_size()
    assert made.output_objects() == want.output_objects()


def test_a_spec_with_one_input_is_kept_without_an_inputs_map() -> None:
    # The memory a queued `map` job costs (docs/performance.md): no map of
    # its own, and far smaller than a JobSpec.
    made = plain_spec("m:f", {"x": "1"}, ["result"])
    assert type(made) is PlainSpec and not hasattr(made, "__dict__")
    assert sys.getsizeof(made) < sys.getsizeof(JobSpec(call="m:f")) / 3
    with pytest.raises(AttributeError):
        made.priority = 3  # type: ignore[misc]  (queued specs are never changed in place)


def test_job_ids_of_many_plain_specs_are_the_constructors() -> None:
    # The id is the job's identity: a resubmit must find the same job.
    for i in range(300):
        value: Any = f"item-{i}" * (i % 7) if i % 3 else bytes(range(i % 256))
        outputs = ["result"] if i % 2 else [f"o{i % 5}", "a"]
        call = f"pkg.m{i % 4}:f"
        made = plain_spec(call, {"x": value} if i % 11 else {}, outputs)
        assert made.job_id() == JobSpec(call=call, inputs={"x": value} if i % 11 else {}, outputs=outputs).job_id()


@pytest.mark.parametrize("call,inputs,outputs", BAD)
def test_a_bad_plain_spec_is_refused_in_the_constructors_words(call: Any, inputs: Any, outputs: Any) -> None:
    with pytest.raises(SpecError) as expected:
        JobSpec(call=call, inputs=inputs, outputs=outputs)
    with pytest.raises(SpecError) as got:
        plain_spec(call, inputs, outputs)
    assert str(got.value) == str(expected.value)
