"""The coordinator's ops (a user's client and the nodes call these).

    submit   Submit         -> SubmitReply
    status   Status         -> {jobs: [job view], counts?}
    wait     Wait           -> WaitReply
    cancel   JobsRef        -> {jobs: [job view]}
    delete   DeleteJobs     -> GcReply (what was freed)
    gc       Gc             -> GcReply
    locate   Locate         -> LocateReply
    nodes    (no body)      -> {nodes: [node view]}
    drain    NodeDrain      -> {node view} (undrain: the same)
    stats    (no body)      -> the coordinator's counters
    hello    Hello (posted by compute and storage nodes) -> {epoch}

A job view is the coordinator's summary of a job (`job`, `state` (a
JobState), `outputs`, `outcome`, `cause`, ...; `final` is the view of the job
a delegation chain ends at); it is shown to users as is.
"""

from __future__ import annotations

from dataclasses import field
from typing import Any

from weft.actors.model import JobSpec, SpecError
from weft.actors.plainspec import plain_from_wire
from weft.bus.endpoint import check_endpoint

from . import waitrows
from .enums import JobState, ObjectState, Role
from .fields import (
    bad,
    body_map,
    int_field,
    object_field,
    opt_str,
    seconds_field,
    str_field,
    str_list,
)
from .record import record
from .secrets import secrets_field

# Wire fields of a plain callable job (see Submit.from_wire).
PLAIN_KEYS = frozenset(("call", "in", "o"))


@record
class FlowPart:
    """The flow file a submit's jobs came from: its name and each job's own
    name in it (in the order of the submit's jobs), so `FLOW:JOB` finds
    them. `part` is the slice's number when the client sent the flow in
    several submits (0: a new submission of the flow). `keep`: names of the
    flow's jobs not submitted again because an earlier job stands for them
    (its reads unchanged: actors/depcache.py) -> that job's id."""

    name: str
    jobs: list[str]
    part: int = 0
    keep: dict[str, str] = field(default_factory=dict)

    def to_wire(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "jobs": self.jobs, "part": self.part}
        if self.keep:
            d["keep"] = self.keep
        return d


@record
class Submit:
    """`submit`: job specs; all are validated before any is accepted."""

    jobs: list[JobSpec]
    # A named job whose name is taken by other work becomes a new version
    # of it (left out of the message when false: the bytes stay as before).
    replace: bool = False
    # Which flow file the jobs are, and their names in it (left out when none).
    flow: FlowPart | None = None
    # A submission's id when it fails fast: at the first failure of one of
    # its jobs, the rest of them are cancelled (left out when not).
    fail_fast: str | None = None
    # False: start only what can start now, keep nothing else (try-submit;
    # answered with a TrySubmitReply, protocol/submission.py).
    queue: bool = True
    # On a cluster in the clear: the submitter's local user name, shown as the
    # jobs' owner (a secure cluster takes the owner from the caller's key).
    owner: str | None = None
    # Secret inputs of every job of the submit (protocol/secrets.py): kept
    # out of the specs, which are journaled and shown.
    secrets: dict[str, str] | None = None

    def to_wire(self) -> dict[str, Any]:
        d: dict[str, Any] = {"jobs": [s.to_wire() for s in self.jobs]}
        if self.owner is not None:
            d["owner"] = self.owner
        if self.secrets:
            d["secrets"] = self.secrets
        if self.replace:
            d["replace"] = True
        if self.flow is not None:
            d["flow"] = self.flow.to_wire()
        if self.fail_fast:
            d["fail_fast"] = self.fail_fast
        if not self.queue:
            d["queue"] = False
        return d

    @classmethod
    def from_wire(cls, body: Any) -> Submit:
        b = body_map("submit", body)
        wires = b.get("jobs")
        if type(wires) is not list or not wires:
            bad("submit", "jobs", "must be a non-empty list of job specs")
        specs = []
        for i, w in enumerate(wires):
            try:
                if type(w) is dict and w.keys() <= PLAIN_KEYS:
                    # The common shape (a callable, its inputs, its outputs:
                    # `map`): what JobSpec.from_wire makes, without its
                    # unknown-field set and 30 look-ups a spec. Checked the same.
                    specs.append(plain_from_wire(w))
                else:
                    specs.append(JobSpec.from_wire(w))
            except SpecError as e:
                raise SpecError(f"job #{i + 1}: {e}") from None
        replace = b.get("replace", False)
        if type(replace) is not bool:
            bad("submit", "replace", "must be true or false")
        queue = b.get("queue", True)
        if type(queue) is not bool:
            bad("submit", "queue", "must be true or false")
        return cls(specs, replace, flow_part(b, len(specs)), opt_str("submit", b, "fail_fast"), queue,
                   opt_str("submit", b, "owner"), secrets_field("submit", b))


