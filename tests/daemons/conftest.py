"""Daemons as an operator starts them: `weft <role>` and `weft up` as real processes.

Every process a test starts is stopped when the test ends, whatever happened.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
CLI_TIMEOUT = 60.0


def weft_argv() -> list[str]:
    exe = shutil.which("weft")
    return [exe] if exe else [sys.executable, "-m", "weft"]


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without the WEFT_* settings a developer's shell may carry."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WEFT_")}
    env.update(extra)
    return env


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def weft(*args: str, cwd: Path = REPO, env: dict[str, str] | None = None,
         timeout: float = CLI_TIMEOUT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*weft_argv(), *args], capture_output=True, text=True, cwd=cwd,
                          env=env or clean_env(), timeout=timeout, stdin=subprocess.DEVNULL)


def assert_one_line_error(p: subprocess.CompletedProcess[str], *parts: str) -> str:
    """Exit 2 and one `weft: error:` line on stderr holding every one of `parts`."""
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert len(lines) == 1 and lines[0].startswith("weft: error: "), p.stderr
    for bad in ("internal error", "Traceback", "ExceptionGroup"):
        assert bad not in p.stderr, p.stderr
    for part in parts:
        assert part in lines[0], (part, lines[0])
    return lines[0]


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g}s (last: {value!r})")
        time.sleep(interval)


class Daemons:
    """Starts `weft ...` processes that run until the test ends."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.procs: list[subprocess.Popen[str]] = []

    def start(self, *args: str, cwd: Path = REPO, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        err = open(self.tmp / f"daemon-{len(self.procs)}.err", "w+")
        p = subprocess.Popen([*weft_argv(), *args], stdout=subprocess.PIPE, stderr=err, text=True, cwd=cwd,
                             env=env or clean_env(), stdin=subprocess.DEVNULL, start_new_session=True)
        p.err = err  # type: ignore[attr-defined]
        self.procs.append(p)
        return p

    def ready_line(self, p: subprocess.Popen[str]) -> str:
        """The first stdout line (`weft <role> <id> listening on <endpoint>`, or up's JSON)."""
        line = p.stdout.readline()
        if not line:
            p.wait(10)
            p.err.seek(0)  # type: ignore[attr-defined]
            raise AssertionError(f"exited with {p.returncode} before ready: {p.err.read()}")  # type: ignore[attr-defined]
        return line

    def stop(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in reversed(self.procs):
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(5)
            p.err.close()  # type: ignore[attr-defined]


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[Daemons]:
    d = Daemons(tmp_path)
    try:
        yield d
    finally:
        d.stop()
