"""What an operator meets when a daemon cannot start: one line naming the cause, exit 2."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from .conftest import assert_one_line_error, weft


@pytest.fixture
def busy_endpoint() -> str:
    """A TCP port another program listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield f"tcp://127.0.0.1:{s.getsockname()[1]}"


@pytest.mark.parametrize("role", ["coordinator", "storage", "compute"])
def test_a_daemon_on_a_port_in_use_names_the_endpoint(role: str, busy_endpoint: str, tmp_path: Path) -> None:
    p = weft(role, "--listen", busy_endpoint, "--data-dir", str(tmp_path / role), "--no-beacon")
    assert_one_line_error(p, f"cannot listen on {busy_endpoint}", "in use")


def test_weft_up_on_a_port_in_use_says_so_at_once(busy_endpoint: str, tmp_path: Path) -> None:
    t0 = time.monotonic()
    p = weft("up", "--listen", busy_endpoint, "--data-dir", str(tmp_path / "data"), timeout=60)
    assert_one_line_error(p, f"cannot listen on {busy_endpoint}", "in use")
    assert "not ready within" not in p.stderr
    assert time.monotonic() - t0 < 25, "weft up waited for a daemon that had already failed"


def test_weft_up_reports_a_daemon_that_cannot_bind_with_its_reason_at_once(tmp_path: Path) -> None:
    # A socket path in a missing directory: only the coordinator itself
    # finds out. The operator reads its reason, not a timeout.
    endpoint = f"ipc://{tmp_path}/missing/coordinator.sock"
    t0 = time.monotonic()
    p = weft("up", "--listen", endpoint, "--data-dir", str(tmp_path / "data"), timeout=60)
    assert_one_line_error(p, "cluster did not start", f"cannot listen on {endpoint}")
    assert "not ready" not in p.stderr and "exited with code" not in p.stderr, p.stderr
    assert time.monotonic() - t0 < 25, "weft up waited for a daemon that had already failed"


def _bad_dirs(tmp_path: Path) -> list[tuple[Path, str]]:
    a_file = tmp_path / "a-file"
    a_file.write_text("not a directory\n")
    return [
        (a_file, "is not a directory"),
        (a_file / "below", "a parent of it is a file"),
        (Path("/proc/weft-cannot-be-here"), "cannot create data directory"),
        # A directory nobody may write to, root included (modes do not stop root).
        (Path("/proc/sys"), "is not writable"),
    ]


@pytest.mark.parametrize("command", ["coordinator", "storage", "compute", "up"])
def test_an_unusable_data_dir_is_one_line(command: str, tmp_path: Path) -> None:
    for d, why in _bad_dirs(tmp_path):
        args = ["--data-dir", str(d)] + ([] if command == "up" else ["--no-beacon", "--listen", "tcp://127.0.0.1:0"])
        p = weft(command, *args)
        assert_one_line_error(p, str(d), why)


def test_a_data_dir_that_is_not_writable_is_one_line(tmp_path: Path) -> None:
    d = tmp_path / "read-only"
    d.mkdir(mode=0o555)
    try:
        probe = d / "probe"
        try:
            probe.write_text("")
            probe.unlink()
            pytest.skip("this user writes where the mode forbids it (root)")
        except PermissionError:
            pass
        p = weft("storage", "--data-dir", str(d), "--no-beacon")
        assert_one_line_error(p, f"data directory {d} is not writable")
    finally:
        d.chmod(0o755)


@pytest.mark.parametrize("args, expected", [
    (["compute", "--slots", "0"], "invalid --slots 0: expected at least 1"),
    (["coordinator", "--replicas", "0"], "invalid --replicas 0: expected at least 1"),
    (["coordinator", "--heartbeat-timeout", "0.1"], "invalid --heartbeat-timeout 0.1"),
    (["storage", "--listen", "localhost"], "invalid --listen 'localhost'"),
    (["storage", "--advertise", "tcp://0.0.0.0:0"], "invalid --advertise 'tcp://0.0.0.0:0'"),
    (["compute", "--coordinator", "nowhere"], "invalid --coordinator 'nowhere'"),
    (["storage", "--beacon-port", "70000"], "invalid --beacon-port 70000"),
])
def test_an_invalid_setting_is_one_line_naming_the_flag(args: list[str], expected: str, tmp_path: Path) -> None:
    p = weft(*args, "--data-dir", str(tmp_path / "d"))
    assert_one_line_error(p, expected)
    assert not (tmp_path / "d").exists(), "a refused setting still touched the data directory"