def flow_part(b: dict, count: int) -> FlowPart | None:
    """A submit's `flow` (None when it has none); `count` jobs came with it."""
    f = b.get("flow")
    if f is None:
        return None
    op = "submit flow"
    f = body_map(op, f)
    name = str_field(op, f, "name")
    if not isinstance(name, str) or not name or ":" in name or "/" in name:
        bad("submit", "flow.name", f"must be a flow name (no ':' or '/'), got {name!r}")
    names = str_list(op, f, "jobs", what="job names")
    if len(names) != count:
        bad("submit", "flow.jobs", f"names {len(names)} jobs, the submit has {count}")
    keep = f.get("keep", {})
    if type(keep) is not dict or not all(type(k) is str and type(v) is str for k, v in keep.items()):
        bad("submit", "flow.keep", "must map job names to job ids")
    return FlowPart(name, names, int_field(op, f, "part", 0), keep)


@record
class Submitted:
    job: str
    state: JobState
    outputs: list[str]
    cached: bool = False
    # A resubmission of a queued or running job joins it; `differs` names the
    # settings asked for that the existing job keeps its own values of.
    joined: bool = False
    differs: list[str] = field(default_factory=list)

    def to_wire(self) -> dict[str, Any]:
        return self.wire(self.job, self.state, self.outputs, self.cached, self.joined, self.differs)

    @staticmethod
    def wire(job: str, state: JobState, outputs: list[str], cached: bool, joined: bool,
             differs: list[str]) -> dict[str, Any]:
        """The wire form, made without the record (the coordinator answers
        thousands a submit)."""
        return {"job": job, "state": state, "outputs": outputs, "cached": cached, "joined": joined,
                "differs": differs}


@record
class SubmitReply:
    jobs: list[Submitted]

    def to_wire(self) -> dict[str, Any]:
        return self.wire([j.to_wire() for j in self.jobs])

    @staticmethod
    def wire(jobs: list[dict[str, Any]]) -> dict[str, Any]:
        """The reply of `Submitted.wire` answers."""
        return {"jobs": jobs}

    @classmethod
    def from_wire(cls, body: Any) -> SubmitReply:
        op = "submit reply"
        b = body_map(op, body)
        items = b.get("jobs")
        if type(items) is not list:
            bad(op, "jobs", "must be a list")
        out = []
        append = out.append
        for j in items:
            if type(j) is not dict or type(job := j.get("job")) is not str \
                    or type(outputs := j.get("outputs")) is not list:
                bad(op, "jobs", f"entry must be a map with 'job' and 'outputs', got {j!r}")
            # (Nearly every answer's `differs` is empty: no generator made to check it.)
            differs = j.get("differs")
            if not differs:
                differs = []
            elif type(differs) is not list or not all(type(d) is str for d in differs):
                bad(op, "differs", f"must be a list of setting names, got {differs!r}")
            append(Submitted(job, j.get("state"), outputs, j.get("cached") is True,
                             j.get("joined") is True, differs))
        return cls(out)


@record
class JobsRef:
    """`cancel` (and `status` of given jobs): `{jobs: [job id, ...]}`."""

    jobs: list[str]

    def to_wire(self) -> dict[str, Any]:
        return {"jobs": self.jobs}

    @classmethod
    def from_wire(cls, body: Any, op: str = "cancel") -> JobsRef:
        return cls(str_list(op, body_map(op, body), "jobs", what="job ids"))


