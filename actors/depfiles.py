"""Discovered dependencies: a job says which input files it read.

A command may write the files it actually read to `$WEFT_DEPFILE`: a
make-style rule file (`cc -MMD -MF $WEFT_DEPFILE`: `target: dep dep \\`) or
a plain list, one path a line (absolute, or relative to the command's
working directory; several rules or lists may be appended). Only files of
its *tree* inputs count (`$WEFT_INPUTS/NAME/...`); anything else it names
(system headers, its own outputs) is ignored.

When the job succeeds, its compute node stores the object `JOB/_deps`:

    {"v": 1, "key": K, "deps": {"include": ["a.h", "sub/b.h"], "src": []}}

`deps` lists, for every tree input, the files read from it; K is the
*narrowed key*: a hash of the job's work with those tree inputs replaced by
the contents of just the listed files (`narrowed_key`). The next submit of
the same flow computes K for the new version of the job from its new trees
(actors/depcache.py); when it is the same, the files the job read are
unchanged, and the earlier job's outputs are used instead of running it.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import msgpack

from .model import JobSpec

DEPS_OUTPUT = "_deps"
# A depfile larger than this is not read (a runaway job): no narrowing.
MAX_DEPFILE = 4 << 20


def parse_depfile(text: str) -> list[str]:
    """The paths a make-style rule file or a plain list names, in order."""
    text = text.replace("\\\r\n", " ").replace("\\\n", " ")
    out: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        target, sep, rest = line.partition(": ")
        if not sep and line.endswith(":"):
            continue  # `-MP`'s empty rule for a header
        words = (rest if sep else line).replace("\\ ", "\0").split()
        out += [w.replace("\0", " ") for w in words]
    return out


def files_read(paths: list[str], cwd: Path, inputs_dir: Path, trees: list[str]) -> dict[str, list[str]]:
    """For each tree input, the paths (relative to it) of the listed files under it."""
    found: dict[str, set[str]] = {t: set() for t in trees}
    root = os.path.normpath(inputs_dir)
    for p in paths:
        if "\0" in p:
            continue
        full = os.path.normpath(os.path.join(cwd, p))
        rel = os.path.relpath(full, root)
        name, _, inside = rel.partition(os.sep)
        if name in found and inside and not inside.startswith(".."):
            found[name].add(inside.replace(os.sep, "/"))
    return {t: sorted(v) for t, v in found.items()}


def narrowed_key(spec: JobSpec, contents: dict[str, dict[str, str]]) -> str:
    """The job's work with each tree input in `contents` replaced by
    {path: sha256 of that file, "" if absent}."""
    work = spec.identity()
    work["refs"] = {k: v for k, v in work["refs"].items() if k not in contents}
    files = [[name, sorted(c.items())] for name, c in sorted(contents.items())]
    return hashlib.sha256(msgpack.packb({"work": work, "files": files})).hexdigest()


def encode_record(key: str, deps: dict[str, list[str]]) -> bytes:
    return json.dumps({"v": 1, "key": key, "deps": deps}, sort_keys=True).encode()


def decode_record(data: bytes) -> tuple[str, dict[str, list[str]]] | None:
    """(key, deps) of a `_deps` object, None if it is not one we understand."""
    try:
        r: Any = json.loads(data)
    except ValueError:
        return None
    if not isinstance(r, dict) or r.get("v") != 1 or not isinstance(r.get("key"), str):
        return None
    deps = r.get("deps")
    if not isinstance(deps, dict) or not all(
            isinstance(v, list) and all(isinstance(p, str) for p in v) for v in deps.values()):
        return None
    return r["key"], deps
