"""`probe`: which modules a compute node's callable workers can import,
asked by the coordinator at submit for modules no node's inventory named
(actors/coordinator/imports.py, actors/compute/probe.py)."""

from __future__ import annotations

import re
from typing import Any

from .fields import bad, body_map, str_list
from .record import record

# The module part of a job spec's `call` (model._CALL_RE).
_MODULE_RE = re.compile(r"[A-Za-z_][\w.]{0,199}")
MAX_PROBE = 256


@record
class Probe:
    """`probe`: which of `modules` a callable worker of this node can import
    (looked up as the workers would, without running them in the node)."""

    modules: list[str]

    def to_wire(self) -> dict[str, Any]:
        return {"modules": self.modules}

    @classmethod
    def from_wire(cls, body: Any) -> Probe:
        op = "probe"
        modules = str_list(op, body_map(op, body), "modules", what="module names", nonempty=True)
        if len(modules) > MAX_PROBE:
            bad(op, "modules", f"must name at most {MAX_PROBE} modules, got {len(modules)}")
        for m in modules:
            if not _MODULE_RE.fullmatch(m):
                bad(op, "modules", f"holds {m[:80]!r}, which is not a module name")
        return cls(modules)


@record
class ProbeReply:
    """`found` the workers can import, `missing` they cannot; a module in
    neither could not be looked up in time (unknown)."""

    found: list[str]
    missing: list[str]

    def to_wire(self) -> dict[str, Any]:
        return {"found": self.found, "missing": self.missing}

    @classmethod
    def from_wire(cls, body: Any) -> ProbeReply:
        op = "probe reply"
        b = body_map(op, body)
        return cls(str_list(op, b, "found", what="module names"), str_list(op, b, "missing", what="module names"))
