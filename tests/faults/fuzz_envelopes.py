"""What the wire fuzzer (test_fuzz.py) sends: a seeded stream of hostile
envelopes for one role, and the live cluster's protected data it aims around.

Apart from test_fuzz.py, which sends the stream (Barrage), checks the cluster
after it and holds the tests: this module only makes messages, from a seed,
and touches no socket.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import msgpack

from weft.actors.model import JobSpec
from weft.localcluster.cluster import LocalCluster

from .conftest import live_storage_endpoints

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

