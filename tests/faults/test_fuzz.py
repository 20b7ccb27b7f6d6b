"""The wire fuzzer: random and mutated envelopes at each role of a live cluster.

For each role a raw DEALER socket sends the daemon a seeded stream of
envelopes, at a bounded rate, draining every answer:

* garbage bytes, empty and multi-frame messages, truncated and bit-flipped
  valid envelopes, msgpack headers claiming 4 GiB strings/arrays/maps, nesting
  deeper than the decoder allows, one frame over the size limit;
* well-formed envelopes with a wrong type (or no value) in every header field,
  unknown kinds and ops, replies and errors sent to a server;
* every op of the role, as call and as post, with hostile arguments: object
  names like `../x`, `/tmp/...`, NUL bytes, over-long names; integers at and
  past 64 bits, NaN and infinities; wrong types for every field; nested
  structures; lists of 10,000 items; for compute `start` bad specs, bogus
  storage endpoints and inputs; for coordinator `submit` bad specs and 10k
  lists, `hello` from nodes that do not exist.

Every 200 envelopes a `ping` must be answered. Afterwards the daemon is alive
and answers, the objects stored before are byte-identical on every storage
node, a real job still runs end to end, nothing with the fuzzer's marker
(`wfz`) exists outside the data directories, and no op answered `internal`
(a handler raised without an error code), and no daemon logged an error.
Each bug the fuzzer found has a deterministic test of its own at the end.

The fuzzer never sends what an authorised peer may legitimately do to data it
owns: no `delete`/`cancel` of the protected jobs and objects, no epoch above
the coordinator's (any peer can fence the coordinator by design: the bus is
not authenticated), no `hello` impersonating a real node, and only harmless
commands and callables.

Seed and size: `WEFT_FUZZ_SEED` (default: fixed for the CI subset, random
for the full suite; printed in every failure message and in the summary
table) and `WEFT_FUZZ_N` (envelopes per role). Reproduce a failure with the
command in its message, e.g.
`WEFT_FUZZ_SEED=1234 pytest tests/faults/test_fuzz.py -k 'test_fuzz_fast and storage'`.
"""

from __future__ import annotations

import contextlib
import os
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack
import pytest
import zmq

from weft.actors.client import Client
from weft.actors.model import JobSpec, SpecError
from weft.bus.codec import decode
from weft.bus.errors import ProtocolError, RemoteError
from weft.localcluster.cluster import LocalCluster, Proc

from .conftest import (
    FaultReport,
    FuzzRun,
    live_storage_endpoints,
    log_errors,
    log_problems,
    log_sizes,
    node_call,
    stop_cluster,
    storage_copies,
    wait_until,
)
from .dag import make_dag

FAST_N = 1000
FAST_SEED = 20261125
FULL_N = 10_000
RATE = 2000.0  # envelopes per second at most
PING_EVERY = 200
PING_BASE = 10**15  # ids of health pings; fuzz ids stay below
MARK = "wfz"
MAX_MESSAGE = 64 * 1024 * 1024



def avoid_known_bugs(role: str, op: str, body: Any, epoch: int) -> Any:
    """Lower any epoch above the coordinator's: that fences it, by design."""
    if isinstance(body, dict):
        e = body.get("epoch")
        if type(e) is int and e > epoch:
            body["epoch"] = epoch
    return body

SAFE_COMMANDS: list[list[str]] = [
    ["true"],
    ["false"],
    ["sh", "-c", "echo wfz; echo wfz-err >&2"],
    ["sh", "-c", "exit 3"],
    ["cat", "/etc/hostname"],
    ["/nonexistent/wfz-bin"],
    ["sh", "-c", "head -c 200000 /dev/zero"],
    ["sh", "-c", "cat $WEFT_INPUTS/* 2>/dev/null | wc -c"],
    ["sh", "-c", "echo x > $WEFT_OUTPUTS/o1"],
    ["sleep", "0.1"],
]
SAFE_CALLS = [
    "weft.actors.builtins:concat", "weft.actors.builtins:echo", "weft.actors.builtins:noop", "weft.actors.builtins:fail",
    "no.such.module:fn", "weft.actors.builtins:no_such_fn", "sys:exit", "os:getpid",
]
HOSTILE_NAMES = [
    "../wfz", "../../wfz/x", "/tmp/wfz-abs/x", "wfz/../../../tmp/wfz-esc", "wfz-j/..", "wfz-j/.",
    "..", "/", "", ".", "wfz-j//x", "wfz-j/x/y", "wfz-j\x00/x", "wfz-j/x\x00", "wfz-j/" + "o" * 65,
    "w" * 129 + "/x", "wfz-j/ out", "-wfz/x", "wfz-j/x\n", "wfz-j/../../wfz-up", "./wfz/x",
    "wfz-j/%2e%2e", "wfz-é/x", "wfz-j\\..\\x/y", "~/wfz/x", "wfz-j/x:y",
]
BAD_ENDPOINTS = ["tcp://127.0.0.1:1", "garbage", "", "tcp://", "tcp://127.0.0.1:99999", "tcp://256.1.1.1:5",
                 "inproc://wfz", "ipc://", "udp://127.0.0.1:9", "tcp://127.0.0.1:-1"]
HUGE_HEADERS = [
    b"\xdb\xff\xff\xff\xff",  # str32 of 4 GiB
    b"\xc6\xff\xff\xff\xff",  # bin32
    b"\xdd\xff\xff\xff\xff",  # array32
    b"\xdf\xff\xff\xff\xff",  # map32
    b"\xc9\xff\xff\xff\xff\x01",  # ext32
    b"\xdc\xff\xff",  # array16
    b"\xde\xff\xff",  # map16
]