@record
class Status:
    """`status`: the given jobs, or (no `jobs`) the last `limit` submitted.
    `attempts`: with the given jobs, each one's `attempt_list` too (every
    attempt: n, node, started, ended, outcome, exit_code, signal, code, detail)."""

    jobs: list[str] | None = None
    limit: int = 1000
    attempts: bool = False

    def to_wire(self) -> dict[str, Any]:
        if self.jobs is None:
            return {"limit": self.limit}
        return {"jobs": self.jobs, "attempts": True} if self.attempts else {"jobs": self.jobs}

    @classmethod
    def from_wire(cls, body: Any) -> Status:
        op = "status"
        b = body_map(op, body, optional=True)
        if "jobs" in b:
            tries = b.get("attempts", False)
            if type(tries) is not bool:
                bad(op, "attempts", f"must be true or false, got {tries!r}")
            return cls(str_list(op, b, "jobs", what="job ids"), attempts=tries)
        return cls(None, int_field(op, b, "limit", 1000))


@record
class Wait:
    """`wait`: until every job is finished (following delegations) or
    `timeout`. `rows`: a plainly finished job may be answered as a row
    (protocol/waitrows.py; a coordinator that predates it answers views)."""

    jobs: list[str]
    timeout: float = 30.0
    rows: bool = False

    def to_wire(self) -> dict[str, Any]:
        d: dict[str, Any] = {"jobs": self.jobs, "timeout": self.timeout}
        if self.rows:
            d["rows"] = True
        return d

    @classmethod
    def from_wire(cls, body: Any) -> Wait:
        op = "wait"
        b = body_map(op, body)
        return cls(str_list(op, b, "jobs", what="job ids"), seconds_field(op, b, "timeout", 30.0, 300),
                   b.get("rows") is True)


@record
class WaitReply:
    """`jobs`: views, or (asked with `rows`) some of them as rows, which
    `from_wire` turns back into views; `now` is the clock the rows' times are
    measured with."""

    jobs: list[dict[str, Any] | list]
    done: bool
    now: float | None = None

    def to_wire(self) -> dict[str, Any]:
        d: dict[str, Any] = {"jobs": self.jobs, "done": self.done}
        if self.now is not None:
            d["now"] = self.now
        return d

    @classmethod
    def from_wire(cls, body: Any) -> WaitReply:
        op = "wait reply"
        b = body_map(op, body)
        jobs = b.get("jobs")
        if type(jobs) is not list:
            bad(op, "jobs", "must be a list of job views")
        now = b.get("now")
        if now is not None:
            if type(now) is not float:
                bad(op, "now", "must be a time in seconds")
            jobs = [waitrows.view(op, j, now) if type(j) is list else j for j in jobs]
        if not all(type(j) is dict and "job" in j and "state" in j for j in jobs):
            bad(op, "jobs", "must be a list of job views")
        return cls(jobs, b.get("done") is True)


def final_state(view: dict[str, Any]) -> str:
    """The state that decides a job's result: its delegation chain's last job's."""
    return view.get("final", view).get("state")


@record
class Locate:
    """`locate`: where object `object`'s bytes are."""

    object: str

    def to_wire(self) -> dict[str, Any]:
        return {"object": self.object}

    @classmethod
    def from_wire(cls, body: Any) -> Locate:
        return cls(object_field("locate", body_map("locate", body), "object"))


