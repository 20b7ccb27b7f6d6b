"""Job names and their versions.

A named job's id is its name (version 1), so ids from before versions are
unchanged. Submitting other work (command or callable, inputs, outputs,
ordering; not priority or limits) under a taken name is refused unless the
submit asks to replace it, which registers version K+1 with the id
`NAME@K+1`. Users address versions as `NAME` (the newest), `NAME@1`,
`NAME@2`...; readers of `NAME/OUTPUT` get the newest version's output. An
older version keeps running undisturbed: it is another job.

The table is derived from the graph's jobs (the graph calls `add` and
`forget`), so a replay rebuilds it with no journal of its own.
"""

from __future__ import annotations

import bisect
from typing import TYPE_CHECKING

from weft.actors.model import JobSpec, SpecError, split_version, version_id

if TYPE_CHECKING:
    from .records import Job

# Parts of a spec that make its identity, by the word a user knows them by.
_PARTS = (("command", "command"), ("call", "callable"), ("inputs", "inputs"), ("refs", "inputs"),
          ("outputs", "outputs"), ("params", "parameters"), ("after_groups", "order"))


class Names:
    def __init__(self) -> None:
        # name -> its versions' numbers, ascending (versions forgotten by gc are gone).
        self.versions: dict[str, list[int]] = {}

    def __len__(self) -> int:
        return len(self.versions)

    def add(self, job_id: str, name: str) -> None:
        own, v = split_version(job_id)
        if own != name:
            return  # (a delegated spec carrying a name under another id)
        vs = self.versions.setdefault(name, [])
        i = bisect.bisect_left(vs, v)
        if i == len(vs) or vs[i] != v:
            vs.insert(i, v)

    def forget(self, job_id: str, name: str) -> None:
        own, v = split_version(job_id)
        vs = self.versions.get(name)
        if own != name or not vs:
            return
        i = bisect.bisect_left(vs, v)
        if i < len(vs) and vs[i] == v:
            del vs[i]
        if not vs:
            del self.versions[name]

    def newest(self, name: str) -> str | None:
        vs = self.versions.get(name)
        return version_id(name, vs[-1]) if vs else None

    def resolve(self, job: str) -> str:
        """The job id a user's reference means: `NAME` the newest version,
        `NAME@K` version K (`NAME@1` is `NAME`); anything else as given."""
        if "@" in job:
            name, v = split_version(job)
            return version_id(name, v)
        return self.newest(job) or job

    def resolve_object(self, obj: str) -> str:
        """`NAME/OUTPUT` as the newest version's object; `NAME@K/OUTPUT` as version K's."""
        if not self.versions and "@" not in obj:
            return obj
        job, sep, output = obj.partition("/")
        return f"{self.resolve(job)}{sep}{output}" if sep else obj


def differences(old: JobSpec, new: JobSpec) -> list[str]:
    """What of a job's identity `new` changes, in the words a user knows."""
    out: list[str] = []
    for attr, word in _PARTS:
        if getattr(old, attr) != getattr(new, attr) and word not in out:
            out.append(word)
    # `after` as given: a kept spec's also holds the members its after_groups
    # had then (names are checked before a submit's groups are expanded), so
    # with groups only the groups are compared.
    if "order" not in out and not old.after_groups and list(old.after) != list(new.after):
        out.append("order")
    return out


def named_ids(specs: list[JobSpec], names: Names, jobs: dict[str, Job],
              replace: bool) -> tuple[list[str | None], dict[str, str]]:
    """The ids of the named specs (None for the others) and the names this
    submit gives a version. A taken name given other work without `replace`
    is refused (SpecError naming it and what differs). Inputs reading
    `NAME/OUTPUT` are pointed at the newest version first, so the comparison
    sees what the job will read."""
    made: dict[str, str] = {}  # name -> the id this submit gives it
    ids: list[str | None] = [None] * len(specs)
    for i, spec in enumerate(specs):
        if spec.name is None:
            continue
        _point_refs(spec, names, made)
        current = names.newest(spec.name)
        job = jobs.get(current) if current is not None else None
        if job is None:
            ids[i] = made[spec.name] = made.get(spec.name) or spec.name
            continue
        diff = differences(job.spec, spec)
        if not diff:
            ids[i] = current
            continue
        _, newest_v = split_version(current)
        if not replace:
            raise SpecError(
                f"job #{i + 1}: job name {spec.name!r} is taken by {current} with different "
                f"{' and '.join(diff)}: submit with --replace to make version {newest_v + 1} of it, "
                "or choose another --name")
        if spec.name not in made:
            made[spec.name] = version_id(spec.name, newest_v + 1)
        ids[i] = made[spec.name]
    return ids, made


def unnamed_id(spec: JobSpec, names: Names, made: dict[str, str]) -> str:
    """An unnamed spec's id (a hash), its inputs pointed at names' newest versions first."""
    if spec.refs:
        _point_refs(spec, names, made)
    return spec.job_id()


def _point_refs(spec: JobSpec, names: Names, made: dict[str, str]) -> None:
    """Inputs reading `NAME/OUTPUT` read the newest version's (this submit's
    own new version first); `NAME@K/OUTPUT` version K's. The spec is only
    rewritten when one changes (most submits name no versioned job)."""
    versions = names.versions
    refs = None
    for k, ref in spec.refs.items():
        job, _, output = ref.partition("/")
        if "@" in job:
            new = names.resolve_object(ref)
        elif job in made:
            new = f"{made[job]}/{output}"
        elif job in versions:
            new = names.resolve_object(ref)
        else:
            continue
        if new != ref:
            if refs is None:
                refs = dict(spec.refs)
            refs[k] = new
    if refs is not None:
        spec.refs = refs
