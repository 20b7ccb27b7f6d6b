"""The coordinator's parse of a plain callable spec (call, inputs, outputs:
what `map` sends, thousands a submit) without the dataclass `__init__` and
the full `validate`: only what such a spec can get wrong is checked, and
anything unusual goes through `JobSpec(...)`, whose errors are the words
users see. (~1 us against ~2.7 us a spec; docs/performance.md, p-submit2.)

A plain spec with at most one input is kept as a `PlainSpec`: four slots
instead of JobSpec's thirty and no inputs map, ~380 bytes less a queued job
(docs/performance.md, "Submit and memory, third round"). It reads as a
JobSpec (every other field is its default, as class attributes) and is
compared equal to the JobSpec it stands for.
"""

from __future__ import annotations

import hashlib
from dataclasses import MISSING, fields
from typing import Any

import msgpack

from .model import JobSpec, _valid_call, _valid_output

_GIVEN = ("call", "inputs", "outputs")
_FIELDS = tuple(f.name for f in fields(JobSpec))


def _builder() -> Any:
    # Generated from the dataclass's own fields, so a field added to JobSpec
    # gets its default here too (a test compares with JobSpec(...)).
    ns: dict[str, Any] = {"_new": object.__new__, "_cls": JobSpec}
    lines = []
    for f in fields(JobSpec):
        if f.name in _GIVEN:
            lines.append(f"    s.{f.name} = {f.name}")
        elif f.default is not MISSING:
            ns[f"_d_{f.name}"] = f.default
            lines.append(f"    s.{f.name} = _d_{f.name}")
        else:
            ns[f"_f_{f.name}"] = f.default_factory
            lines.append(f"    s.{f.name} = _f_{f.name}()")
    src = "def build(call, inputs, outputs):\n    s = _new(_cls)\n" + "\n".join(lines) + "\n    return s\n"
    exec(src, ns)  # noqa: S102 (our own source, made from the field list above)
    return ns["build"]


_build = _builder()
# (call, outputs) -> the msgpack bytes of a plain spec's canonical form
# before and after its inputs (JobSpec.job_id hashes prefix + inputs + suffix).
_CANON: dict[tuple[str, tuple[str, ...]], tuple[bytes, bytes]] = {}
_CANON_MAX = 1000
_NO_INPUTS = msgpack.packb([])


class PlainSpec:
    """JobSpec(call=call, inputs={in_key: in_value} or {}, outputs=outputs),
    kept small for the time it is queued. Never changed in place (as no
    queued spec is): its other fields cannot be set."""

    __slots__ = ("call", "in_key", "in_value", "outputs")

    def __init__(self, call: str, in_key: str | None, in_value: str | bytes | None, outputs: list[str]) -> None:
        self.call = call
        self.in_key = in_key
        self.in_value = in_value
        self.outputs = outputs

    @property
    def inputs(self) -> dict[str, str | bytes]:
        # (A new map each time: nothing may change a queued spec's inputs.)
        return {self.in_key: self.in_value} if self.in_key is not None else {}

    def to_wire(self) -> dict[str, Any]:
        if self.in_key is None:
            return {"o": self.outputs, "call": self.call}
        return {"o": self.outputs, "call": self.call, "in": {self.in_key: self.in_value}}

    def job_id(self) -> str:
        """JobSpec.job_id's id (the same bytes hashed), with the parts every
        spec of one callable and outputs shares encoded once."""
        outs = self.outputs
        parts = _CANON.get((self.call, tuple(outs)))
        if parts is None:
            parts = _canon_parts(self.call, outs)
        middle = msgpack.packb(((self.in_key, self.in_value),)) if self.in_key is not None else _NO_INPUTS
        return "j" + hashlib.blake2b(parts[0] + middle + parts[1], digest_size=12).hexdigest()

    def __eq__(self, other: object) -> bool:
        if type(other) is not PlainSpec and not isinstance(other, JobSpec):
            return NotImplemented
        return all(getattr(self, f) == getattr(other, f) for f in _FIELDS)

    __hash__ = None  # type: ignore[assignment]  (as JobSpec's: specs are compared, not hashed)

    def __repr__(self) -> str:
        return f"PlainSpec(call={self.call!r}, inputs={self.inputs!r}, outputs={self.outputs!r})"

    # JobSpec's own methods read only attributes, which this has.
    validate = JobSpec.validate
    _validate_control = JobSpec._validate_control
    exit_action = JobSpec.exit_action
    identity = JobSpec.identity
    output_objects = JobSpec.output_objects
    payload_size = JobSpec.payload_size


