"""A compute node's first workers, and a spare probe, are forked from the node
(actors/compute/prefork.py), and a job cannot tell: its own randomness, none of the
node's files or sockets, a worker lost is replaced as before, modules found or not."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator

import psutil
import pytest

from weft.actors.client import Client
from weft.actors.compute import segments
from weft.localcluster.cluster import LocalCluster
from weft.localcluster.zygote_client import zygote_usable

pytestmark = pytest.mark.skipif(not zygote_usable(), reason="forking workers needs Linux")

# Each call holds its worker a moment, so two calls at once run in both workers.
FNS = r'''
import json, os, random, re, time

def who(tag):
    time.sleep(0.4)
    fds = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            fds.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            pass
    # What kinds of file the worker holds (its pipes, memory files, socket):
    # no inode numbers, not the directory listed just now.
    channels = sorted(re.sub(r"\[\d+\]| \(deleted\)", "", f) for f in fds if not f.startswith("/proc/"))
    return json.dumps({"pid": os.getpid(), "random": random.random(), "fds": fds, "tag": tag,
                       "channels": channels})
'''


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    code = tmp_path_factory.mktemp("prefork-fns")
    (code / "prefork_fns.py").write_text(FNS)
    c = LocalCluster(tmp_path_factory.mktemp("prefork"), compute=1, storage=1, slots=2, import_path=[str(code)])
    c.start(60)
    try:
        yield c
    finally:
        c.stop(grace=20)
    assert all(p.popen.returncode == 0 for p in c.procs), [(p.role, p.popen.returncode) for p in c.procs]


def test_the_first_probe_is_answered_by_a_spare_forked_with_the_workers(cluster: LocalCluster) -> None:
    node = psutil.Process(cluster.computes[0].pid)
    # Two workers and the spare probe, all forks of the node.
    assert [ch.cmdline() == node.cmdline() for ch in node.children()] == [True] * 3
    with Client(cluster.endpoint) as c:
        # One probe for both modules, answered by the spare: one found, one not.
        with pytest.raises(Exception) as refused:
            c.submit_specs([c.spec("prefork_fns:who", tag="probe"), c.spec("no_such_module_zz:f")])
        assert "module 'no_such_module_zz' cannot be imported" in str(refused.value)
        assert "prefork_fns" not in str(refused.value)
    deadline = time.monotonic() + 10
    while len(node.children()) != 2 and time.monotonic() < deadline:
        time.sleep(0.05)  # the spare exits after its answer
    assert len(node.children()) == 2


def _two_calls(c: Client, tag: str) -> list[dict]:
    futures = [c.submit("prefork_fns:who", tag=f"{tag}-{i}") for i in range(2)]
    return [json.loads(f.result(timeout=30)) for f in futures]


def test_first_workers_are_forks_of_the_node_and_share_nothing_a_job_sees(cluster: LocalCluster) -> None:
    node = psutil.Process(cluster.computes[0].pid)
    workers = node.children()
    assert len(workers) == 2
    # Forked, not exec'd: a worker started as `python -m weft.actors.compute.worker` says so.
    assert all(w.cmdline() == node.cmdline() for w in workers), [w.cmdline() for w in workers]

    with Client(cluster.endpoint) as c:
        got = _two_calls(c, "first")
    assert {g["pid"] for g in got} == {w.pid for w in workers}
    # Forks of one node must not share one random sequence (random reseeds after a fork).
    assert got[0]["random"] != got[1]["random"]
    node_fds = {os.readlink(f"/proc/{node.pid}/fd/{fd}") for fd in os.listdir(f"/proc/{node.pid}/fd")}
    for g in got:
        # Only what an exec'd worker has: its pipes, memory files, /dev/null and
        # its own end of the socket values' memory files travel on (segments.py);
        # not the node's data directory (its lock, its task log) nor its sockets.
        assert not [f for f in g["fds"] if f.startswith(str(cluster.data_dir))], g["fds"]
        sockets = [f for f in g["fds"] if f.startswith("socket:")]
        assert len(sockets) <= 1 and not node_fds & set(sockets), (sockets, g["fds"])


def test_a_forked_worker_that_dies_is_replaced_by_an_exec_d_one_with_the_same_channels(
    cluster: LocalCluster,
) -> None:
    node = psutil.Process(cluster.computes[0].pid)
    victim = node.children()[0]
    os.kill(victim.pid, signal.SIGKILL)
    channels: dict[int, list[str]] = {}  # pid -> what its call saw
    with Client(cluster.endpoint) as c:
        # The pool finds the loss on its next call to that worker (the call
        # fails, as with any worker lost) and spawns a new one.
        for round_ in range(6):
            futures = [c.submit("prefork_fns:who", tag=f"after-{round_}-{i}") for i in range(2)]
            for f in futures:
                try:
                    got = json.loads(f.result(timeout=30))
                except Exception:
                    continue
                channels[got["pid"]] = got["channels"]
            live = [w for w in node.children() if w.status() != psutil.STATUS_ZOMBIE]
            if len(live) == 2 and victim.pid not in [w.pid for w in live] and all(w.pid in channels for w in live):
                break
    assert victim.pid not in channels
    assert victim.pid not in [w.pid for w in live] and len(live) == 2
    execd = [w.pid for w in live if "weft.actors.compute.worker" in w.cmdline()]  # the replacement
    forked = [w.pid for w in live if w.cmdline() == node.cmdline()]  # the survivor
    assert len(execd) == 1 and len(forked) == 1, [w.cmdline() for w in live]
    # Both ways of starting a worker give it the same channels (workerfds.py):
    # a forked one once lacked the socket values' memory files travel on.
    assert channels[forked[0]] == channels[execd[0]]
    if segments.AVAILABLE:
        assert {"pipe:", "/memfd:weft-worker-in", "/memfd:weft-worker-out", "socket:"} <= set(channels[execd[0]])


def test_workers_run_callables_as_before(cluster: LocalCluster) -> None:
    with Client(cluster.endpoint) as c:
        assert c.submit("weft.bench.workloads:consume", data="abc").result(timeout=30).startswith(b"3 ")
        assert c.submit(["sh", "-c", "echo fine"]).result(timeout=30) == b"fine\n"
