"""The compute node's ops and news.

    start        Start                      -> TaskReport
    start_many   StartMany                  -> StartManyReply (TaskReport or Refused per item)
    result       TaskRef                    -> TaskReport
    cancel       TaskRef                    -> TaskReport
    delete       DeleteTasks                -> DeleteTasksReply
    list         (no body)                  -> TaskInventory
    probe        Probe                      -> ProbeReply (which modules its callable workers can import: protocol/probe.py)
    withdraw     Withdraw                   -> {jobs: [...]} (queued tasks given back, see coordinator/steal.py)
    event `task` TaskReport (a task's state changed; `done` ones are urgent)

A start names, per input, where its copies are and which object to read
(`[where, object]`, or `[where, object, bytes]` when the coordinator holds
the bytes; a bare endpoint reads the ref's own object), and per output
where to write it; `where` is an endpoint or a list of replica endpoints.
"""

from __future__ import annotations

from dataclasses import field
from typing import Any

from weft.actors.model import JobSpec, SpecError, check_job_id, check_output_name, split_object_name
from weft.bus.endpoint import check_endpoint
from weft.bus.errors import BusError

from .enums import Outcome, TaskState
from .fields import (
    bad,
    body_map,
    enum_field,
    epoch_field,
    int_field,
    job_field,
    put_epoch,
    str_list,
)
from .record import record
from .secrets import secrets_field

Where = str | list[str]
_TASK_STATES = TaskState._value2member_map_
_OUTCOMES = Outcome._value2member_map_


def where(endpoints: list[str]) -> Where:
    """The wire form of a location: one endpoint, or the list of the replicas'."""
    return endpoints[0] if len(endpoints) == 1 else endpoints


# Endpoints a start already named and that were found connectable: a
# compute node sees the same few storage endpoints in every start, so each
# is checked once, not per input and output of every task. Bounded, so a
# flood of distinct (valid) names cannot grow it for good.
_CHECKED: set[str] = set()
_CHECKED_MAX = 1024


def _endpoints(op: str, v: Any, kind: str, name: str) -> list[str] | None:
    eps = [v] if type(v) is str else v
    if type(eps) is not list or not eps or not all(type(e) is str for e in eps):
        return None
    for e in eps:
        if e not in _CHECKED:
            check_endpoint(e, f"{op}: storage endpoint of {kind} {name!r}")
            if len(_CHECKED) < _CHECKED_MAX:
                _CHECKED.add(e)
    return eps


def _outputs(op: str, value: Any, names: list[str]) -> dict[str, list[str]]:
    if value is None:
        value = {}
    if type(value) is not dict:
        bad(op, "outputs", "must map output names to storage endpoints")
    out = {}
    for k, v in value.items():
        eps = _endpoints(op, v, "output", k) if type(k) is str else None
        if eps is None:
            bad(op, "outputs", "must map names to a storage endpoint or a list of them")
        out[k] = eps
    if len(out) < len(names) or any(n not in out for n in names):
        missing = sorted(set(names) - set(out))
        bad(op, "outputs", f"gives no storage endpoint for {', '.join(missing)}")
    return out


def _inputs(op: str, value: Any, refs: dict[str, str]) -> tuple[dict[str, tuple[list[str], str]], dict[str, bytes]]:
    if value is None:
        value = {}
    if type(value) is not dict:
        bad(op, "inputs", "must map input names to storage endpoints")
    out = {}
    inline = {}
    for name, ref in refs.items():
        v = value.get(name)
        if type(v) is str:
            out[name] = ([check_endpoint(v, f"{op}: storage endpoint of input {name!r}")], ref)
            continue
        if type(v) in (list, tuple) and len(v) in (2, 3) and type(v[1]) is str:
            # No copy at all: an empty output the coordinator holds, its bytes inline.
            eps = [] if len(v) == 3 and v[0] == [] else _endpoints(op, v[0], "input", name)
            if eps is not None:
                try:
                    split_object_name(v[1])
                except SpecError as e:
                    bad(op, "inputs", f"entry of input {name!r}: {e}")
                out[name] = (eps, v[1])
                if len(v) == 3:
                    if type(v[2]) is not bytes:
                        bad(op, "inputs", f"inline bytes of input {name!r} must be bytes")
                    inline[name] = v[2]
                continue
        bad(op, "inputs", f"gives no storage endpoint for input {name!r}")
    return out, inline


