"""A flow's jobs keyed by the files they read (see actors/depfiles.py).

`weft submit --file FLOW` of a flow with a local tree input (`@./dir`)
remembers the job id each of its jobs had at its last submit, in
`$XDG_CACHE_HOME/weft/flows/` (default `~/.cache`; one file per flow
file path).
At the next submit, a job whose earlier version succeeded and left a
`_deps` record is compared by its narrowed key: the new job's work with its
tree inputs cut down to the files the earlier run read, at their new
contents. When the keys match, the earlier job stands for the new one (its
outputs feed the dependents, nothing runs); otherwise the job is submitted
as usual. Only tree inputs given as local paths (`@./dir`) are narrowed.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from .depfiles import DEPS_OUTPUT, decode_record, narrowed_key
from .model import JobSpec
from .trees import Manifest, Scan


def state_path(flow_file: Path) -> Path:
    where = flow_file.resolve()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "weft" / "flows" / f"{hashlib.sha256(str(where).encode()).hexdigest()[:16]}-{where.stem}.json"


def load_state(path: Path) -> dict[str, str]:
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in state.items() if isinstance(k, str) and isinstance(v, str)} \
        if isinstance(state, dict) else {}


def save_state(path: Path, state: dict[str, str]) -> None:
    """Best effort: without it the next submit just narrows nothing."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=1, sort_keys=True) + "\n")
        os.replace(tmp, path)
    except OSError:
        pass


def _remap(spec: JobSpec, ids: dict[str, str]) -> None:
    """Refs and `after` of jobs whose id changed (or that an earlier job stands for)."""
    refs = {}
    for k, ref in spec.refs.items():
        job, _, out = ref.partition("/")
        refs[k] = f"{ids[job]}/{out}" if job in ids else ref
    spec.refs = refs
    if spec.after:
        spec.after = [ids.get(a, a) for a in spec.after]


def _reads_unchanged(client: Any, prev: str, spec: JobSpec, local: dict[str, Scan]) -> bool:
    try:
        if client.status([prev])[0].get("state") != "succeeded":
            return False
        record = decode_record(client.get(f"{prev}/{DEPS_OUTPUT}"))
    except Exception:  # no record, the job gone, the cluster unreachable: no narrowing
        return False
    if record is None:
        return False
    key, deps = record
    contents: dict[str, dict[str, str]] = {}
    for name, paths in deps.items():
        scan = local.get(spec.refs.get(name, ""))
        if scan is None or scan.manifest is None:
            return False
        m = Manifest.decode(scan.manifest)
        if m.kind != "tree":
            return False
        shas = {e.path: e.sha for e in m.files}
        contents[name] = {p: shas.get(p, "") for p in paths}
    return narrowed_key(spec, contents) == key


def narrow(client: Any, flow: list[tuple[str, JobSpec]], local: dict[str, Scan],
           state: dict[str, str]) -> dict[str, str]:
    """Rewrite `flow` in place for the jobs an earlier run stands for;
    returns flow name -> the earlier job id for those."""
    ids: dict[str, str] = {}
    reused: dict[str, str] = {}
    for name, spec in flow:
        before = spec.job_id()
        if ids:
            _remap(spec, ids)
        prev = state.get(name)
        if prev and prev != spec.job_id() and spec.name is None and _reads_unchanged(client, prev, spec, local):
            reused[name] = prev
            ids[before] = prev
        elif spec.job_id() != before:
            ids[before] = spec.job_id()
    return reused


def submit_flow(client: Any, flow_file: Path, flow: list[tuple[str, JobSpec]], local: dict[str, Scan],
                *, replace: bool = False, fail_fast: bool = False, flow_name: str | None = None,
                secret_inputs: dict[str, str] | None = None) -> list[Any]:
    """Submit a flow's jobs, an earlier job standing for each whose reads
    are unchanged; Futures in flow order (those: `cached`). With `flow_name`,
    `FLOW:NAME` finds every job of it, those stood for included."""
    from .future import Future

    named = {"flow": flow_name, "names": [n for n, _ in flow]} if flow_name else {}
    if not any(s.path.is_dir() for s in local.values()):  # nothing to narrow
        return client.submit_specs([spec for _, spec in flow], replace=replace, fail_fast=fail_fast,
                                   secret_inputs=secret_inputs, **named)
    path = state_path(flow_file)
    state = load_state(path)
    reused = narrow(client, flow, local, state) if state else {}
    todo = [(name, spec) for name, spec in flow if name not in reused]
    if flow_name:
        named = {"flow": flow_name, "names": [n for n, _ in todo], "keep": {n: reused[n] for n in reused}}
    submitted = iter(client.submit_specs([s for _, s in todo], replace=replace, fail_fast=fail_fast,
                                         secret_inputs=secret_inputs, **named) if todo else [])
    futures = []
    for name, spec in flow:
        if name in reused:
            job = reused[name]
            futures.append(Future(client, job, [f"{job}/{o}" for o in spec.outputs], cached=True))
        else:
            futures.append(next(submitted))
    save_state(path, {**state, **{name: f.job for (name, _), f in zip(flow, futures, strict=True)}})
    return futures
