"""Inputs that name local files: `@./path`, `@../path`, `@/abs/path`.

A reference (the text after `@`) starting with `./`, `../` or `/` is a path
on the submitting machine; anything else names an object. A path is hashed
when the job is built (actors/trees.scan), so the job refers to its content
(`sha256-<hex>/content`): editing the file changes the job's id, and a
cached result of the old content is never returned for the new one. The
files are noted in the active `collecting()` block, and the client puts them
(Client.put_scans) before it submits the jobs that read them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from .trees import Scan, TreeError, scan

_found: ContextVar[dict[str, Scan] | None] = ContextVar("weft_local_inputs", default=None)


def is_local_ref(ref: str) -> bool:
    return ref.startswith(("./", "../", "/"))


@contextmanager
def collecting() -> Iterator[dict[str, Scan]]:
    """Local files named by inputs built inside the block (object -> Scan)."""
    found: dict[str, Scan] = {}
    token = _found.set(found)
    try:
        yield found
    finally:
        _found.reset(token)


def local_ref(ref: str, base: Path | None) -> str | None:
    """The content object a local-path reference stands for (None if `ref`
    is not a path); relative paths are relative to `base`."""
    if not is_local_ref(ref):
        return None
    found = _found.get()
    if found is None:
        raise TreeError(f"@{ref}: a local path is read only by the client that submits the job "
                        "(weft submit); here, put it first (weft put) and give its sha256-... name")
    path = Path(ref)
    if base is not None and not path.is_absolute():
        path = base / path
    s = scan(path)
    found.setdefault(s.obj, s)
    return s.obj


def with_local_inputs(table: dict[str, Any], base: Path | None, where: str, *, nested: bool = False) -> dict[str, Any]:
    """A flow job's table with its `@./path` inputs turned into `@<content object>`
    (paths relative to the flow file's directory `base`). `nested`: the flow
    of an exit action, submitted later by the coordinator, which reads no
    local files: refused."""
    inputs = table.get("inputs")
    if not isinstance(inputs, dict) or not any(
            isinstance(v, str) and v.startswith("@") and is_local_ref(v[1:]) for v in inputs.values()):
        return table
    out = {}
    for key, value in inputs.items():
        if isinstance(value, str) and value.startswith("@") and is_local_ref(value[1:]):
            if nested:
                raise TreeError(f"{where}.inputs.{key}: a local path ({value}) cannot be read when an exit "
                                "action submits this flow: weft put it and give its sha256-... name")
            try:
                value = "@" + str(local_ref(value[1:], base))
            except TreeError as e:
                raise TreeError(f"{where}.inputs.{key}: {e}") from None
        out[key] = value
    return {**table, "inputs": out}
