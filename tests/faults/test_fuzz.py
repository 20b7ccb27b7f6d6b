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
The envelopes are made in fuzz_envelopes.py (from a seed, no socket); this
module sends them, checks the cluster after, and holds the tests.

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
from .fuzz_envelopes import MARK, Context, Envelopes

FAST_N = 1000
FAST_SEED = 20261125
FULL_N = 10_000
RATE = 2000.0  # envelopes per second at most
PING_EVERY = 200
PING_BASE = 10**15  # ids of health pings; fuzz ids stay below


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
