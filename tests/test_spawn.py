"""Starting command processes (actors/compute/spawn.py), with real processes:
what the child gets on the fast path (fork_exec called directly) is what
Popen gave it, and the Popen path (child settings only Popen applies, as
isolation's) still works."""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path

import pytest
import trio

from weft.actors.compute import spawn as spawn_mod
from weft.actors.compute.runner import RunnerError, run_command
from weft.actors.compute.spawn import Launch, spawn
from weft.actors.model import JobSpec

WAIT = 5.0  # every wait in this file is bounded by it


async def run(launch: Launch) -> tuple[int, bytes]:
    """Start it, read all its stdout, wait for it."""
    with trio.fail_after(WAIT):
        child = await spawn(launch)
        out = b""
        while chunk := await child.stdout.receive_some(65536):
            out += chunk
        rc = await child.wait()
        await child.stdout.aclose()
        child.close()
    return rc, out


@pytest.mark.skipif(not spawn_mod.FAST, reason="the fast path needs CPython 3.11-3.13 with pidfds")
def test_this_python_takes_the_fast_path() -> None:
    assert spawn_mod.FAST


async def test_the_child_has_a_session_devnull_stdin_and_none_of_our_descriptors(tmp_path: Path) -> None:
    leak = os.open(tmp_path / "held", os.O_WRONLY | os.O_CREAT)
    os.set_inheritable(leak, True)  # even an inheritable one must not reach it
    # Our own stdin is not the child's, whatever it is.
    r, w = os.pipe()
    saved = os.dup(0)
    os.dup2(r, 0)
    try:
        probe = ("import os; print(os.getsid(0) == os.getpid(), os.getcwd(), os.readlink('/proc/self/fd/0'), "
                 f"os.path.exists('/proc/self/fd/{leak}'))")
        rc, out = await run(Launch([sys.executable, "-c", probe], str(tmp_path), {}, 2))
    finally:
        os.dup2(saved, 0)
        for fd in (saved, r, w, leak):
            os.close(fd)
    assert rc == 0
    assert out.decode().split() == ["True", str(tmp_path), "/dev/null", "False"]


async def test_the_jobs_variables_replace_the_nodes_of_the_same_name(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEFT_TEST_SPAWN", "node")
    monkeypatch.setenv("WEFT_TEST_KEPT", "kept")
    # The environment exactly as execve gave it: each name once.
    rc, out = await run(Launch(["cat", "/proc/self/environ"], str(tmp_path),
                               {"WEFT_TEST_SPAWN": "job", "WEFT_TEST_BYTES": b"\xff"}, 2))
    assert rc == 0
    mine = sorted(v for v in out.split(b"\0") if v.startswith(b"WEFT_TEST_"))
    assert mine == [b"WEFT_TEST_BYTES=\xff", b"WEFT_TEST_KEPT=kept", b"WEFT_TEST_SPAWN=job"]


async def test_child_settings_only_popen_applies_take_the_popen_path(tmp_path: Path) -> None:
    # (How isolation adds a wrapper and its settings: Launch.prefix, Launch.popen_kw.)
    rc, out = await run(Launch(["-c", "umask; echo $0"], str(tmp_path), {}, 2, prefix=["sh"],
                               popen_kw={"umask": 0o077}))
    assert rc == 0 and out.split() == [b"0077", b"sh"]


async def test_a_file_that_is_no_executable_format_is_a_clear_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk"
    junk.write_bytes(b"\x00\x01\x02 not a program")
    junk.chmod(0o755)
    with pytest.raises(RunnerError) as e:
        await run_command(JobSpec(command=[str(junk)]), tmp_path / "wd")
    assert e.value.code == "command-not-found" and "not an executable format" in e.value.message


async def test_an_environment_too_large_to_exec_fails_with_e2big(tmp_path: Path) -> None:
    # (run_command turns it into `inputs-too-large`; specs are checked
    # against a lower limit, so only a huge node environment gets here.)
    env = {f"WEFT_TEST_BIG{i}": "x" * (100 << 10) for i in range(30)}
    with pytest.raises(OSError) as e:
        await run(Launch(["true"], str(tmp_path), env, 2))
    assert e.value.errno == errno.E2BIG


async def test_a_command_found_on_path_runs_and_its_exit_code_comes_back(tmp_path: Path) -> None:
    rc, _ = await run(Launch(["sh", "-c", "exit 7"], str(tmp_path), {}, 2))
    assert rc == 7
    with pytest.raises(FileNotFoundError):
        await run(Launch(["no-such-command-weft"], str(tmp_path), {}, 2))
