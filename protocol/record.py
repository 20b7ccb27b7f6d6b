"""`@record`: `@dataclass(slots=True)` with the same `__repr__` and `__eq__`, made without `exec`.

Every local cluster's start waits for the daemons' image (docs/performance.md, "Startup,
seventh round"), and its ~90 dataclasses were ~24 ms of it: `dataclass` compiles
source text for each class's `__init__`, `__repr__` and `__eq__` (three `exec`s a class).
Here `dataclass` makes the `__init__` and the slots as before, and the other two are
shared functions over the class's field names, with the results `dataclass` gives:

    repr   `Name(a=1, b='x')` (the class's `__qualname__`, fields with repr=True, `...`
           for an object met again while it is being shown, per thread)
    eq     NotImplemented unless `other.__class__ is self.__class__`, else the tuples
           of fields with compare=True compared
    hash   None (unhashable), as `dataclass` sets it for eq=True, frozen=False
           unless the class body gives its own

A method the class body defines itself is kept, as `dataclass` keeps it.
tests/test_record.py compares both, class by class, on every `@record` class.
"""

from __future__ import annotations

import _thread
from dataclasses import dataclass, fields
from typing import Any, TypeVar

T = TypeVar("T")


def record(cls: type[T] | None = None, /, *, slots: bool = True) -> Any:
    """`@dataclass(slots=True)` without generating `__repr__`/`__eq__` source (see the module doc);
    `@record(slots=False)` is `@dataclass`'s default, instances with a `__dict__`."""
    if cls is None:
        return lambda c: _record(c, slots)
    return _record(cls, slots)


def _record(cls: type[T], slots: bool) -> type[T]:
    own = cls.__dict__
    has_repr, has_eq = "__repr__" in own, "__eq__" in own
    class_hash = own.get("__hash__")
    # dataclass's rule: a __hash__ in the body counts, the None a body's own __eq__ implies does not.
    explicit_hash = "__hash__" in own and not (class_hash is None and has_eq)
    new: Any = dataclass(slots=slots, repr=False, eq=False)(cls)
    fs = fields(new)
    shown = tuple(f.name for f in fs if f.repr)
    compared = tuple(f.name for f in fs if f.compare)
    qual = new.__qualname__
    if not has_repr:
        new.__repr__ = _repr_of(shown, qual)
    if not has_eq:
        new.__eq__ = _eq_of(compared, qual)
    if not explicit_hash:
        new.__hash__ = None
    return new


def _repr_of(names: tuple[str, ...], qual: str) -> Any:
    running: set[tuple[int, int]] = set()

    def __repr__(self: Any) -> str:
        key = id(self), _thread.get_ident()
        if key in running:
            return "..."
        running.add(key)
        try:
            parts = ", ".join(f"{n}={getattr(self, n)!r}" for n in names)
            return f"{self.__class__.__qualname__}({parts})"
        finally:
            running.discard(key)

    __repr__.__qualname__ = f"{qual}.__repr__"
    return __repr__


def _eq_of(names: tuple[str, ...], qual: str) -> Any:
    def __eq__(self: Any, other: Any) -> Any:
        if other.__class__ is self.__class__:
            return tuple(getattr(self, n) for n in names) == tuple(getattr(other, n) for n in names)
        return NotImplemented

    __eq__.__qualname__ = f"{qual}.__eq__"
    return __eq__