def _after(op: str, value: Any, refs: dict[str, str]) -> dict[str, tuple[str, int]]:
    if not value:
        return {}
    if type(value) is not dict:
        bad(op, "after", "must map input names to [job, token]")
    out = {}
    for name, v in value.items():
        if name not in refs:
            bad(op, "after", f"names {name!r}, which is not an input of the job")
        if not (type(v) in (list, tuple) and len(v) == 2 and type(v[1]) is int):
            bad(op, "after", f"entry of input {name!r} must be [job, token]")
        try:
            out[name] = (check_job_id(v[0]), v[1])
        except SpecError as e:
            bad(op, "after", f"entry of input {name!r}: {e}")
    return out


def _near(op: str, value: Any, refs: dict[str, str]) -> dict[str, str]:
    if not value:
        return {}
    if type(value) is not dict:
        bad(op, "near", "must map input names to compute endpoints")
    out = {}
    for name, v in value.items():
        if name not in refs:
            bad(op, "near", f"names {name!r}, which is not an input of the job")
        if type(v) is not str:
            bad(op, "near", f"entry of input {name!r} must be a compute endpoint")
        out[name] = check_endpoint(v, f"{op}: compute endpoint of input {name!r}")
    return out


@record
class Start:
    """`start`: run job `job` (attempt `token`) as a task on this node.

    `near` names, for inputs made on another compute node, that node: it may
    still hold the bytes in memory (its value cache) and serve them with its
    `read` op, the same as storage's; storage remains the copy of record."""

    job: str
    spec: JobSpec
    inputs: dict[str, tuple[list[str], str]] = field(default_factory=dict)  # name -> (copies, object)
    outputs: dict[str, list[str]] = field(default_factory=dict)  # output -> endpoints to write to
    token: int = 0
    inline: dict[str, bytes] = field(default_factory=dict)  # inputs whose bytes came along
    after: dict[str, tuple[str, int]] = field(default_factory=dict)  # input -> (job, token) making it here
    epoch: int | None = None
    near: dict[str, str] = field(default_factory=dict)  # input -> compute endpoint that made it
    secrets: dict[str, str] | None = None  # secret inputs (protocol/secrets.py): env only, never written

    def to_wire(self) -> dict[str, Any]:
        # The coordinator sends thousands a second: `where` and put_epoch are
        # inlined, and loops, not comprehensions (a function call each on 3.11).
        inputs: dict[str, list] = {}
        if self.inputs:
            inline = self.inline
            for name, (eps, obj) in self.inputs.items():
                w = eps[0] if len(eps) == 1 else eps
                inputs[name] = [w, obj, inline[name]] if name in inline else [w, obj]
        outputs: dict[str, Where] = {}
        for o, eps in self.outputs.items():
            outputs[o] = eps[0] if len(eps) == 1 else eps
        d: dict[str, Any] = {
            "job": self.job, "spec": self.spec.to_wire(), "inputs": inputs, "outputs": outputs, "token": self.token,
        }
        if self.after:
            d["after"] = {name: [job, token] for name, (job, token) in self.after.items()}
        if self.epoch is not None:
            d["epoch"] = self.epoch
        if self.near:
            d["near"] = self.near
        if self.secrets:
            d["sec"] = self.secrets
        return d

    @classmethod
    def from_wire(cls, body: Any, op: str = "start") -> Start:
        b = body_map(op, body)
        job = job_field(op, b)
        spec = JobSpec.from_wire(b.get("spec"))  # SpecError (bad-spec) names what is wrong in it
        token = int_field(op, b, "token", 0, maximum=(1 << 63) - 1)
        inputs, inline = _inputs(op, b.get("inputs"), spec.refs)
        outputs = _outputs(op, b.get("outputs"), spec.outputs)
        after = _after(op, b.get("after"), spec.refs)
        near = _near(op, b.get("near"), spec.refs)
        return cls(job, spec, inputs, outputs, token, inline, after, epoch_field(op, b), near,
                   secrets_field(op, b, "sec"))


@record
class Refused:
    """One item of a batch that was refused: `{job, error: {code, message}}`."""

    job: str | None
    code: str
    message: str

    def to_wire(self) -> dict[str, Any]:
        return {"job": self.job, "error": {"code": self.code, "message": self.message}}

    @classmethod
    def from_wire(cls, d: Any, op: str = "start_many") -> Refused:
        b = body_map(op, d)
        err = b.get("error")
        if type(err) is not dict or type(err.get("code")) is not str:
            bad(op, "error", "must be a map with 'code' and 'message'")
        job = b.get("job")
        return cls(job if type(job) is str else None, err["code"], str(err.get("message", "")))


