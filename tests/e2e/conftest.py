"""End-to-end fixtures: real storage and compute daemons as subprocesses.

Every daemon is `python -m cli <role> --no-beacon --data-dir <tmp> --node-id <name>`
started through `cli.cluster.Proc`, which waits for its "listening on" line.
Daemons are always stopped in teardown (SIGTERM, then SIGKILL).

Shared daemons (session scope, two storage nodes and one compute node) serve
the tests that do not kill or restart anything; each test uses its own job ids.
Tests that kill, restart or measure a daemon start their own (`daemons`).
`fresh_compute` is a compute node of one module's tests (started once per
module, not per test: each start is an interpreter and its workers).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest
import trio

from weft.bus.peers import connect
from weft.bus.rpc import Peer
from weft.localcluster.cluster import Proc

from helpers import await_for

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable
_WEFT = Path(sys.executable).parent / "weft"
# The installed console script if it sits next to this interpreter, else the module.
WEFT = [str(_WEFT)] if _WEFT.exists() else [PY, "-m", "weft"]

READY_TIMEOUT = 20.0


def daemon_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WEFT_")}
    # The daemons' logs (under <tmp>/logs) say what happened when a test fails.
    env["WEFT_LOG_LEVEL"] = os.environ.get("WEFT_E2E_LOG_LEVEL", "info")
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


class Daemons:
    """Starts daemons under `root` (data dirs `root/<name>`, logs `root/logs`) and stops them all."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.logs = self.root / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.procs: list[Proc] = []
        self.env = daemon_env()

    def spawn(self, role: str, name: str, *args: str, data_dir: Path | None = None) -> Proc:
        """Start a daemon without waiting for it (see `ready`)."""
        data_dir = Path(data_dir or self.root / name)
        argv = [role, "--no-beacon", "--data-dir", str(data_dir), "--node-id", name, *args]
        p = Proc(role, argv, self.logs / f"{name}.log", self.env)
        p.data_dir = data_dir  # type: ignore[attr-defined]
        p.name = name  # type: ignore[attr-defined]
        self.procs.append(p)
        return p

    def ready(self, p: Proc, timeout: float = READY_TIMEOUT) -> Proc:
        p.wait_ready(timeout)
        return p

    def start(self, role: str, name: str, *args: str, data_dir: Path | None = None) -> Proc:
        return self.ready(self.spawn(role, name, *args, data_dir=data_dir))

    def storage(self, name: str, *, data_dir: Path | None = None) -> Proc:
        return self.start("storage", name, data_dir=data_dir)

    def compute(self, name: str, *, slots: int = 2, data_dir: Path | None = None) -> Proc:
        return self.start("compute", name, "--slots", str(slots), data_dir=data_dir)

    def data_dirs(self) -> list[Path]:
        return [p.data_dir.resolve() for p in self.procs]  # type: ignore[attr-defined]

    def stop_all(self) -> None:
        for p in self.procs:
            p.signal(signal.SIGTERM)
        for p in self.procs:
            p.stop(grace=10.0)


@dataclass
class Shared:
    storage_a: Proc
    storage_b: Proc
    compute: Proc
    daemons: Daemons
    # A compute node (one slot) that nothing uses until the test of an idle
    # node (test_callable_jobs_still_run_after_the_node_was_idle): started
    # with the others, it is idle while they run, so that test waits out
    # only what is left of its idle time instead of all of it.
    idle: Proc

    @property
    def a(self) -> str:
        return self.storage_a.endpoint  # type: ignore[return-value]

    @property
    def b(self) -> str:
        return self.storage_b.endpoint  # type: ignore[return-value]

    @property
    def c(self) -> str:
        return self.compute.endpoint  # type: ignore[return-value]


@pytest.fixture(scope="session")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shared]:
    """Two storage nodes and a compute node, up for the whole session."""
    root = tmp_path_factory.mktemp("shared")
    d = Daemons(root)
    # Apart from `d`: the path traversal test takes `d`'s data dirs as the
    # only places the shared nodes may write.
    idle_daemons = Daemons(root / "idle")
    try:
        # Spawn them all first: they start in parallel.
        a = d.spawn("storage", "storage-a")
        b = d.spawn("storage", "storage-b")
        c = d.spawn("compute", "compute-1", "--slots", "4")
        idle = idle_daemons.spawn("compute", "compute-idle", "--slots", "1")
        for p in (a, b, c):
            d.ready(p)
        idle_daemons.ready(idle)
        yield Shared(a, b, c, d, idle)
    finally:
        idle_daemons.stop_all()
        d.stop_all()


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[Daemons]:
    """Daemons of this test only, under its tmp dir; stopped when it ends."""
    d = Daemons(tmp_path / "daemons")
    try:
        yield d
    finally:
        d.stop_all()