def fuzz_seed(default: int | None) -> int:
    """WEFT_FUZZ_SEED, else `default` (the CI subset: the same envelopes every
    run), else a fresh random seed (the full suite explores)."""
    env = os.environ.get("WEFT_FUZZ_SEED")
    if env:
        return int(env)
    return default if default is not None else random.SystemRandom().randrange(1, 10**9)


def fuzz_n(default: int) -> int:
    env = os.environ.get("WEFT_FUZZ_N")
    return int(env) if env else default


@dataclass
class Context:
    """What the fuzzer may aim at: the live cluster and its protected data."""

    cluster: LocalCluster
    protected_jobs: list[str]
    protected_names: list[str]
    expected: dict[str, bytes]
    epoch: int
    baseline: dict[str, dict[str, Any]] = field(default_factory=dict)  # storage endpoint -> name -> info


class Envelopes:
    """A seeded stream of hostile messages for one role."""

    def __init__(self, role: str, seed: int, ctx: Context, n: int) -> None:
        self.role = role
        self.rng = random.Random(f"{role}/{seed}")
        self.seed = seed
        self.ctx = ctx
        self.n = n
        self.next_id = 1
        self.k = 0  # fuzz job/object counter
        self.submitted: list[str] = []  # coordinator jobs the fuzzer submitted (may be cancelled)
        self.fuzz_jobs: list[str] = []
        self.names: list[str] = []  # fuzz objects named so far
        # Protected objects the fuzzer may aim writes at: on storage, only those
        # the target node holds (a copy made on another node is a second,
        # different copy of an object the coordinator knows finished: see
        # test_stray_storage_event_does_not_unfinish_an_object).
        self.protected_names = ctx.protected_names
        if role == "storage":
            target = ctx.cluster.storages[0].endpoint
            self.protected_names = sorted(ctx.baseline.get(target, {})) or ctx.protected_names[:0]
        self.ops = {
            "storage": ["create", "create_many", "populate", "finish", "put", "delegate", "read", "stat",
                        "list", "delete", "usage"],
            "compute": ["start", "start_many", "result", "list", "delete", "cancel"],
            "coordinator": ["submit", "status", "wait", "locate", "cancel", "nodes", "stats", "hello"],
        }[role] + ["ping", "info", "poll"]

    # -- values ------------------------------------------------------------------------
    def scalar(self) -> Any:
        r = self.rng
        return r.choice([
            None, True, False, 0, -1, 1, 2**31, 2**63 - 1, -(2**63), 2**64 - 1, 0.5, -0.0,
            float("nan"), float("inf"), float("-inf"), "", "x", MARK * r.randint(1, 3000), "\x00",
            "é✓\u202e", b"", r.randbytes(r.randint(1, 64)), "../" * 20 + "wfz",
        ])

    def value(self, depth: int = 0) -> Any:
        r = self.rng
        p = r.random()
        if depth > 2 or p < 0.6:
            return self.scalar()
        if p < 0.75:
            return [self.value(depth + 1) for _ in range(r.randint(0, 5))]
        if p < 0.9:
            return {self.key(): self.value(depth + 1) for _ in range(r.randint(0, 5))}
        if p < 0.95:
            return {r.randint(-5, 5): self.scalar()}  # non-string keys: refused by the decoder
        return [r.randint(0, 9)] * 10_000

    def key(self) -> str:
        return self.rng.choice(["name", "job", "jobs", "token", "data", "o", "cmd", "refs", "x", "", MARK])

    def fuzz_job(self) -> str:
        self.k += 1
        jid = f"{MARK}-{self.seed % 10**6}-{self.role[:2]}-{self.k}"
        self.fuzz_jobs.append(jid)
        return jid

    def job_id(self, protected: bool = True) -> Any:
        r = self.rng.random()
        if r < 0.4:
            return self.fuzz_job()
        if r < 0.65 and self.fuzz_jobs:
            return self.rng.choice(self.fuzz_jobs[-50:])
        if r < 0.75 and protected:
            return self.rng.choice(self.ctx.protected_jobs)
        if r < 0.95:
            return self.rng.choice(HOSTILE_NAMES).split("/")[0] or "../wfz"
        return self.scalar()

    def name(self, protected: bool = True) -> Any:
        r = self.rng.random()
        if r < 0.25 or not self.names:
            name = f"{self.fuzz_job()}/{self.rng.choice(['stdout', 'out', 'o1', 'result'])}"
            self.names.append(name)
            return name
        if r < 0.55:
            return self.rng.choice(self.names[-30:])  # one the fuzzer made: create, write, finish it
        if r < 0.7 and protected and self.protected_names:
            return self.rng.choice(self.protected_names)
        if r < 0.95:
            return self.rng.choice(HOSTILE_NAMES)
        return self.value()

    def token(self) -> Any:
        r = self.rng
        if r.random() < 0.6:
            return r.choice([0, 7])
        return r.choice([1, r.randint(0, 2**40), 2**63 - 1, 2**63, 2**64 - 1, -1, "1", 1.0, None, True])

    def maybe_epoch(self, body: dict[str, Any]) -> dict[str, Any]:
        """Never above the coordinator's epoch: that would fence it, by design."""
        r = self.rng.random()
        if r < 0.7:
            return body
        body["epoch"] = self.rng.choice([0, 1, self.ctx.epoch, -1, "1", 1.5, None, True, [], float("nan")])
        return body

    def data(self) -> Any:
        r = self.rng
        p = r.random()
        if p < 0.6:
            return r.randbytes(r.randint(0, 300))
        if p < 0.8:
            return r.randbytes(r.randint(60_000, 70_000))  # around the inline limit
        if p < 0.83:
            return r.randbytes(r.randint(1, 3) << 20)
        return self.value()

    def endpoint(self) -> Any:
        r = self.rng.random()
        storages = live_storage_endpoints(self.ctx.cluster)
        if r < 0.5:
            return self.rng.choice(storages)
        if r < 0.6:
            return [self.rng.choice(storages), self.rng.choice(BAD_ENDPOINTS)]
        if r < 0.9:
            return self.rng.choice(BAD_ENDPOINTS)
        return self.value()

    def spec(self) -> Any:
        r = self.rng
        if r.random() < 0.05:
            return self.value()
        d: dict[str, Any] = {}
        if r.random() < 0.6:
            cmd = list(r.choice(SAFE_COMMANDS))
            if r.random() < 0.2:
                cmd = ["echo", str(self.scalar())]
            if r.random() < 0.1:
                cmd = r.choice([[], "true", [1, 2], ["true", None], ["echo"] * 10_000, None])
            d["cmd"] = cmd
        else:
            d["call"] = r.choice(SAFE_CALLS) if r.random() < 0.8 else self.scalar()
        if r.random() < 0.3:
            d["in"] = {r.choice(["x", "a", "../wfz", "", "MESSAGE"]): self.scalar() for _ in range(r.randint(0, 3))}
        if r.random() < 0.3:
            d["refs"] = {r.choice(["x", "d0", "../wfz", ""]): self.name() for _ in range(r.randint(0, 3))}
        if r.random() < 0.9:
            d["o"] = r.choice([["stdout"], ["result"], ["o1"], [], ["stdout", "stdout"], ["../wfz"],
                               [self.scalar()], "stdout", ["o" * 65]])
        if r.random() < 0.2:
            d["pri"] = self.scalar()
        if r.random() < 0.2:
            d["t"] = r.choice([float("nan"), float("inf"), -1, 0, 1e308, 0.001, "1", 2**64 - 1])
        if r.random() < 0.1:
            d["name"] = self.job_id(protected=False)
        if r.random() < 0.05:
            d[r.choice(["bogus", "", MARK])] = self.scalar()
        return d

    def valid_job_spec(self) -> dict[str, Any]:
        """A spec the coordinator accepts: harmless, unique, maybe reading protected data."""
        self.k += 1
        refs = {}
        if self.rng.random() < 0.5:
            refs["d0"] = self.rng.choice(self.ctx.protected_names)
        cmd = ["sh", "-c", f"cat $WEFT_INPUTS/* 2>/dev/null | wc -c; echo {MARK}-{self.seed}-{self.k}"]
        spec = JobSpec(command=cmd, refs=refs, outputs=["stdout"])
        self.submitted.append(spec.job_id())
        return spec.to_wire()

    # -- bodies per op -------------------------------------------------------------------
    def body(self, op: str) -> Any:
        r = self.rng
        if r.random() < 0.05:
            return self.value()  # the body itself of a wrong type
        b = getattr(self, f"_{self.role}_{op}", None)
        body = b() if b else self._common(op)
        if isinstance(body, dict) and body and r.random() < 0.15:
            k = r.choice(list(body))
            if r.random() < 0.5:
                body[k] = self.value()
            else:
                del body[k]
        return body

    def _common(self, op: str) -> Any:
        if op == "poll":
            r = self.rng
            return {"since": r.choice([0, 1, 10**9, -1, 2**64 - 1, "0", None]),
                    "max": r.choice([1, 10_000, 0, -1, 2**63 - 1, 1.5]),
                    "timeout": r.choice([0, 0.01, 0.1, -1, 301, float("nan"), float("inf"), "1"]),
                    "inc": r.choice([None, "x", 1, ""])}
        if op in ("ping", "info", "usage", "list", "nodes", "stats"):
            return self.maybe_epoch({}) if op == "ping" else {}
        raise AssertionError(op)

    # storage
    def _storage_create(self) -> Any:
        return self.maybe_epoch({"name": self.name(), "token": self.token(), "replace": self.scalar()})

    def _storage_create_many(self) -> Any:
        r = self.rng
        n = 10_000 if r.random() < 0.02 else r.randint(0, 20)
        items = [[self.name(), self.token()] if r.random() < 0.8 else self.value() for _ in range(min(n, 50))]
        if n > 50:
            items = items * (n // len(items)) if items else []
        return self.maybe_epoch({"items": items, "replace": r.choice([True, False, self.scalar()])})

    def _storage_populate(self) -> Any:
        return {"name": self.name(), "data": self.data(), "token": self.token(),
                "offset": self.rng.choice([None, 0, 1, 2**63, -1, self.scalar()])}

    def _storage_finish(self) -> Any:
        return {"name": self.name(), "token": self.token(),
                "size": self.rng.choice([None, None, 0, 17, 2**64 - 1, -1, "1"])}

    def _storage_put(self) -> Any:
        return {"name": self.name(), "data": self.data(), "token": self.token()}

    def _storage_delegate(self) -> Any:
        return self.maybe_epoch({"name": self.name(), "target": self.name(), "token": self.token()})

    def _storage_read(self) -> Any:
        r = self.rng
        return {"name": self.name(), "offset": r.choice([0, 0, 0, 1, 70_000, 2**63 - 1, 2**64 - 1, -1, None, 1.5]),
                "length": r.choice([1, 1 << 20, 1 << 20, 2**64 - 1, 0, -1, None, "x"])}

    def _storage_stat(self) -> Any:
        return {"name": self.name()}

    def _storage_list(self) -> Any:
        r = self.rng
        body: dict[str, Any] = {"prefix": r.choice(["", MARK, "../", "\x00", 1, None, "j"])}
        if r.random() < 0.5:
            body["states"] = r.choice([["finished"], ["bogus"], "finished", [1], [[]], {}, None, ["partial", "empty"]])
        return body

    def _storage_delete(self) -> Any:
        r = self.rng
        if r.random() < 0.5:
            return self.maybe_epoch({"name": self.name(protected=False)})
        return self.maybe_epoch({"names": [self.name(protected=False) for _ in range(r.randint(0, 10))]})

    # compute
    def _start_body(self) -> Any:
        r = self.rng
        if r.random() < 0.05:
            return self.value()
        spec = self.spec()
        outs = spec.get("o") if isinstance(spec, dict) and isinstance(spec.get("o"), list) else ["stdout"]
        refs = spec.get("refs") if isinstance(spec, dict) and isinstance(spec.get("refs"), dict) else {}
        inputs: Any = {}
        for k in refs:
            inputs[k] = self.endpoint() if r.random() < 0.5 else [self.endpoint(), self.name()]
        outputs: Any = {o: self.endpoint() for o in outs if isinstance(o, str | int)}
        # Never a protected job: its outputs would be written as second copies (see above).
        return self.maybe_epoch({"job": self.job_id(protected=False), "spec": spec, "inputs": inputs,
                                 "outputs": outputs, "token": self.token()})

    def _compute_start(self) -> Any:
        return self._start_body()

    def _compute_start_many(self) -> Any:
        r = self.rng
        tasks = [self._start_body() for _ in range(r.randint(0, 6))]
        if r.random() < 0.02:
            tasks = [{"job": "../wfz"}] * 10_000
        return self.maybe_epoch({"tasks": tasks})

    def _compute_result(self) -> Any:
        return {"job": self.job_id()}

    def _compute_delete(self) -> Any:
        if self.rng.random() < 0.5:
            return self.maybe_epoch({"job": self.job_id()})
        return self.maybe_epoch({"jobs": [self.job_id() for _ in range(self.rng.randint(0, 10))]})

    def _compute_cancel(self) -> Any:
        return self.maybe_epoch({"job": self.job_id(protected=False)})

    # coordinator
    def _coordinator_submit(self) -> Any:
        r = self.rng
        p = r.random()
        if p < 0.1:
            return {"jobs": [self.valid_job_spec()]}
        if p < 0.12:  # 10k specs, the last one bad: nothing may be accepted
            return {"jobs": [JobSpec(command=["true"], inputs={"i": str(i)}, outputs=["stdout"]).to_wire()
                             for i in range(9_999)] + [{"cmd": ["true"], "o": ["../wfz"]}]}
        if p < 0.14:
            return {"jobs": [self.spec()] * 10_000}
        return {"jobs": [self.spec() for _ in range(r.randint(0, 4))]}

    def _coordinator_status(self) -> Any:
        r = self.rng
        if r.random() < 0.3:
            return {"limit": r.choice([1, 0, -1, 10**12, 1.5, "x", None])}
        return {"jobs": [self.job_id() for _ in range(r.randint(0, 5))]}

    def _coordinator_wait(self) -> Any:
        r = self.rng
        jobs = [r.choice(self.submitted) if self.submitted and r.random() < 0.3 else self.job_id()
                for _ in range(r.randint(0, 4))]
        return {"jobs": jobs, "timeout": r.choice([0, 0.05, 0.2, -1, 301, float("nan"), float("inf"), "1", None])}

    def _coordinator_locate(self) -> Any:
        return {"object": self.name()}

    def _coordinator_cancel(self) -> Any:
        r = self.rng
        jobs = [r.choice(self.submitted) if self.submitted and r.random() < 0.3 else self.job_id(protected=False)
                for _ in range(r.randint(0, 4))]
        return {"jobs": jobs}

    def _coordinator_hello(self) -> Any:
        r = self.rng
        role = r.choice(["compute", "storage", "coordinator", "", None, 1])
        # Node ids differ by role: one id under both roles is a known bug
        # (test_compute_death_is_seen_when_a_storage_node_has_its_id in test_kills.py).
        return {"role": role,
                "node": r.choice([f"{MARK}-{role}-{r.randint(0, 20)}", "" if role == "compute" else "-", None, 1,
                                  MARK * 500 + str(role)]),
                "endpoint": r.choice(BAD_ENDPOINTS + [None, 1]),
                "inc": r.choice([None, "x", 1])}

    # -- coherent sequences: valid calls that reach deep into a role -----------------------
    def sequence(self) -> list[tuple[str, Any]]:
        r = self.rng
        if self.role == "storage":
            name = f"{self.fuzz_job()}/out"
            self.names.append(name)
            tok = r.choice([0, 7, 2**40])
            seq: list[tuple[str, Any]] = [("create", {"name": name, "token": tok})]
            size = 0
            for _ in range(r.randint(0, 3)):
                data = r.randbytes(r.choice([10, 1000, 40_000, 70_000, 300_000]))
                seq.append(("populate", {"name": name, "data": data, "token": tok, "offset": size}))
                size += len(data)
            if r.random() < 0.3 and self.names:
                seq.append(("delegate", {"name": name, "target": r.choice(self.names + self.protected_names),
                                         "token": tok}))
            else:
                seq.append(("finish", {"name": name, "token": tok, "size": size}))
            seq.append(("read", {"name": name, "offset": r.choice([0, size // 2, size]), "length": 1 << 20}))
            if r.random() < 0.3:
                seq.append(("create", {"name": name, "token": tok + 1, "replace": True}))
            if r.random() < 0.3:
                seq.append(("delete", {"name": name}))
            return seq
        if self.role == "compute":
            job = self.fuzz_job()
            storage = r.choice(live_storage_endpoints(self.ctx.cluster))
            src = r.choice(self.ctx.protected_names)
            if r.random() < 0.7:
                spec = {"cmd": r.choice(SAFE_COMMANDS), "refs": {"d0": src}, "o": ["stdout"]}
            else:
                spec = {"call": r.choice(SAFE_CALLS), "refs": {"d0": src}, "o": ["result"]}
            if r.random() < 0.2:
                spec["t"] = r.choice([0.05, 1e308, float("inf")])
            out = spec["o"][0]
            start = {"job": job, "spec": spec, "inputs": {"d0": storage if r.random() < 0.5 else [storage, src]},
                     "outputs": {out: storage}, "token": r.choice([0, 5])}
            seq = [("start", start)]
            if r.random() < 0.3:
                seq.append(("cancel", {"job": job}))
            seq += [("result", {"job": job}), ("start", dict(start, token=start["token"] + 1))]
            if r.random() < 0.5:
                seq.append(("delete", {"job": job}))
            return seq
        spec = self.valid_job_spec()
        jid = self.submitted[-1]
        seq = [("submit", {"jobs": [spec, spec]}), ("status", {"jobs": [jid]}),
               ("wait", {"jobs": [jid], "timeout": 0.2}), ("locate", {"object": f"{jid}/stdout"})]
        if r.random() < 0.3:
            seq.append(("cancel", {"jobs": [jid]}))
        return seq

    # -- envelopes -------------------------------------------------------------------------
    def envelope(self, kind: str, id_: Any, op: Any, body: Any, sender: Any = "wfz-fuzzer", **extra: Any) -> bytes:
        m = {"v": 1, "kind": kind, "id": id_, "op": op, "from": sender, "body": body, **extra}
        return msgpack.packb(m, use_bin_type=True)

    def valid_call(self) -> tuple[bytes, int, str]:
        op = self.rng.choice(self.ops)
        call_id = self.next_id
        self.next_id += 1
        kind = "call" if self.rng.random() < 0.9 else "post"
        body = avoid_known_bugs(self.role, op, self.body(op), self.ctx.epoch)
        return self.envelope(kind, call_id, op, body), call_id, op

    def generate(self) -> Iterator[tuple[list[bytes], int | None, str]]:
        """(frames, call id to expect an answer for or None, description)."""
        r = self.rng
        for i in range(self.n):
            if i == self.n // 2:
                # One frame over the size limit: libzmq drops it (and the connection).
                yield [b"\x00" * (MAX_MESSAGE + 8192)], None, "oversize frame"
                continue
            p = r.random()
            if p < 0.06:
                for op, body in self.sequence():
                    call_id = self.next_id
                    self.next_id += 1
                    yield [self.envelope("call", call_id, op, body)], call_id, f"{op} in a sequence"
            elif p < 0.55:
                frame, call_id, op = self.valid_call()
                yield [frame], call_id, f"{op} call"
            elif p < 0.63:
                yield [r.randbytes(r.choice([0, 1, 5, 50, 500, 5000]))], None, "random bytes"
            elif p < 0.71:
                frame, _, op = self.valid_call()
                cut = bytearray(frame[: r.randint(0, max(0, len(frame) - 1))])
                for _ in range(r.randint(0, 3)):
                    if cut:
                        cut[r.randrange(len(cut))] = r.randrange(256)
                yield [bytes(cut)], None, f"truncated/flipped {op}"
            elif p < 0.72:
                frame, _, op = self.valid_call()
                yield [frame] * r.randint(2, 4) if r.random() < 0.5 else [frame, b""], None, f"multi-frame {op}"
            elif p < 0.75:
                # Attached frames (bus.codec): references to frames that did not
                # come, extension types that are not attachments, frames nobody refers to.
                op = r.choice(self.ops)
                ext = msgpack.ExtType(r.choice([1, 1, 1, 2, 127]), r.choice([b"\x00\x00\x00\x00", b"\x07\x00\x00\x00", b"", b"\xff" * 9]))
                m = {"v": 1, "kind": "call", "id": self.next_id, "op": op, "from": "wfz", "body": {"name": "wfz/x", "data": ext}}
                self.next_id += 1
                extra = [r.randbytes(r.choice([0, 10, 70_000])) for _ in range(r.randint(0, 2))]
                yield [msgpack.packb(m, use_bin_type=True), *extra], None, f"attachment {op}"
            elif p < 0.85:
                # A wrong header: each field wrong or missing in turn.
                m: dict[Any, Any] = {"v": 1, "kind": "call", "id": self.next_id, "op": r.choice(self.ops),
                                     "from": "wfz", "body": {}}
                self.next_id += 1
                f = r.choice(["v", "kind", "id", "op", "from", "body", "extra"])
                if f == "extra":
                    m[self.scalar() if r.random() < 0.3 else "zzz"] = self.value()
                elif r.random() < 0.3:
                    del m[f]
                else:
                    m[f] = self.value() if f != "kind" or r.random() < 0.5 else r.choice(["reply", "error", "", "CALL"])
                try:
                    frame = msgpack.packb(m, use_bin_type=True)
                except (TypeError, ValueError, OverflowError):
                    frame = b"\x80"
                yield [frame], None, f"bad header field {f}"
            elif p < 0.9:
                op = r.choice(["", "nope", "__init__", "_op_delete", "PING", "ping\x00", MARK * 100, "register"])
                call_id = self.next_id
                self.next_id += 1
                yield [self.envelope("call", call_id, op, self.value())], call_id, f"unknown op {op[:20]!r}"
            elif p < 0.95:
                # A huge length claimed by a header, in the body.
                frame = self.envelope("call", self.next_id, r.choice(self.ops), None)
                self.next_id += 1
                assert frame.endswith(b"\xc0")
                tail = r.choice(HUGE_HEADERS) + r.randbytes(r.randint(0, 16))
                yield [frame[:-1] + tail], None, "huge length claim"
            elif p < 0.97:
                depth = r.choice([100, 1000, 5000, 100_000])
                frame = self.envelope("call", self.next_id, r.choice(self.ops), None)
                self.next_id += 1
                yield [frame[:-1] + b"\x91" * depth + b"\xc0"], None, f"nesting {depth}"
            else:
                # A large body that is otherwise valid.
                op = r.choice(self.ops)
                call_id = self.next_id
                self.next_id += 1
                body = {"name": f"{self.fuzz_job()}/big", "data": b"\x00" * (r.randint(4, 12) << 20), "token": 0}
                yield [self.envelope("call", call_id, op, body)], call_id, f"large {op}"


class Barrage:
    """Sends the stream at a bounded rate, drains answers, checks pings."""

    def __init__(self, endpoint: str, where: str) -> None:
        self.endpoint = endpoint
        self.where = where
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.SNDHWM, 2000)
        self.sock.setsockopt(zmq.RCVHWM, 0)
        self.sock.connect(endpoint)
        self.replies = 0
        self.codes: dict[str, int] = {}
        self.ok_ops: dict[str, int] = {}  # op -> successful answers
        self.internal: list[tuple[str, str]] = []  # (description of the call, message)
        self.answered: set[int] = set()
        self.calls: dict[int, str] = {}
        self.recent: list[str] = []

    def close(self) -> None:
        self.sock.close(0)
        self.ctx.term()

    def drain(self) -> None:
        while self.sock.poll(0, zmq.POLLIN):
            frames = self.sock.recv_multipart(zmq.NOBLOCK)
            self.replies += 1
            try:
                # As a weft peer reads it: the envelope and the frames it attached.
                env = decode(frames[0], attached=frames[1:])
            except ProtocolError as e:
                raise AssertionError(f"undecodable answer {frames!r:.200}: {e} {self.where}") from None
            m = {"kind": env.kind, "id": env.id, "op": env.op, "body": env.body}
            assert m["kind"] in ("reply", "error"), f"odd answer {m!r:.300} {self.where}"
            if isinstance(m.get("id"), int):
                self.answered.add(m["id"])
            if m["kind"] == "reply":
                op = str(m.get("op"))
                self.ok_ops[op] = self.ok_ops.get(op, 0) + 1
            if m["kind"] == "error":
                body = m.get("body") if isinstance(m.get("body"), dict) else {}
                code = str(body.get("code"))
                self.codes[code] = self.codes.get(code, 0) + 1
                if code == "internal":
                    self.internal.append((self.calls.get(m.get("id"), f"op {m.get('op')!r}"), str(body.get("message"))))

    def send(self, frames: list[bytes]) -> None:
        deadline = time.monotonic() + 30
        while True:
            try:
                self.sock.send_multipart(frames, zmq.NOBLOCK)
                return
            except zmq.Again:
                self.drain()
                if time.monotonic() > deadline:
                    raise AssertionError(f"could not send for 30s: the daemon stopped reading {self.where}") from None
                time.sleep(0.01)

    def ping(self, k: int, timeout: float = 20.0) -> None:
        """A ping must be answered; resent once a second (a dropped connection loses queued calls)."""
        call_id = PING_BASE + k
        frame = msgpack.packb({"v": 1, "kind": "call", "id": call_id, "op": "ping", "from": "wfz-health", "body": {}})
        deadline = time.monotonic() + timeout
        while True:
            self.send([frame])
            resend = time.monotonic() + 1.0
            while time.monotonic() < resend:
                self.drain()
                if call_id in self.answered:
                    return
                self.sock.poll(50, zmq.POLLIN)
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"no answer to ping #{k} within {timeout:g}s; last envelopes: {self.recent[-5:]} {self.where}"
                )

    def run(self, stream: Iterator[tuple[list[bytes], int | None, str]], n: int) -> None:
        t0 = time.monotonic()
        for i, (frames, call_id, what) in enumerate(stream):
            if call_id is not None:
                self.calls[call_id] = f"#{i} {what}: {frames[0][:300]!r}"
            self.recent = (self.recent + [f"#{i} {what}"])[-5:]
            self.send(frames)
            self.drain()
            if (i + 1) % PING_EVERY == 0:
                self.ping(i)
            ahead = t0 + (i + 1) / RATE - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
        self.ping(n)
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            self.drain()
            time.sleep(0.02)


# -- the cluster under fire ------------------------------------------------------------------


@pytest.fixture(scope="module")
def fuzz_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Context]:
    root = tmp_path_factory.mktemp("fuzz")
    cluster = LocalCluster(root / "cluster", compute=1, storage=2, slots=2, log_level="info",
                           coordinator_args=["--heartbeat-timeout", "2"])
    cluster.start(timeout=30)
    try:
        dag = make_dag(4242, 12)
        with Client(cluster.endpoint, timeout=10, retry_for=30) as client:
            futures = client.submit_specs(dag.specs)
            client.wait(futures, timeout=60)
            for i in range(len(dag)):
                assert client.get(dag.output(i)) == dag.expected[i]
            epoch = client.stats()["epoch"]
        names = [dag.output(i) for i in range(len(dag))]
        ctx = Context(cluster, list(dag.ids), names, {dag.output(i): dag.expected[i] for i in range(len(dag))}, epoch)
        ctx.baseline = protected_copies(ctx)
        yield ctx
    finally:
        stop_cluster(cluster)


def protected_copies(ctx: Context) -> dict[str, dict[str, Any]]:
    out = {}
    for ep, objs in storage_copies(live_storage_endpoints(ctx.cluster)).items():
        out[ep] = {n: {k: info.get(k) for k in ("state", "size", "token", "data")}
                   for n, info in objs.items() if n in ctx.expected}
    return out


def marker_paths(ctx: Context) -> list[str]:
    """Paths containing the fuzzer's marker outside the places it may legitimately write."""
    c = ctx.cluster
    allowed = [c.data_dir / f"storage-{i}" / "objects" for i in range(len(c.storages))]
    allowed += [c.data_dir / f"compute-{i}" / "tasks" for i in range(len(c.computes))]
    found = []

    def walk(root: Path, depth: int) -> None:
        try:
            entries = list(os.scandir(root))
        except OSError:
            return
        for e in entries:
            p = Path(e.path)
            if any(p == a or a in p.parents for a in allowed):
                continue
            if MARK in e.name:
                found.append(e.path)
            if depth > 0 and e.is_dir(follow_symlinks=False):
                walk(p, depth - 1)

    walk(c.data_dir, 8)
    walk(c.data_dir.parent, 1)
    walk(Path("/tmp"), 1)
    walk(Path(__file__).resolve().parents[2], 1)  # the repo: the daemons' working directory
    walk(Path("/"), 0)
    # Inside the allowed places, names stay single path components.
    for a in allowed:
        for dirpath, dirnames, _files in os.walk(a):
            depth = len(Path(dirpath).relative_to(a).parts)
            if a.name == "objects" and depth >= 1 and dirnames:
                found.append(f"{dirpath}/{dirnames} (nested object dirs)")
    return found


def connectable(endpoint: str) -> bool:
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    try:
        sock.connect(endpoint)
        return True
    except zmq.ZMQError:
        return False
    finally:
        sock.close(0)


def check_after(role: str, ctx: Context, barrage: Barrage, where: str, seed: int, logs: dict[Path, int]) -> None:
    c = ctx.cluster
    procs = {"storage": c.storages, "compute": c.computes, "coordinator": [c.coordinator]}[role]
    for p in c.procs:
        assert p.alive(), f"{p.role} {p.node_id} died (exit {p.popen.returncode}) {where}; logs: {log_problems(c)}"
    for p in procs:
        assert node_call(p.endpoint, "ping")["node"] == p.node_id, where
    # The data stored before is untouched, on every storage node.
    after = protected_copies(ctx)
    for ep, objs in ctx.baseline.items():
        for name, info in objs.items():
            now = after.get(ep, {}).get(name)
            assert now == info, (
                f"protected object {name} on {ep} changed: {info and {k: v for k, v in info.items() if k != 'data'}}"
                f" -> {now and {k: v for k, v in now.items() if k != 'data'}} {where}"
            )
    # A real job still runs end to end, reading a protected object.
    with Client(c.endpoint, timeout=10, retry_for=30) as client:
        src = ctx.protected_names[-1]
        tag = f"after-{role}-{seed}-{time.time_ns()}"
        job = client.submit(["sh", "-c", f"echo {tag}; cat $WEFT_INPUTS/src"], src=_ref(src))
        try:
            out = job.result(timeout=60)
        except Exception as e:
            raise AssertionError(f"a real job did not run after the barrage: {e} {where}; logs: {log_problems(c)}") from None
        assert out == f"{tag}\n".encode() + ctx.expected[src], where
        for name, data in ctx.expected.items():
            assert client.get(name) == data, f"{name} reads differently through the coordinator {where}"
    if role == "coordinator":
        # Nodes that said hello but never answered are lost after the heartbeat
        # timeout; those with an endpoint nobody can connect to stay (known bug:
        # test_hello_with_an_unusable_endpoint_leaves_no_phantom_node).
        real = {p.node_id for p in c.computes + c.storages}
        time.sleep(2.0)  # the last hello was sent over a second ago: 2 s heartbeat timeout
        with Client(c.endpoint, timeout=10, retry_for=30) as client:
            phantoms = [n for n in client.nodes() if n["node"] not in real and connectable(n["endpoint"])]
        assert not phantoms, f"fake nodes still listed: {phantoms[:3]} {where}"
    errors = log_errors(c, logs)
    assert not errors, f"the daemons logged errors {where}:\n" + "\n".join(errors[:10])
    escaped = marker_paths(ctx)
    assert not escaped, f"files outside the data dirs: {escaped[:10]} {where}"
    unknown = list(barrage.internal)
    assert not unknown, (
        f"{len(unknown)} calls answered `internal` (a handler raised without a code) {where}:\n"
        + "\n".join(f"{w[:300]} -> {m[:200]}" for w, m in unknown[:8])
    )


def _ref(name: str) -> Any:
    from weft.actors.client import ObjectRef

    return ObjectRef(name)


def run_fuzz(role: str, ctx: Context, report: FaultReport, n: int, test: str, seed: int | None) -> None:
    seed = fuzz_seed(seed)
    endpoint = {"storage": ctx.cluster.storages[0].endpoint, "compute": ctx.cluster.computes[0].endpoint,
                "coordinator": ctx.cluster.endpoint}[role]
    where = (f"[role {role}, seed {seed}, {n} envelopes; reproduce: WEFT_FUZZ_SEED={seed} WEFT_FUZZ_N={n} "
             f"pytest -m 'faults or not faults' tests/faults/test_fuzz.py -k '{test} and {role}']")
    stream = Envelopes(role, seed, ctx, n)
    barrage = Barrage(endpoint, where)
    logs = log_sizes(ctx.cluster)
    t0 = time.monotonic()
    try:
        barrage.run(stream.generate(), n)
    finally:
        barrage.close()
    seconds = time.monotonic() - t0
    print(f"{role}: successful answers by op: {dict(sorted(barrage.ok_ops.items()))}")
    report.add(FuzzRun(role=role, seed=seed, envelopes=n, replies=barrage.replies, errors=dict(barrage.codes),
                       internal=len(barrage.internal), seconds=seconds))
    check_after(role, ctx, barrage, where, seed, logs)


ROLES = ["storage", "compute", "coordinator"]


@pytest.mark.parametrize("role", ROLES)
def test_fuzz_fast(fuzz_cluster: Context, fault_report: FaultReport, role: str) -> None:
    run_fuzz(role, fuzz_cluster, fault_report, fuzz_n(FAST_N), "test_fuzz_fast", seed=FAST_SEED)


@pytest.mark.faults
@pytest.mark.parametrize("role", ROLES)
def test_fuzz_full(fuzz_cluster: Context, fault_report: FaultReport, role: str) -> None:
    run_fuzz(role, fuzz_cluster, fault_report, fuzz_n(FULL_N), "test_fuzz_full", seed=None)



# -- the bugs the fuzzer found, one deterministic test each ------------------------------------


@pytest.fixture
def lone_storage(tmp_path: Path) -> Iterator[str]:
    """A storage daemon of its own (these tests may break it for good)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2]) + os.pathsep + env.get("PYTHONPATH", "")
    p = Proc("storage", ["storage", "--data-dir", str(tmp_path / "storage"), "--node-id", "lone", "--no-beacon"],
             tmp_path / "storage.log", env)
    try:
        yield p.wait_ready(20)
    finally:
        p.stop(5)


def test_storage_null_token_does_not_break_durability(lone_storage: str) -> None:
    with contextlib.suppress(RemoteError):  # refusing it is fine
        node_call(lone_storage, "put", {"name": "wfz-a/x", "data": b"x", "token": None})
    assert node_call(lone_storage, "put", {"name": "wfz-b/x", "data": b"y", "token": 0})["state"] == "finished"


def test_storage_token_past_int64_does_not_break_durability(lone_storage: str) -> None:
    with contextlib.suppress(RemoteError):
        node_call(lone_storage, "create", {"name": "wfz-a/x", "token": 2**63})
    assert node_call(lone_storage, "put", {"name": "wfz-b/x", "data": b"y", "token": 0})["state"] == "finished"


@pytest.mark.parametrize("field", ["offset", "length"])
def test_storage_read_with_null_offset_or_length_is_a_bad_request(lone_storage: str, field: str) -> None:
    node_call(lone_storage, "put", {"name": "wfz-r/x", "data": b"hello", "token": 0})
    with pytest.raises(RemoteError) as e:
        node_call(lone_storage, "read", {"name": "wfz-r/x", field: None})
    assert e.value.code == "bad-request"


@pytest.mark.parametrize("limit", ["x", None, 1.5])
def test_coordinator_status_with_a_bad_limit_is_a_bad_request(fuzz_cluster: Context, limit: Any) -> None:
    with pytest.raises(RemoteError) as e:
        node_call(fuzz_cluster.cluster.endpoint, "status", {"limit": limit})
    assert e.value.code == "bad-request"


def test_job_timeout_nan_is_refused() -> None:
    with pytest.raises(SpecError):
        JobSpec(command=["true"], outputs=["stdout"], timeout=float("nan"))


def test_stray_storage_event_does_not_unfinish_an_object(fuzz_cluster: Context) -> None:
    c = fuzz_cluster.cluster
    with Client(c.endpoint, timeout=10, retry_for=30) as client:
        job = client.submit(["sh", "-c", f"echo stray-{time.time_ns()}"])
        data = job.result(timeout=30)
        name = job.key
        copies = storage_copies(live_storage_endpoints(c), prefix=job.job)
        other = next(ep for ep, objs in copies.items() if name not in objs)
        # Any peer can do this on a node that does not hold the object.
        node_call(other, "create", {"name": name, "token": 0})
        node_call(other, "delegate", {"name": name, "target": "wfz-stray/x", "token": 0})
        # A positive signal that the coordinator applied those events: a loud
        # one after them (an object put by someone else), and the node's
        # event position in `weft nodes` reaching past it.
        node_call(other, "put", {"name": f"wfz-marker-{time.time_ns()}/x", "token": 0, "data": b"m"})
        after = node_call(other, "list", {"prefix": "wfz-none-"})["next"]
        wait_until(lambda: next(n["events"] for n in client.nodes() if n["endpoint"] == other) >= after,
                   20, "the coordinator applies the node's events")
        assert client.get(name) == data


def test_compute_start_with_an_unusable_endpoint_is_a_bad_request(fuzz_cluster: Context) -> None:
    job = f"wfz-endpoint-{time.time_ns()}"
    body = {"job": job, "spec": {"cmd": ["true"], "o": ["stdout"]}, "outputs": {"stdout": "garbage"}, "token": 0}
    with pytest.raises(RemoteError) as e:
        node_call(fuzz_cluster.cluster.computes[0].endpoint, "start", body)
    assert e.value.code == "bad-request"


def test_hello_with_an_unusable_endpoint_leaves_no_phantom_node(fuzz_cluster: Context) -> None:
    c = fuzz_cluster.cluster
    node = f"wfz-phantom-{time.time_ns()}"
    with contextlib.suppress(RemoteError):
        node_call(c.endpoint, "hello", {"role": "compute", "node": node, "endpoint": "garbage"})
    time.sleep(2.6)  # past the 2 s heartbeat timeout
    with Client(c.endpoint, timeout=10, retry_for=30) as client:
        assert node not in {n["node"] for n in client.nodes()}


def test_nul_byte_in_a_command_is_the_jobs_own_failure(fuzz_cluster: Context) -> None:
    compute = fuzz_cluster.cluster.computes[0].endpoint
    job = f"wfz-nul-{time.time_ns()}"
    try:
        node_call(compute, "start", {"job": job, "spec": {"cmd": ["echo", "a\x00b"], "o": []}, "token": 0})
    except RemoteError as e:  # refused up front: as good
        assert e.code in ("bad-spec", "bad-request")
        return
    done = wait_until(lambda: (t := node_call(compute, "result", {"job": job}))["state"] == "done" and t, 20,
                      "task done")
    assert done["outcome"] == "failed-hard", done