@record
class StartMany:
    """`start_many`: several starts in one message. Each item is judged on
    its own (one bad item does not fail the batch): `tasks` holds a Start
    or, for an item that was malformed, the Refused answer to give it."""

    tasks: list[Start | Refused]
    epoch: int | None = None

    def to_wire(self) -> dict[str, Any]:
        return put_epoch({"tasks": [t.to_wire() for t in self.tasks if type(t) is Start]}, self.epoch)

    @classmethod
    def from_wire(cls, body: Any) -> StartMany:
        op = "start_many"
        b = body_map(op, body)
        items = b.get("tasks")
        if type(items) is not list:
            bad(op, "tasks", "must be a list of start bodies")
        tasks: list[Start | Refused] = []
        for item in items:
            try:
                tasks.append(Start.from_wire(item, op))
            except (BusError, SpecError) as e:  # bad-request, bad-spec
                job = item.get("job") if type(item) is dict else None
                tasks.append(Refused(job if type(job) is str else None, e.code, str(e)))
        return cls(tasks, epoch_field(op, b))


@record
class Delegation:
    """A finished job hands one of its outputs to a new job:
    `{job: spec, stream: output of that job, output?: which output is handed}`.

    Validated once, where it enters (the runner's delegate.json, a callable's
    Delegate, the task log); the wire form is kept as it came.
    """

    spec: JobSpec
    stream: str
    output: str | None = None
    wire: dict[str, Any] | None = None

    def to_wire(self) -> dict[str, Any]:
        if self.wire is None:
            d: dict[str, Any] = {"job": self.spec.to_wire(), "stream": self.stream}
            if self.output is not None:
                d["output"] = self.output
            self.wire = d
        return self.wire

    @classmethod
    def from_wire(cls, d: Any) -> Delegation:
        """Raises SpecError (code bad-spec) naming what is wrong."""
        if type(d) is not dict or "job" not in d or "stream" not in d:
            raise SpecError("a delegation must be a map with 'job' and 'stream'")
        return cls.of(JobSpec.from_wire(d["job"]), d["stream"], d.get("output"), d)

    @classmethod
    def of(cls, spec: JobSpec, stream: Any, output: Any = None, wire: dict | None = None) -> Delegation:
        """A delegation to the (valid) job `spec`; checks the names."""
        if output is not None:
            check_output_name(output)
        check_output_name(stream)
        if stream not in spec.outputs:
            raise SpecError(f"delegation stream {stream!r} is not an output of the delegated job")
        return cls(spec, stream, output, wire)

    def handed_output(self, delegating: JobSpec) -> str:
        """Which output of the delegating job (`delegating`) this hands over."""
        if self.output is None:
            if len(delegating.outputs) != 1:
                raise SpecError(
                    "a delegating job with several outputs must say which one it delegates ('output')"
                )
            return delegating.outputs[0]
        if self.output not in delegating.outputs:
            raise SpecError(f"delegated output {self.output!r} is not an output of the delegating job")
        return self.output


