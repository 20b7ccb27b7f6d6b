"""The coordinator's parse of a plain callable spec (call, inputs, outputs:
what `map` sends, thousands a submit) without the dataclass `__init__` and
the full `validate`: only what such a spec can get wrong is checked, and
anything unusual goes through `JobSpec(...)`, whose errors are the words
users see. (~1 us against ~2.7 us a spec; docs/performance.md, p-submit2.)
"""

from __future__ import annotations

from dataclasses import MISSING, fields
from typing import Any

from .model import JobSpec, _valid_call, _valid_output

_GIVEN = ("call", "inputs", "outputs")


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


def plain_spec(call: Any, inputs: Any, outputs: Any) -> JobSpec:
    """JobSpec(call=call, inputs=inputs, outputs=outputs), checked the same."""
    if type(call) is str and _valid_call(call) and type(inputs) is dict and type(outputs) is list:
        for k, v in inputs.items():
            if type(k) is not str or not _valid_output(k) or (type(v) is not str and type(v) is not bytes):
                break
        else:
            if len(outputs) == 1:
                o = outputs[0]
                if type(o) is str and _valid_output(o):
                    return _build(call, inputs, outputs)
            elif all(type(o) is str and _valid_output(o) for o in outputs) and len(set(outputs)) == len(outputs):
                return _build(call, inputs, outputs)
    return JobSpec(call=call, inputs=inputs, outputs=outputs)  # (raises what is wrong)
