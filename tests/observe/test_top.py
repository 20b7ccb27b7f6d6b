"""`weft top` on a real cluster: under a pseudo-terminal (its screen captured) and through a pipe."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from weft.actors.client import Client
from weft.localcluster.cluster import LocalCluster

from helpers import wait_for

ANSI = re.compile(r"\x1b(\[[0-9;?]*[ -/]*[@-~]|\][^\x07]*\x07|[()][0-9A-B]|[=>])")


@pytest.fixture(scope="module")
def running(observed: LocalCluster, client: Client) -> Iterator[str]:
    f = client.submit(["sh", "-c", "sleep 60"], name="top-sleeper")
    wait_for(lambda: client.status([f.job])[0]["state"] == "running", 30, "the sleeper running")
    yield f.job
    client.cancel([f.job])


def top(observed: LocalCluster, *args: str, **kw) -> list[str]:
    return [sys.executable, "-m", "weft", "top", "--coordinator", observed.endpoint, *args]


def test_through_a_pipe_it_prints_plain_aligned_lines(observed: LocalCluster, running: str) -> None:
    p = subprocess.run(top(observed, "--count", "2", "--interval", "0.2"), capture_output=True, text=True,
                       timeout=60, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr
    assert "\x1b" not in p.stdout  # no colours or cursor moves in a pipe
    screens = p.stdout.split("\nweft top ")
    assert len(screens) == 2 and p.stdout.startswith("weft top ")
    lines = p.stdout.splitlines()
    head = next(line for line in lines if line.startswith("NODE "))
    for node in (*observed.computes, *observed.storages):
        row = next(line for line in lines if line.startswith(node.node_id + " "))
        assert row.index(f"  {node.role} ") + 2 == head.index("ROLE")  # aligned under its heading
    assert "RUNNING (1)" in lines
    sleeper = next(line for line in lines if line.startswith(running))
    assert "top-sleeper" in sleeper and observed.computes[0].node_id in sleeper


def test_on_a_terminal_it_draws_a_live_screen(observed: LocalCluster, running: str) -> None:
    master, slave = pty.openpty()
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "160", "LINES": "40"}
    proc = subprocess.Popen(top(observed, "--count", "3", "--interval", "0.3"), stdin=slave, stdout=slave,
                            stderr=slave, env=env, close_fds=True)
    os.close(slave)
    screen = b""
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # the terminal closed: it exited
                    break
                if not chunk:
                    break
                screen += chunk
            elif proc.poll() is not None:
                break
        assert proc.wait(10) == 0, screen[-500:]
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    raw = screen.decode(errors="replace")
    assert "\x1b[?1049h" in raw  # the alternate screen, as htop uses
    text = ANSI.sub("", raw)
    assert text.count("weft top") >= 3  # redrawn at each refresh
    assert "running (1)" in text and running in text and "top-sleeper" in text
    for node in (*observed.computes, *observed.storages):
        assert node.node_id in text


def test_bad_options_are_refused_in_one_line(observed: LocalCluster) -> None:
    p = subprocess.run(top(observed, "--interval", "0"), capture_output=True, text=True, timeout=60,
                       stdin=subprocess.DEVNULL)
    assert p.returncode != 0 and p.stderr.strip() == "weft: error: invalid --interval 0.0: expected seconds > 0"


def _complete(words: str, endpoint: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "_WEFT_COMPLETE": "complete_bash", "COMP_WORDS": words,
           "COMP_CWORD": str(len(words.split(" ")) - 1), "WEFT_COORDINATOR": endpoint}
    return subprocess.run([sys.executable, "-m", "weft"], capture_output=True, text=True, timeout=60, env=env,
                          stdin=subprocess.DEVNULL)


def test_the_shell_completes_job_ids_and_node_ids_from_the_coordinator(observed: LocalCluster, running: str) -> None:
    p = _complete("weft logs top-", observed.endpoint)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["top-sleeper"]
    assert running in _complete("weft status ", observed.endpoint).stdout.split()
    compute = observed.computes[0].node_id
    assert _complete(f"weft node drain {compute[:-1]}", observed.endpoint).stdout.split() == [compute]
    assert set(_complete("weft node undrain ", observed.endpoint).stdout.split()) == {
        p.node_id for p in (*observed.computes, *observed.storages)}
    # Nobody answering: nothing offered, and no hang.
    from helpers import free_endpoint

    p = _complete("weft logs top-", free_endpoint())
    assert p.returncode == 0 and p.stdout.strip() == "", p