@record
class TaskReport:
    """A task as its node reports it: the `task` event, and the answer to
    start, result and cancel. `code` is the machine-readable reason of a
    failure (an ErrorCode, e.g. `no-space`), beside the human `cause`.
    `stored` maps outputs the task finished to [storage node, size, bytes
    when small]; [None, 0, b""] is an empty output written nowhere (the
    coordinator holds it). `delegation` stays in its wire form: a receiver judges it
    with Delegation.from_wire when it acts on it."""

    job: str
    state: TaskState
    token: int = 0
    outcome: Outcome | None = None
    exit: int | None = None
    cause: str | None = None
    code: str | None = None
    delegation: dict[str, Any] | None = None
    unmet: bool = False
    stored: dict[str, list] | None = None
    started: float | None = None
    finished: float | None = None
    # [object, storage endpoint] of each replica a write gave up on while
    # another copy was made: for repair (the copy will never be announced).
    dropped: list[list[str]] | None = None
    # The signal that ended the command (with `exit` None), when one did.
    sig: int | None = None
    # A failed command's last lines of stderr (its log's tail), when it wrote any.
    tail: str | None = None

    def to_wire(self) -> dict[str, Any]:
        d: dict[str, Any] = {"job": self.job, "state": self.state, "token": self.token}
        if self.outcome is not None:
            d["outcome"] = self.outcome
        if self.exit is not None:
            d["exit"] = self.exit
        if self.cause:
            d["cause"] = self.cause
        if self.code:
            d["code"] = self.code
        if self.delegation is not None:
            d["delegation"] = self.delegation
        if self.unmet:
            d["unmet"] = True
        if self.stored:
            d["stored"] = self.stored
        if self.started is not None:
            d["started"] = self.started
        if self.finished is not None:
            d["finished"] = self.finished
        if self.dropped:
            d["dropped"] = self.dropped
        if self.sig is not None:
            d["sig"] = self.sig
        if self.tail:
            d["tail"] = self.tail
        return d

    @classmethod
    def from_wire(cls, d: Any, op: str = "task") -> TaskReport:
        # The coordinator parses thousands of these a second: one `get` and one type test per
        # field, fields.py's readers only to word an error, the rare fields only if present.
        if type(d) is not dict:
            body_map(op, d)
        get = d.get
        job = get("job")
        if type(job) is not str:
            bad(op, "job", f"must be a job id, got {job!r}")
        v = get("state")
        try:  # a member (a record not yet encoded) finds itself too
            state = _TASK_STATES.get(v)
        except TypeError:  # unhashable
            state = None
        if state is None:
            if v is None:
                bad(op, "state", "is required")
            state = enum_field(op, d, "state", TaskState)
        token = get("token", 0)
        if type(token) is not int:
            bad(op, "token", f"must be an integer, got {token!r}")
        outcome, exit_code, stored = get("outcome"), get("exit"), get("stored")
        started, finished = get("started"), get("finished")
        if outcome is not None:
            try:
                v = _OUTCOMES.get(outcome)
            except TypeError:
                v = None
            outcome = v if v is not None else enum_field(op, d, "outcome", Outcome)
        if exit_code is not None and type(exit_code) is not int:
            bad(op, "exit", f"must be an integer, got {exit_code!r}")
        if stored is not None and type(stored) is not dict:
            bad(op, "stored", "must map output names to [node, size, bytes or nil]")
        if started is not None and type(started) is not float and type(started) is not int:
            bad(op, "started", "must be a time")
        if finished is not None and type(finished) is not float and type(finished) is not int:
            bad(op, "finished", "must be a time")
        # Job, state and the usual fields present: if nothing else came, no rare field to read.
        usual = 2 + (outcome is not None) + (exit_code is not None) + (stored is not None) \
            + (started is not None) + (finished is not None)
        if len(d) - ("token" in d) == usual:
            return cls(job, state, token, outcome, exit_code, None, None, None, False, stored, started, finished)
        cause, code = get("cause"), get("code")
        if cause is not None and not isinstance(cause, str):
            bad(op, "cause", "must be a string")
        if code is not None and not isinstance(code, str):  # an ErrorCode, or its string
            bad(op, "code", "must be a string")
        delegation = get("delegation")
        if delegation is not None and type(delegation) is not dict:
            bad(op, "delegation", "must be a map")
        dropped = get("dropped")
        if dropped is not None and (type(dropped) is not list or not all(
                type(x) is list and len(x) == 2 and type(x[0]) is str and type(x[1]) is str for x in dropped)):
            bad(op, "dropped", "must be a list of [object, storage endpoint]")
        sig = get("sig")
        if sig is not None and type(sig) is not int:
            bad(op, "sig", f"must be an integer, got {sig!r}")
        tail = get("tail")
        if tail is not None and type(tail) is not str:
            bad(op, "tail", f"must be a string, got {type(tail).__name__}")
        return cls(job, state, token, outcome, exit_code, cause, code, delegation, get("unmet") is True,
                   stored, started, finished, dropped, sig, tail)


@record
class StartManyReply:
    tasks: list[TaskReport | Refused]

    def to_wire(self) -> dict[str, Any]:
        return {"tasks": [t.to_wire() for t in self.tasks]}

    @classmethod
    def from_wire(cls, body: Any) -> StartManyReply:
        op = "start_many reply"
        b = body_map(op, body)
        items = b.get("tasks")
        if type(items) is not list:
            bad(op, "tasks", "must be a list")
        return cls([Refused.from_wire(t, op) if type(t) is dict and "error" in t else TaskReport.from_wire(t, op)
                    for t in items])


