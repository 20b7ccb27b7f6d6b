"""What `weft up` hands its daemons: the root --log-level, and the directory it was started from."""

from __future__ import annotations

import json
from pathlib import Path

from weft.actors.client import Client

from .conftest import Daemons, free_port


def _start_up(daemons: Daemons, *root_args: str, cwd: Path, data: Path) -> dict:
    up = daemons.start(*root_args, "up", "--json", "--compute", "1", "--storage", "1", "--slots", "1",
                       "--data-dir", str(data), "--listen", f"tcp://127.0.0.1:{free_port()}", cwd=cwd)
    return json.loads(daemons.ready_line(up))


def _info_lines(log: Path) -> list[str]:
    return [line for line in log.read_text().splitlines() if " info " in line]


def test_root_log_level_reaches_the_daemons_weft_up_starts(tmp_path: Path, daemons: Daemons) -> None:
    quiet = _start_up(daemons, cwd=tmp_path, data=tmp_path / "quiet")
    loud = _start_up(daemons, "--log-level", "info", cwd=tmp_path, data=tmp_path / "loud")
    for info in (quiet, loud):
        with Client(info["coordinator"], timeout=10.0) as c:
            assert c.submit(["true"]).result(timeout=30) == b""
    daemons.stop()
    for role in ("coordinator", "storage-0", "compute-0"):
        assert not _info_lines(tmp_path / "quiet" / "logs" / f"{role}.log"), role
        assert any("listening on" in line for line in _info_lines(tmp_path / "loud" / "logs" / f"{role}.log")), role


def test_callables_are_imported_from_the_directory_weft_up_was_started_in(tmp_path: Path,
                                                                          daemons: Daemons) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "weft_test_callables.py").write_text(
        "def shout(text='quiet'):\n"
        "    return (text.upper() if isinstance(text, str) else bytes(text).upper().decode()).encode()\n")
    info = _start_up(daemons, cwd=project, data=tmp_path / "data")
    with Client(info["coordinator"], timeout=10.0) as c:
        future = c.submit("weft_test_callables:shout", text="from the project")
        assert future.result(timeout=30) == b"FROM THE PROJECT"