@record
class LocateReply:
    """`storage` is the first of `copies` (None when there is none); `data`
    holds a small finished object's bytes, so the reader needs no second hop."""

    name: str
    state: str  # an ObjectState, or the coordinator's own "unknown" / "lost"
    storage: str | None = None
    copies: list[str] = field(default_factory=list)
    producer: dict[str, Any] | None = None
    data: bytes | None = None

    def to_wire(self) -> dict[str, Any]:
        d = {"name": self.name, "state": self.state, "storage": self.storage, "copies": self.copies,
             "producer": self.producer}
        if self.data is not None:
            d["data"] = self.data
        return d

    @classmethod
    def from_wire(cls, body: Any) -> LocateReply:
        op = "locate reply"
        b = body_map(op, body)
        name, state, storage = b.get("name"), b.get("state"), b.get("storage")
        if type(name) is not str:
            bad(op, "name", "must be a string")
        if type(state) is not str:
            bad(op, "state", "must be a string")
        if storage is not None and type(storage) is not str:
            bad(op, "storage", "must be an endpoint")
        copies = b.get("copies") or []
        if type(copies) is not list or not all(type(c) is str for c in copies):
            bad(op, "copies", "must be a list of endpoints")
        if not copies and storage:  # a coordinator from before `copies`
            copies = [storage]
        data = b.get("data")
        if data is not None and not isinstance(data, bytes | memoryview):
            bad(op, "data", "must be bytes")
        return cls(name, state, storage, copies, b.get("producer"), data)

    @property
    def readable(self) -> bool:
        return self.state == ObjectState.FINISHED and (bool(self.storage) or self.data == b"")


@record
class Hello:
    """`hello`, posted by compute and storage nodes to the coordinator until
    it answers; `inc` (their event queue's incarnation) tells a restart."""

    role: Role
    node: str
    endpoint: str
    inc: str | None = None

    def to_wire(self) -> dict[str, Any]:
        return {"role": self.role, "node": self.node, "endpoint": self.endpoint, "inc": self.inc}

    @classmethod
    def from_wire(cls, body: Any) -> Hello:
        op = "hello"
        b = body_map(op, body)
        role = b.get("role")
        if role not in (Role.COMPUTE, Role.STORAGE):
            bad(op, "role", f"must be compute or storage, got {role!r}")
        node, endpoint = b.get("node"), b.get("endpoint")
        if type(node) is not str:
            bad(op, "node", "must be a node id")
        if type(endpoint) is not str:
            bad(op, "endpoint", "must be an endpoint")
        check_endpoint(endpoint, f"hello endpoint of {role} {node!r}")
        inc = b.get("inc")
        return cls(Role(role), node, endpoint, inc if type(inc) is str else None)


# -- job control (cancel with dependents, listing, pauses, groups) ----------------


@record
class Cancel:
    """`cancel`: `{jobs: [job id, ...], groups?: [group, ...], dependents?: false}`.
    Without `dependents: false` it is JobsRef's bytes. A group's members are
    those known when the cancel arrives."""

    jobs: list[str]
    dependents: bool = True
    groups: list[str] = field(default_factory=list)

    def to_wire(self) -> dict[str, Any]:
        d: dict[str, Any] = {"jobs": self.jobs}
        if self.groups:
            d["groups"] = self.groups
        if not self.dependents:
            d["dependents"] = False
        return d

    @classmethod
    def from_wire(cls, body: Any) -> Cancel:
        op = "cancel"
        b = body_map(op, body)
        groups = str_list(op, b, "groups", what="group names") if "groups" in b else []
        deps = b.get("dependents", True)
        if type(deps) is not bool:
            bad(op, "dependents", f"must be true or false, got {deps!r}")
        return cls(str_list(op, b, "jobs", what="job ids"), deps, groups)


@record
class ListJobs:
    """`jobs`: job views filtered by state, group and submit time (`since`,
    wall-clock seconds), newest last, at most `limit`."""

    states: list[str] = field(default_factory=list)
    group: str | None = None
    since: float | None = None
    limit: int = 10000

    def to_wire(self) -> dict[str, Any]:
        d: dict[str, Any] = {"limit": self.limit}
        if self.states:
            d["states"] = self.states
        if self.group is not None:
            d["group"] = self.group
        if self.since is not None:
            d["since"] = self.since
        return d

    @classmethod
    def from_wire(cls, body: Any) -> ListJobs:
        op = "jobs"
        b = body_map(op, body, optional=True)
        states = str_list(op, b, "states", what="job states") if "states" in b else []
        for s in states:
            if s not in JobState._value2member_map_:
                bad(op, "states", f"has {s!r}: expected one of {', '.join(JobState._value2member_map_)}")
        since = b.get("since")
        if since is not None and type(since) not in (int, float):
            bad(op, "since", f"must be a time in seconds, got {since!r}")
        group = opt_str(op, b, "group")
        return cls(states, group, since, int_field(op, b, "limit", 10000))


