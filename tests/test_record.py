"""`@record` behaves as `@dataclass(slots=True)` (`record(slots=False)`: `@dataclass`): repr, eq, hash,
slots, kept methods (protocol/record.py)."""

from __future__ import annotations

import dataclasses
import gc
import importlib
import sys
from dataclasses import dataclass, field
from typing import Any

import pytest

from weft.protocol.record import _eq_of, record

SHAPES = ("plain", "defaults", "hidden", "own_repr", "own_eq", "own_hash", "child", "empty")


def make(deco: Any, shape: str) -> type:
    """The same class body under `deco` (record or dataclass(slots=True))."""
    if shape == "plain":
        class C:
            a: int
            b: str
    elif shape == "defaults":
        class C:
            a: int
            b: list[int] = field(default_factory=list)
            c: Any = None
    elif shape == "hidden":
        class C:
            a: int
            secret: str = field(default="s", repr=False)
            noise: float = field(default=0.0, compare=False)
    elif shape == "own_repr":
        class C:
            a: int

            def __repr__(self) -> str:
                return "mine"
    elif shape == "own_eq":
        class C:
            a: int

            def __eq__(self, other: object) -> bool:
                return True
    elif shape == "own_hash":
        class C:
            a: int

            def __hash__(self) -> int:
                return 7
    elif shape == "child":
        @deco
        class Base:
            a: int

        class C(Base):
            b: str = "x"
    else:
        class C:
            pass
    return deco(C)


def samples(cls: type) -> list[Any]:
    n = len(dataclasses.fields(cls))
    args = [(1, "x", None)[:n], (1, "y", None)[:n], (2, "x", None)[:n]]
    out = []
    for a in args:
        try:
            out.append(cls(*a))
        except TypeError:
            out.append(cls(*a[:1]))
    return out


@pytest.mark.parametrize("slots", [True, False])
@pytest.mark.parametrize("shape", SHAPES)
def test_record_behaves_as_dataclass(shape: str, slots: bool) -> None:
    r, d = make(record(slots=slots), shape), make(dataclass(slots=slots), shape)
    rs, ds = samples(r), samples(d)
    assert [repr(x) for x in rs] == [repr(x) for x in ds]
    assert [[x == y for y in rs] for x in rs] == [[x == y for y in ds] for x in ds]
    assert [x.__eq__(object()) for x in rs] == [x.__eq__(object()) for x in ds]
    assert (r.__hash__ is None) == (d.__hash__ is None)
    if r.__hash__ is not None:
        assert hash(rs[0]) == hash(ds[0])
    assert r.__dict__.get("__slots__") == d.__dict__.get("__slots__")
    assert hasattr(rs[0], "__dict__") == hasattr(ds[0], "__dict__") == (not slots)
    assert r.__match_args__ == d.__match_args__
    assert [f.name for f in dataclasses.fields(r)] == [f.name for f in dataclasses.fields(d)]


def test_a_record_meeting_itself_in_its_repr_shows_dots() -> None:
    shown = []
    for deco in (record, dataclass(slots=True)):
        @deco
        class Node:
            kids: list[Any]

        n = Node([])
        n.kids.append(n)
        shown.append(repr(n))
    assert shown[0] == shown[1] and shown[0].endswith("Node(kids=[...])")


def record_classes() -> list[type]:
    """Every @record class of the daemons' image."""
    collecting = gc.isenabled()
    importlib.import_module("weft.localcluster.zygote")  # (turns the collector off: the image's rule)
    if collecting:
        gc.enable()  # for the tests that run after this one in this process
    eq_code = _eq_of((), "").__code__
    out = []
    for name, mod in list(sys.modules.items()):
        if not name.startswith("weft."):
            continue
        for v in vars(mod).values():
            if isinstance(v, type) and v.__module__ == name and getattr(v.__eq__, "__code__", None) is eq_code:
                out.append(v)
    return out


def test_every_record_class_of_the_image_shows_and_compares_as_a_dataclass() -> None:
    classes = record_classes()
    assert len(classes) > 60  # the protocol's messages, the coordinator's effects, NodeConfig...
    for cls in classes:
        fs = dataclasses.fields(cls)
        a, b = cls.__new__(cls), cls.__new__(cls)
        for i, f in enumerate(fs):
            setattr(a, f.name, f"v{i}")
            setattr(b, f.name, f"v{i}")
        shown = ", ".join(f"{f.name}={getattr(a, f.name)!r}" for f in fs if f.repr)
        assert repr(a) == f"{cls.__qualname__}({shown})", cls
        assert a == b and cls.__hash__ is None, cls
        for f in fs:
            if f.compare:
                setattr(b, f.name, "other")
                assert a != b, (cls, f.name)
                setattr(b, f.name, getattr(a, f.name))
