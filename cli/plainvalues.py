"""Option and argument values that need no pydantic.

typer (0.29) coerces every parameter value, even an option left out, through a
pydantic TypeAdapter, and importing pydantic costs a `weft` command more than
everything else it imports but trio and zmq. Most weft parameters are plain
strings and integers: `attach` gives those a coercion of their own that
returns what typer's would, and hands anything else (a value that is not
plainly valid, so its error message stays typer's) to typer's own. On a typer
without these internals it does nothing.
"""

from __future__ import annotations

import re
from typing import Any

_INT = re.compile(r"-?(?:0|[1-9][0-9]{0,17})")


class _Plain:
    """typer's RuntimeParam interface (`coerce`): None for any parameter, plain str, int and list[str]."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._typer: Any = None

    def coerce(self, value: Any, param: Any, ctx: Any) -> Any:
        multi = param.multiple or param.nargs == -1
        if value is None:
            return () if multi else None
        if self.kind == "str" and type(value) is str and not multi:
            return value
        if self.kind == "int" and not multi:
            if type(value) is int:  # a default
                return value
            if type(value) is str and _INT.fullmatch(value):
                return int(value)
        if self.kind == "list" and multi and isinstance(value, list | tuple) and all(type(v) is str for v in value):
            return list(value)
        if self._typer is None:
            from typer._coercion import build_runtime_param

            self._typer = build_runtime_param(param.type_descriptor)
        return self._typer.coerce(value, param=param, ctx=ctx)


def _kind(param: Any) -> str:
    """Which values `_Plain` coerces itself: "other" is None alone (an option left out)."""
    info = param.type_descriptor.parameter_info
    if info.parser is not None or getattr(param.type_descriptor, "file_annotation", None) is not None:
        return "other"
    annotation = param.type_descriptor.annotation
    if annotation is str:
        return "str"
    if annotation is int and info.min is None and info.max is None and not info.clamp:
        return "int"
    if annotation == list[str]:
        return "list"
    return "other"


def attach(param: Any) -> None:
    """Give `param` the plain coercion (which hands what it does not know to typer's)."""
    try:
        if param._runtime_param is not None:
            return
        kind = _kind(param)
    except AttributeError:  # another typer: keep its own coercion
        return
    param._runtime_param = _Plain(kind)
