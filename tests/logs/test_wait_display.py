"""`weft wait` on a terminal (a real pseudo-terminal): one bar per job with its
reported progress for a few jobs, one summary bar (counts by state, ETA) for
more; plain lines, no terminal codes, when its output is not a terminal."""

from __future__ import annotations

import os
import pty
import re
import select
import time
from pathlib import Path

from cluster.conftest import Weft, weft_argv

from .test_follow import WAIT_FLAG, submit


def run_on_terminal(weft: Weft, argv: list[str], until: str | None = None, then=None,
                    timeout: float = 60.0) -> tuple[int, str]:
    """Run `weft ARGV` on a pseudo-terminal; once `until` shows, call `then()`.
    Returns (exit status, everything it printed). Bounded by `timeout`."""
    env = {**weft.env, "COLUMNS": "160", "TERM": "xterm"}
    pid, fd = pty.fork()
    if pid == 0:  # the child: becomes `weft`
        try:
            os.execvpe(weft_argv()[0], [*weft_argv(), *argv], env)
        finally:
            os._exit(127)
    out = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:  # the terminal closed: weft ended
                    break
                if not chunk:
                    break
                out += chunk
            if until is not None and until in out.decode(errors="replace"):
                until = None
                then()
        else:
            raise AssertionError(f"weft {' '.join(argv)} did not end within {timeout}s: {out[-400:]!r}")
    finally:
        os.close(fd)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), out.decode(errors="replace")


def last_lines(out: str, n: int) -> list[str]:
    """The last `n` lines as a terminal leaves them (codes removed, a line redrawn after \\r kept)."""
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out).replace("\r\n", "\n")
    return [line.split("\r")[-1] for line in text.rstrip().split("\n")][-n:]


def test_a_few_jobs_get_a_bar_each_with_their_progress(weft: Weft, tmp_path: Path) -> None:
    flag = tmp_path / "bars-go"
    jobs = [submit(weft, "--name", f"bar-{i}", "--", "sh", "-c",
                   f'echo "{20 * (i + 1)} step {i}" >> "$WEFT_PROGRESS"; {WAIT_FLAG}', "sh", str(flag))
            for i in range(2)]
    code, out = run_on_terminal(weft, ["wait", *jobs], until="40% step 1", then=flag.touch)
    assert code == 0, out
    assert "running  20% step 0" in out and "running  40% step 1" in out
    assert last_lines(out, 2) == [f"{j}  succeeded" for j in jobs]


def test_many_jobs_get_one_summary_bar(weft: Weft) -> None:
    jobs = [submit(weft, "--name", f"many-{i}", "--", "true") for i in range(6)]
    code, out = run_on_terminal(weft, ["wait", *jobs])
    assert code == 0, out
    # The summary bar's counts by state and its ETA were drawn; the result is plain lines.
    assert "succeeded 6" in out and "eta" in out
    assert last_lines(out, 6) == [f"{j}  succeeded" for j in jobs]


def test_not_on_a_terminal_it_prints_plain_lines(weft: Weft) -> None:
    jobs = [submit(weft, "--name", f"plain-{i}", "--", "true") for i in range(6)]
    p = weft("wait", *jobs)
    assert p.returncode == 0
    assert p.stdout.splitlines() == [f"{j}  succeeded" for j in jobs]
    assert "\x1b" not in p.stdout + p.stderr
