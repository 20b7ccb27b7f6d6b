"""Local clusters fork their daemons from one warm interpreter (weft.localcluster.zygote)."""

from __future__ import annotations

import signal
from pathlib import Path

import psutil
import pytest

from weft.actors.client import Client
from weft.localcluster.cluster import LocalCluster, zygote_usable

pytestmark = pytest.mark.skipif(not zygote_usable(), reason="the fork server needs Linux")


def test_forked_daemons_run_jobs_and_their_deaths_are_reported(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path, compute=1, storage=1, slots=1, fork_server=True, log_level="info")
    cluster.start(60)
    try:
        assert cluster.zygote is not None
        zygote_pid = cluster.zygote.proc.pid
        assert all(psutil.Process(p.pid).ppid() == zygote_pid for p in cluster.procs)
        # Logging is set up in the zygote's image: each daemon still logs at the
        # cluster's level, in its own log, in the usual format.
        for p in cluster.procs:
            lines = p.log_path.read_text().splitlines()
            assert any(f" info    weft.bus: {p.role} {p.node_id} listening on " in ln for ln in lines), lines
        assert "listening on" not in (tmp_path / "logs" / "zygote.log").read_text()
        # Forks of one image must still be distinct nodes with distinct randomness.
        assert len({p.node_id for p in cluster.procs}) == 3
        with Client(cluster.endpoint) as c:
            assert c.submit(["sh", "-c", "echo forked"]).result(timeout=30) == b"forked\n"
            assert c.submit("weft.bench.workloads:consume", data="abc").result(timeout=30).startswith(b"3 ")

        victim = cluster.computes[0]
        victim.signal(signal.SIGKILL)
        assert victim.popen.wait(10) == -signal.SIGKILL
        assert not victim.alive()
        # A replacement comes from the same zygote and rejoins.
        cluster.add_compute(index=0)
        cluster.wait_nodes(1, 1, timeout=30)
        with Client(cluster.endpoint) as c:
            assert c.submit(["sh", "-c", "echo again"]).result(timeout=30) == b"again\n"
    finally:
        cluster.stop(grace=20)
    assert all(p.popen.returncode == 0 for p in cluster.procs if p is not victim)
    assert not psutil.pid_exists(zygote_pid) or psutil.Process(zygote_pid).status() == psutil.STATUS_ZOMBIE


def test_without_the_fork_server_each_daemon_is_its_own_interpreter(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path, compute=1, storage=1, slots=1, fork_server=False)
    cluster.start(60)
    try:
        assert cluster.zygote is None
        import os

        assert all(psutil.Process(p.pid).ppid() == os.getpid() for p in cluster.procs)
        with Client(cluster.endpoint) as c:
            assert c.submit(["sh", "-c", "echo plain"]).result(timeout=30) == b"plain\n"
    finally:
        cluster.stop(grace=20)
    assert all(p.popen.returncode == 0 for p in cluster.procs), [(p.role, p.popen.returncode, p.log_path.read_text()[-600:]) for p in cluster.procs]


def test_the_zygote_imports_trio_without_running_ldconfig() -> None:
    import subprocess
    import sys

    # ctypes.util's find_library is what runs `ldconfig -p`: not loaded means not run.
    code = ("import sys\nfrom weft.localcluster import lean\nlean.trim_trio_import()\n"
            "from trio._core import _thread_cache\n"
            "print('ctypes.util' in sys.modules, _thread_cache.set_os_thread_name is not None)\n"
            "import ctypes.util\nprint(ctypes.util.find_library('c') is not None)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    # Trio still names its threads, and ctypes.util is the real one afterwards.
    assert r.stdout.split() == ["False", "True", "True"]
