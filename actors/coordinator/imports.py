"""Submit's check that a callable's module can be imported where it runs.

Callables are imported by the compute nodes' worker processes, so a module
only the submitter has would fail every attempt at run time. A submit naming
a module that no live compute node can import is refused at once (bad-spec).

The check costs nothing in the steady state: each compute node's positive
answers are kept on its ComputeRef, which a restarted node replaces (so a
node's answers last one incarnation), and only modules no live node is known
to import are asked about (`probe`, one call per node, in parallel). Negative
answers are not kept: a module installed later is accepted at once. A node's
inventory already names what its workers are sure to import (weft's own
modules, the top-level modules of its working directory and PYTHONPATH:
compute/importable.py), so a first submit of one of those asks
nothing; an older node names none and is probed as before.

With no compute node connected there is nothing to check against: the
submit is accepted (the jobs wait for a node, as any job does). A node that
does not answer (in time, or at all: an older node) makes the check
inconclusive, and the submit is accepted too; the run time error remains.
"""

from __future__ import annotations

from collections.abc import Iterable

from weft.actors.model import JobSpec
from weft.protocol.probe import ProbeReply

from .nodes import ComputeRef

HINT = "callables must be importable by the compute nodes; `weft up` adds the directory it was started from"


def to_probe(specs: Iterable[JobSpec], computes: Iterable[ComputeRef]) -> tuple[list[str], list[ComputeRef]]:
    """The callables' modules no live compute node is known to import, and
    the nodes to ask; nothing to ask if every module is known (or no node is live)."""
    calls = {s.call for s in specs}
    calls.discard(None)
    if not calls:
        return [], []
    nodes = [c for c in computes if c.ready]
    if not nodes:
        return [], []
    modules = {call.partition(":")[0] for call in calls}
    unknown = sorted(m for m in modules if not any(m in c.importable for c in nodes))
    return (unknown, nodes) if unknown else ([], [])


def verdict(modules: list[str], answers: list[tuple[ComputeRef, ProbeReply | None]]) -> str | None:
    """Keep each node's positive answers; the refusal (one line) if every
    node answered and none can import some module, else None."""
    for ref, reply in answers:
        if reply is not None:
            ref.importable.update(reply.found)
    if not answers or any(reply is None for _, reply in answers):
        return None
    refused = [m for m in modules if all(m in reply.missing for _, reply in answers)]  # type: ignore[union-attr]
    if not refused:
        return None
    n = len(answers)
    what = f"module {refused[0]!r}" if len(refused) == 1 else "modules " + ", ".join(repr(m) for m in refused)
    return f"{what} cannot be imported on any compute node (checked {n} node{'s' if n != 1 else ''}): {HINT}"