def _set_defaults() -> None:
    # Every other JobSpec field reads as its default; a default made by a
    # factory (a fresh map or list) is one shared empty value, never changed.
    for f in fields(JobSpec):
        if f.name in _GIVEN:
            continue
        if f.default is not MISSING:
            setattr(PlainSpec, f.name, f.default)
        else:
            empty = f.default_factory()  # type: ignore[misc]
            if empty:
                raise TypeError(f"JobSpec.{f.name}'s default is not empty: PlainSpec cannot share it")
            setattr(PlainSpec, f.name, empty)


_set_defaults()


def _canon_parts(call: str, outputs: list[str]) -> tuple[bytes, bytes]:
    # JobSpec.job_id's map {"cmd", "call", "in", "refs", "o"} (in this
    # order), cut around "in"'s value (a nil here: b"\xc0" follows the key,
    # which no UTF-8 text holds); tests/test_plainspec.py checks the ids.
    canon = msgpack.packb({"cmd": None, "call": call, "in": None, "refs": [],
                           "o": sorted(outputs) if len(outputs) > 1 else list(outputs)})
    cut = canon.index(b"\xa2in\xc0") + 3
    parts = canon[:cut], canon[cut + 1:]
    if len(_CANON) >= _CANON_MAX:
        _CANON.clear()  # many callables: start over rather than grow
    _CANON[(call, tuple(outputs))] = parts
    return parts


# Names and callables already found valid (a submit repeats them), and one
# copy of each: the callable's name and the output list, per spec decoded, are
# ~150 bytes a queued job otherwise (graph.Graph._share does it for the rest).
_OK_CALLS: dict[str, str] = {}
_OK_NAMES: set[str] = set()
_OUTPUTS: dict[tuple[str, ...], list[str]] = {}
_KNOWN_MAX = 4096


def _call(call: str) -> str | None:
    """`call`'s one copy if it is valid, else None."""
    known = _OK_CALLS.get(call)
    if known is None and _valid_call(call):
        if len(_OK_CALLS) >= _KNOWN_MAX:
            _OK_CALLS.clear()  # (many callables: start over rather than grow)
        known = _OK_CALLS[call] = call
    return known


def _name(name: str) -> bool:
    if name in _OK_NAMES:
        return True
    if not _valid_output(name):
        return False
    if len(_OK_NAMES) >= _KNOWN_MAX:
        _OK_NAMES.clear()
    _OK_NAMES.add(name)
    return True


def _outputs(outputs: list[str]) -> list[str]:
    """One shared copy of an output list (never changed in place)."""
    key = tuple(outputs)
    known = _OUTPUTS.get(key)
    if known is None:
        if len(_OUTPUTS) >= _KNOWN_MAX:
            _OUTPUTS.clear()
        known = _OUTPUTS[key] = outputs
    return known


def plain_from_wire(w: dict[str, Any]) -> JobSpec | PlainSpec:
    """A plain spec's wire form ({call, in, o} at most) as plain_spec makes it;
    the common shape (one input, one output) checked without a regex."""
    call, inputs, outputs = w.get("call"), w.get("in"), w.get("o")
    if type(outputs) is list and len(outputs) == 1 and type(inputs) is dict and len(inputs) == 1 \
            and type(call) is str:
        [(k, v)] = inputs.items()
        o = outputs[0]
        if type(k) is str and type(o) is str and (type(v) is str or type(v) is bytes) \
                and (k in _OK_NAMES or _name(k)) and (o in _OK_NAMES or _name(o)):
            # (The caches read here first: a submit's specs nearly all hit them,
            # and three calls a spec were a tenth of this parse.)
            known = _OK_CALLS.get(call) or _call(call)
            if known is not None:
                return PlainSpec(known, k, v, _OUTPUTS.get((o,)) or _outputs(outputs))
    return plain_spec(call, inputs or {}, outputs if "o" in w else [])


def plain_spec(call: Any, inputs: Any, outputs: Any) -> JobSpec | PlainSpec:
    """JobSpec(call=call, inputs=inputs, outputs=outputs), checked the same;
    a PlainSpec when it has at most one input."""
    if type(call) is str and _valid_call(call) and type(inputs) is dict and type(outputs) is list:
        for k, v in inputs.items():
            if type(k) is not str or not _valid_output(k) or (type(v) is not str and type(v) is not bytes):
                break
        else:
            if len(outputs) == 1:
                o = outputs[0]
                ok = type(o) is str and _valid_output(o)
            else:
                ok = all(type(o) is str and _valid_output(o) for o in outputs) and len(set(outputs)) == len(outputs)
            if ok:
                if not inputs:
                    return PlainSpec(_call(call) or call, None, None, _outputs(outputs))
                if len(inputs) == 1:
                    [(k, v)] = inputs.items()
                    return PlainSpec(_call(call) or call, k, v, _outputs(outputs))
                return _build(call, inputs, outputs)
    return JobSpec(call=call, inputs=inputs, outputs=outputs)  # (raises what is wrong)