@pytest.fixture(scope="module")
def fresh_compute(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    """A compute node (two slots) of this module's tests alone, apart from the
    shared one; each test leaves none of its tasks running on it."""
    d = Daemons(tmp_path_factory.mktemp("fresh"))
    try:
        yield d.compute("compute-fresh", slots=2)
    finally:
        d.stop_all()


# -- helpers for the tests -------------------------------------------------------------


def job_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@asynccontextmanager
async def peer(endpoint: str, timeout: float = 10.0) -> AsyncIterator[Peer]:
    """`async with peer(ep) as p:` -- a client handle on one daemon.

    `connect` runs the peer in a nursery, which wraps whatever the body raises
    in an ExceptionGroup; a lone exception is unwrapped so failures read plainly.
    """
    try:
        async with connect(endpoint, f"e2e-{uuid.uuid4().hex[:8]}", timeout=timeout) as p:
            yield p
    except BaseExceptionGroup as eg:
        if len(eg.exceptions) == 1:
            raise eg.exceptions[0] from None
        raise


async def start_task(
    compute: Peer,
    job: str,
    spec: dict[str, Any],
    *,
    inputs: dict[str, Any] | None = None,
    outputs: dict[str, str] | None = None,
    token: int = 0,
) -> dict[str, Any]:
    body = {"job": job, "spec": spec, "inputs": inputs or {}, "outputs": outputs or {}, "token": token}
    return await compute.call("start", body)


async def wait_done(compute: Peer, job: str, timeout: float = 30.0) -> dict[str, Any]:
    """Poll `result` until the task is done; its summary."""
    with trio.fail_after(timeout):
        while True:
            r = await compute.call("result", {"job": job})
            if r["state"] == "done":
                return r
            await trio.sleep(0.05)


async def wait_done_by_events(compute: Peer, job: str, since: int, timeout: float = 30.0) -> list[str]:
    """Long-poll the compute node's event queue from `since` until `job` is done.

    Returns the states the task's events reported, in order.
    """
    states: list[str] = []
    with trio.fail_after(timeout):
        while True:
            r = await compute.call("poll", {"since": since, "timeout": 1.0})
            assert not r["resync"], r
            for _seq, kind, data in r["events"]:
                if kind == "task" and data["job"] == job:
                    states.append(data["state"])
                    if data["state"] == "done":
                        return states
            since = r["next"]


async def read_object(storage: Peer, name: str) -> bytes:
    """The whole object, chunk by chunk; only a finished object reads."""
    from weft.actors.storage.client import read_all

    return await read_all(storage, name)


async def stat_state(storage: Peer, name: str) -> str:
    """An object's state as its storage node reports it."""
    return (await storage.call("stat", {"name": name}))["state"]


async def wait_for(predicate: Any, timeout: float, interval: float = 0.05, what: str = "condition") -> Any:
    """Await `predicate()` (sync or async) until truthy; fail after `timeout` (see tests/helpers.py)."""
    return await await_for(predicate, timeout, what, interval)


def process_gone(pid: int) -> bool:
    """True when `pid` no longer runs (a zombie nobody reaped counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def rss(pid: int) -> int:
    return psutil.Process(pid).memory_info().rss


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under `root` with (size, mtime_ns), directories included."""
    out: dict[str, tuple[int, int]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            try:
                st = os.lstat(p)
            except FileNotFoundError:
                continue
            out[p] = (st.st_size, st.st_mtime_ns)
    return out


def run_cli(*args: str, timeout: float = 20.0) -> subprocess.CompletedProcess[str]:
    """Run `weft ARGS...`; never longer than `timeout`."""
    t0 = time.monotonic()
    r = subprocess.run(
        [*WEFT, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=daemon_env(),
        stdin=subprocess.DEVNULL,
    )
    r.elapsed = time.monotonic() - t0  # type: ignore[attr-defined]
    return r
