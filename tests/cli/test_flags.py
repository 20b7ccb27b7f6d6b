"""Flags: submit --time-limit (--timeout a deprecated alias), -o only on get,
readable help, shell completion."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import pytest

from .conftest import Weft, error_line, job_id, ok

WIDE = {"COLUMNS": "200", "TERM": "dumb"}
COMMANDS = ["submit", "status", "wait", "get", "cancel", "nodes", "stats", "up", "bench",
            "coordinator", "compute", "storage", "task create", "task result", "object get"]


def timed_out(weft: Weft, job: str) -> dict:
    assert weft("wait", job, "--timeout", "30").returncode == 1
    st = json.loads(ok(weft("status", job, "--json")))
    assert st["outcome"] == "timed-out", st
    return st


# -- 6. --time-limit, the deprecated --timeout, -o ------------------------------------------------

def test_time_limit_stops_the_job(weft: Weft) -> None:
    p = weft("submit", "--time-limit", "0.5", "--input", f"tag={uuid.uuid4().hex}", "--", "sleep", "30")
    assert p.stderr == ""
    timed_out(weft, job_id(p))


def test_submit_timeout_still_works_with_a_one_line_deprecation_note(weft: Weft) -> None:
    p = weft("submit", "--timeout", "0.5", "--input", f"tag={uuid.uuid4().hex}", "--", "sleep", "30")
    assert p.stderr == "weft: note: submit --timeout is deprecated: use --time-limit (how long the job may run)\n"
    timed_out(weft, job_id(p))


def test_time_limit_and_timeout_together_are_refused(weft: Weft) -> None:
    p = weft("submit", "--timeout", "1", "--time-limit", "2", "--", "true")
    assert error_line(p, 2) == "give --time-limit only (--timeout is its deprecated name)"


def test_submit_help_shows_time_limit_not_timeout() -> None:
    out = ok(Weft(None)("submit", "--help", env=WIDE))
    assert re.search(r"--time-limit\s+DURATION\s+How long the job may run", out)
    assert "--timeout" not in out
    assert re.search(r"--output\s+NAME\s", out)
    assert not re.search(r"-o\b", out)


def test_submit_has_no_short_o(weft: Weft) -> None:
    assert error_line(weft("submit", "-o", "x", "--", "true"), 2) == "No such option: -o"


def test_get_o_writes_a_file_or_into_a_directory(weft: Weft, tmp_path: Path) -> None:
    job = job_id(weft("submit", "--call", "weft.actors.builtins:echo", "--input", "x=get-o-dir"))
    assert weft("wait", job, "--timeout", "30").returncode == 0
    p = weft("get", job, "-o", str(tmp_path / "file.bin"))
    assert p.returncode == 0 and p.stderr == f"wrote 9 bytes to {tmp_path / 'file.bin'}\n"
    assert (tmp_path / "file.bin").read_bytes() == b"get-o-dir"
    p = weft("get", job, "-o", str(tmp_path))
    assert p.returncode == 0 and p.stderr == f"wrote 9 bytes to {tmp_path / 'result'}\n"
    assert (tmp_path / "result").read_bytes() == b"get-o-dir"


# -- 7. help and completion -----------------------------------------------------------------------------

@pytest.mark.parametrize("command", COMMANDS)
def test_help_shows_what_a_user_types(command: str) -> None:
    out = ok(Weft(None)(*command.split(), "--help", env=WIDE))
    assert not re.search(r"<(bool|int|float|str|path|list\[\w+\])>", out), out
    assert "{" not in out.split("\n", 3)[1], out  # no {jobs}... in the usage line


@pytest.mark.parametrize(("command", "pattern"), [
    ("wait", r"Usage: weft wait \[OPTIONS\] JOB\.\.\."),
    ("wait", r"--timeout\s+DURATION"),
    ("submit", r"--input\s+-i\s+NAME=VALUE"),
    ("submit", r"--file\s+-f\s+FILE"),
    ("submit", r"--coordinator\s+-c\s+ENDPOINT"),
    ("get", r"Usage: weft get \[OPTIONS\] JOB\[/OUTPUT\]"),
    ("get", r"--output\s+-o\s+FILE\|DIR"),
    ("status", r"Usage: weft status \[OPTIONS\] \[JOB\]"),
    ("compute", r"--listen\s+ENDPOINT"),
])
def test_help_metavars(command: str, pattern: str) -> None:
    assert re.search(pattern, ok(Weft(None)(command, "--help", env=WIDE)))


def test_shell_completion_is_offered_and_completes_commands() -> None:
    weft = Weft(None)
    assert "--install-completion" in ok(weft("--help", env=WIDE))
    p = weft(env={"_WEFT_COMPLETE": "complete_bash", "COMP_WORDS": "weft su", "COMP_CWORD": "1"})
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["submit"]
