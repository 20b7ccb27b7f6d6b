"""Every job-control command and option of issue 16 has `--help` text (the
real `weft` entry point, in process: no cluster needed)."""

from __future__ import annotations

import re

import pytest

from weft.cli.main import main

# command -> options its help must explain
COMMANDS: dict[str, tuple[str, ...]] = {
    "cancel": ("--no-dependents", "--json"),
    "group ls": ("--json",),
    "group status": ("--json",),
    "group cancel": ("--no-dependents",),
    "jobs": ("--state", "--group", "--since", "--json"),
    "status": ("--attempts", "--json"),
    "logs": ("--follow", "--tail"),
    "wait": ("--timeout",),
    "pause": ("--group",),
    "resume": ("--group",),
    "delete": ("--force", "--json"),
    "gc": ("--keep", "--json"),
    "stats": ("--json",),
    "submit": ("--retries", "--retry-delay", "--pending-timeout", "--on-exit", "--group", "--after",
               "--after-group", "--max-cancellation-time", "--name", "--replace", "--time-limit"),
    "coordinator": ("--max-soft-retries", "--keep"),
}


@pytest.mark.parametrize("name", list(COMMANDS))
def test_job_control_commands_explain_themselves(name: str, capsys, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("TERM", "dumb")
    assert main([*name.split(), "--help"]) == 0
    out = capsys.readouterr().out
    usage = re.search(rf"Usage: weft {name} .*\n\s*\n\s*(\S.*)", out)
    assert usage and len(usage.group(1).strip()) > 15, f"weft {name} --help has no description:\n{out}"
    for opt in COMMANDS[name]:
        m = re.search(rf"^[\s│]*{re.escape(opt)}\b[^\n]*?\s{{2,}}(\S[^\n]*)$", out, re.M)
        assert m and len(m.group(1).strip("│ ")) > 10, f"weft {name} --help: no text for {opt}:\n{out}"