@record
class Pause:
    """`pause` and `resume`: `{group?}` (none: the whole cluster)."""

    group: str | None = None

    def to_wire(self) -> dict[str, Any]:
        return {} if self.group is None else {"group": self.group}

    @classmethod
    def from_wire(cls, body: Any, op: str = "pause") -> Pause:
        return cls(opt_str(op, body_map(op, body, optional=True), "group"))


@record
class NodeDrain:
    """`drain` and `undrain`: `{node}`, a compute or storage node's id."""

    node: str

    def to_wire(self) -> dict[str, Any]:
        return {"node": self.node}

    @classmethod
    def from_wire(cls, body: Any, op: str = "drain") -> NodeDrain:
        return cls(str_field(op, body_map(op, body), "node"))


@record
class GroupRef:
    """`group`: one group's counts by state and pending members: `{group}`."""

    group: str

    def to_wire(self) -> dict[str, Any]:
        return {"group": self.group}

    @classmethod
    def from_wire(cls, body: Any) -> GroupRef:
        return cls(str_field("group", body_map("group", body), "group"))


@record
class DeleteJobs:
    """`delete`: forget finished jobs (ids, NAME or NAME@K) with their outputs
    and logs; refused for one an unfinished job still reads, unless `force`."""

    jobs: list[str]
    force: bool = False

    def to_wire(self) -> dict[str, Any]:
        return {"jobs": self.jobs, "force": self.force}

    @classmethod
    def from_wire(cls, body: Any) -> DeleteJobs:
        op = "delete"
        b = body_map(op, body)
        force = b.get("force", False)
        if type(force) is not bool:
            bad(op, "force", "must be true or false")
        return cls(str_list(op, b, "jobs", what="job ids", nonempty=True), force)


@record
class Gc:
    """`gc`: forget finished jobs older than `keep` seconds (default: the
    coordinator's --keep) that nothing unfinished needs, now."""

    keep: float | None = None

    def to_wire(self) -> dict[str, Any]:
        return {} if self.keep is None else {"keep": self.keep}

    @classmethod
    def from_wire(cls, body: Any) -> Gc:
        op = "gc"
        b = body_map(op, body, optional=True)
        keep = b.get("keep")
        if keep is None:
            return cls(None)
        if type(keep) not in (int, float) or not keep >= 0 or keep == float("inf"):
            bad(op, "keep", f"must be seconds >= 0, got {keep!r}")
        return cls(float(keep))


@record
class GcReply:
    """What a delete or gc freed: jobs forgotten (their ids), objects deleted
    on storage and their bytes (as storage said), finished jobs retained,
    waiting jobs a forced delete failed, and the journal's size on disk
    before and after compaction (and the seconds compaction took)."""

    jobs: list[str]
    objects: int
    bytes: int
    retained: int
    journal_before: int
    journal_after: int
    compact_seconds: float = 0.0
    failed: list[str] = field(default_factory=list)

    def to_wire(self) -> dict[str, Any]:
        return {"jobs": self.jobs, "objects": self.objects, "bytes": self.bytes, "retained": self.retained,
                "journal_before": self.journal_before, "journal_after": self.journal_after,
                "compact_seconds": self.compact_seconds, "failed": self.failed}

    @classmethod
    def from_wire(cls, body: Any) -> GcReply:
        op = "gc reply"
        b = body_map(op, body)
        jobs = str_list(op, b, "jobs", what="job ids")
        failed = b.get("failed") or []
        if type(failed) is not list or not all(type(j) is str for j in failed):
            bad(op, "failed", "must be a list of job ids")
        ints = []
        for k in ("objects", "bytes", "retained", "journal_before", "journal_after"):
            v = b.get(k)
            if type(v) is not int or v < 0:
                bad(op, k, f"must be an integer >= 0, got {v!r}")
            ints.append(v)
        secs = b.get("compact_seconds", 0.0)
        if type(secs) not in (int, float):
            bad(op, "compact_seconds", "must be a number")
        return cls(jobs, *ints, float(secs), failed)