@record
class TaskRef:
    """`result` and `cancel` on a compute node: `{job, epoch?}`."""

    job: str
    epoch: int | None = None

    def to_wire(self) -> dict[str, Any]:
        return put_epoch({"job": self.job}, self.epoch)

    @classmethod
    def from_wire(cls, body: Any, op: str = "result") -> TaskRef:
        b = body_map(op, body)
        return cls(job_field(op, b), epoch_field(op, b))


@record
class Withdraw:
    """`withdraw` on a compute node: `{count, epoch?}`: give back up to
    `count` tasks still queued for room (newest first), which end
    failed-soft (code `withdrawn`) without having started."""

    count: int
    epoch: int | None = None

    def to_wire(self) -> dict[str, Any]:
        return put_epoch({"count": self.count}, self.epoch)

    @classmethod
    def from_wire(cls, body: Any) -> Withdraw:
        b = body_map("withdraw", body)
        return cls(int_field("withdraw", b, "count", -1, minimum=1, maximum=1 << 20), epoch_field("withdraw", b))


@record
class DeleteTasks:
    """`delete` on a compute node: `{jobs: [...]}` (the coordinator's batch),
    or `{job}` (one task; a running one is then an error, not a list entry)."""

    jobs: list[str]
    single: bool = False
    epoch: int | None = None

    def to_wire(self) -> dict[str, Any]:
        d = {"job": self.jobs[0]} if self.single else {"jobs": self.jobs}
        return put_epoch(d, self.epoch)

    @classmethod
    def from_wire(cls, body: Any) -> DeleteTasks:
        op = "delete"
        b = body_map(op, body)
        if "jobs" in b:
            return cls(str_list(op, b, "jobs", what="job ids"), False, epoch_field(op, b))
        return cls([job_field(op, b)], True, epoch_field(op, b))


@record
class DeleteTasksReply:
    deleted: list[str]
    running: list[str]

    def to_wire(self) -> dict[str, Any]:
        return {"deleted": self.deleted, "running": self.running}

    @classmethod
    def from_wire(cls, body: Any) -> DeleteTasksReply:
        op = "delete reply"
        b = body_map(op, body)
        return cls(str_list(op, b, "deleted"), str_list(op, b, "running"))


@record
class TaskInventory:
    """The answer to `list` on a compute node: every task, and where its
    event queue stands (`next`, `inc`) so a follower polls from there."""

    tasks: list[TaskReport]
    next: int
    inc: str
    slots: int  # the CPUs it offers
    busy: int
    memory: int = 0  # bytes it offers (0: not said, an older node)
    host: str | None = None  # its host name, for --host placement
    isolation: dict[str, Any] | None = None  # how it isolates jobs (compute/isolation.py), for `weft nodes`
    # Modules its callable workers can import, known without a probe (compute/importable.py).
    importable: list[str] = field(default_factory=list)

    def to_wire(self) -> dict[str, Any]:
        d = {"tasks": [t.to_wire() for t in self.tasks], "next": self.next, "inc": self.inc,
             "slots": self.slots, "busy": self.busy}
        if self.importable:
            d["importable"] = self.importable
        if self.memory:
            d["memory"] = self.memory
        if self.host is not None:
            d["host"] = self.host
        if self.isolation is not None:
            d["isolation"] = self.isolation
        return d

    @classmethod
    def from_wire(cls, body: Any) -> TaskInventory:
        op = "list reply"
        b = body_map(op, body)
        tasks = b.get("tasks")
        if type(tasks) is not list:
            bad(op, "tasks", "must be a list")
        inc = b.get("inc")
        if type(inc) is not str:
            bad(op, "inc", "must be a string")
        host = b.get("host")
        if host is not None and (type(host) is not str or not host):
            bad(op, "host", "must be a non-empty string")
        isolation = b.get("isolation")
        if isolation is not None and type(isolation) is not dict:
            bad(op, "isolation", "must be a map")
        return cls([TaskReport.from_wire(t, op) for t in tasks], int_field(op, b, "next", 0),
                   inc, int_field(op, b, "slots", 0), int_field(op, b, "busy", 0), int_field(op, b, "memory", 0),
                   host, isolation, str_list(op, b, "importable", what="module names") if "importable" in b else [])
