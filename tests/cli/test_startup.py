"""What a `weft` command imports before it does anything (every command is a
new process: the suite starts hundreds): help and --version need neither
trio nor zmq, and no command needs pydantic for plain values; the plain
coercion gives what typer's gives, and typer's errors for the rest."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import typer

from weft.cli import main as cli_main

HEAVY = ("trio", "zmq", "pydantic", "weft.localcluster.cluster")
PROBE = """
import json, sys
from weft.cli.main import main
code = main(sys.argv[1:])
print(json.dumps([code, [m for m in {heavy!r} if m in sys.modules]]), file=sys.stderr)
"""


def imported(*args: str) -> tuple[int, list[str]]:
    """Exit code of `weft ARGS` in a fresh interpreter, and which of HEAVY it imported."""
    p = subprocess.run([sys.executable, "-c", PROBE.format(heavy=HEAVY), *args], capture_output=True, text=True,
                       timeout=60, env={"WEFT_COORDINATOR": "tcp://127.0.0.1:9", "PATH": "/usr/bin:/bin"},
                       stdin=subprocess.DEVNULL)
    code, heavy = json.loads(p.stderr.strip().splitlines()[-1])
    return code, heavy


@pytest.mark.parametrize("args", [["--version"], ["--help"], ["submit", "--help"], ["up", "--help"]])
def test_help_and_version_import_no_bus(args: list[str]) -> None:
    assert imported(*args) == (0, [])


def test_a_command_with_plain_options_does_not_import_pydantic() -> None:
    # Nobody listens there: the command fails after its options were read.
    code, heavy = imported("jobs", "--state", "running", "--limit", "5", "--json", "--coordinator", "tcp://127.0.0.1:9")
    assert code != 0 and "pydantic" not in heavy and "trio" in heavy


def command(*path: str) -> typer.main.TyperCommand:
    cli_main._register()
    cmd = typer.main.get_command(cli_main.app)
    cli_main.tidy_help(cmd)
    for name in path:
        cmd = cmd.commands[name]
    return cmd


def param(cmd: typer.main.TyperCommand, name: str):
    return next(p for p in cmd.params if p.name == name)


def test_plain_values_are_what_typer_makes_of_them() -> None:
    jobs = command("jobs")
    ctx = jobs.make_context("jobs", [])
    limit, states, coordinator = param(jobs, "limit"), param(jobs, "states"), param(jobs, "coordinator")
    assert type(limit._runtime_param).__name__ == "_Plain"
    assert limit.process_value(ctx, "12") == 12 and limit.process_value(ctx, "-3") == -3
    assert limit.process_value(ctx, 1000) == 1000  # the default
    assert states.process_value(ctx, ("running", "failed")) == ["running", "failed"]
    assert coordinator.process_value(ctx, None) is None
    assert coordinator.process_value(ctx, "tcp://h:1") == "tcp://h:1"
    # Not plainly an integer: typer's own coercion, with its message.
    for bad in ("abc", "1.5", " 7"):
        try:
            value = limit.process_value(ctx, bad)
        except Exception as e:  # typer's BadParameter
            assert "valid integer" in str(e), e
        else:
            assert value == int(bad.strip()), value  # what typer accepted, it turned into that integer
