"""The coordinator's parse of plain callable specs (actors/plainspec.py) makes
what JobSpec(...) makes, and refuses what it refuses, in the same words."""

from __future__ import annotations

from typing import Any

import pytest

from weft.actors.model import JobSpec, SpecError
from weft.actors.plainspec import plain_spec

GOOD: list[tuple[Any, Any, Any]] = [
    ("m:f", {"x": "1"}, ["result"]),
    ("pkg.mod:fn_2", {"a": b"\x00bytes", "b.c-d": ""}, ["r1", "r2"]),
    ("m:f", {}, []),
    ("m:f", {}, ["result"]),
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


@pytest.mark.parametrize("call,inputs,outputs", BAD)
def test_a_bad_plain_spec_is_refused_in_the_constructors_words(call: Any, inputs: Any, outputs: Any) -> None:
    with pytest.raises(SpecError) as expected:
        JobSpec(call=call, inputs=inputs, outputs=outputs)
    with pytest.raises(SpecError) as got:
        plain_spec(call, inputs, outputs)
    assert str(got.value) == str(expected.value)
