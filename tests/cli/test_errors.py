"""First contact: each mistake gets one line on stderr and the right exit code
(2 bad input, 1 a failed job, 3 a timeout), against a real local cluster."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from .conftest import Weft, error_line, job_id, ok


def status(weft: Weft, job: str) -> dict:
    return json.loads(ok(weft("status", job, "--json")))


# -- 1. get --wait --timeout on a running job: exit 3 -----------------------------------------------

def test_get_wait_timeout_on_a_running_job_exits_3(weft: Weft) -> None:
    job = job_id(weft("submit", "--input", f"tag={uuid.uuid4().hex}", "--", "sleep", "30"))
    try:
        p = weft("get", "--wait", "--timeout", "1", job)
        assert error_line(p, 3) == f"object {job}/stdout is not finished after 1s (job {job} is still running)"
        assert p.stdout == ""
    finally:
        weft("cancel", job)


# -- 2. inputs too large for an immediate value or for a message --------------------------------------

def test_an_immediate_input_over_the_limit_is_refused(weft: Weft, tmp_path: Path) -> None:
    flow = tmp_path / "big.toml"
    flow.write_text(f'[jobs.big]\ncall = "weft.actors.builtins:echo"\ninputs = {{ x = "{"a" * (2 << 20)}" }}\n')
    line = error_line(weft("submit", "--file", str(flow)), 2)
    assert line == (
        "input 'x' is 2 MiB: immediate inputs are limited to 1 MiB (the coordinator journals them); "
        "pass large data as an object instead: the output of a job (e.g. one running `cat FILE`), "
        "given as input NAME=@JOB/OUTPUT (in Python, a Future or ObjectRef)"
    )


def test_a_command_input_over_the_environment_limit_is_refused(weft: Weft, tmp_path: Path) -> None:
    flow = tmp_path / "env.toml"
    flow.write_text(f'[jobs.e]\ncommand = ["env"]\ninputs = {{ x = "{"a" * 200_000}" }}\n')
    line = error_line(weft("submit", "--file", str(flow)), 2)
    assert line.startswith(f"{flow}: jobs.e: input 'x' is 195.3 KiB: a command's immediate input arrives "
                           "as $WEFT_INPUT_X, at most 128 KiB with the name; pass large data as an object")


# -- 3. precise messages for specs that could never run -------------------------------------------------

@pytest.mark.parametrize(("args", "line"), [
    (("--priority", "123456789012345678901234567890", "--", "echo", "hi"),
     "priority 123456789012345678901234567890 is out of range: it must fit in 64 bits (-2**63 to 2**63-1)"),
    (("--", "a" * 5000),
     "command name is 5000 bytes long: a program path is at most 4095 bytes"),
    (("--", "/usr/" + "b" * 300),
     "command name has a 300-character path component: at most 255 each"),
    (("--input", "lower=1", "--input", "LOWER=2", "--", "env"),
     "inputs 'lower' and 'LOWER' both map to $WEFT_INPUT_LOWER: rename one"),
    (("--input", "a-b=1", "--input", "a_b=2", "--", "env"),
     "inputs 'a-b' and 'a_b' both map to $WEFT_INPUT_A_B: rename one"),
    (("--input", "x=1", "--input", "x=2", "--", "env"),
     "--input x is given twice: give each input once"),
    (("--input", "x=1", "--input", "x=@j1/stdout", "--", "env"),
     "--input x is given twice: give each input once"),
    (("--call", "weft.actors.builtins:echo", "--", "echo", "hi"),
     "give either --call weft.actors.builtins:echo or a command (echo ...), not both"),
    (("--input", "a b=1", "--", "env"),
     "invalid input name 'a b': use letters, digits, '.', '_', '-' (max 64)"),
    (("--output", "x", "--output", "x", "--", "env"),
     "output 'x' is named twice"),
])
def test_specs_that_cannot_run_are_refused_with_one_precise_line(weft: Weft, args: tuple[str, ...], line: str) -> None:
    assert error_line(weft("submit", *args), 2) == line


def test_a_200kb_argument_is_refused(weft: Weft, tmp_path: Path) -> None:
    # One argument this long cannot even reach `weft` on the command line: a workflow file carries it.
    flow = tmp_path / "argv.toml"
    flow.write_text(f'[jobs.long]\ncommand = ["echo", "{"a" * 200_000}"]\n')
    assert error_line(weft("submit", "--file", str(flow)), 2) == (
        f"{flow}: jobs.long: command argument 1 is 195.3 KiB: the OS allows at most 128 KiB per argument; "
        "put large data in an input object (read as a file from $WEFT_INPUTS)"
    )


# -- 4. weft with no arguments ------------------------------------------------------------------------

def test_weft_alone_prints_help_and_exits_0() -> None:
    p = Weft(None)()
    assert p.returncode == 0, p.stderr
    assert p.stderr == ""
    assert "Usage: weft [OPTIONS] COMMAND [ARGS]..." in p.stdout
    assert "submit" in p.stdout


# -- 5. get of a job that failed or was cancelled --------------------------------------------------------

def test_get_of_a_failed_job_says_why_and_exits_1(weft: Weft) -> None:
    job = job_id(weft("submit", "--", "sh", "-c", "echo get-failed; exit 4"))
    assert weft("wait", job, "--timeout", "30").returncode == 1
    cause = status(weft, job)["cause"]
    assert "exit code 4" in cause
    assert error_line(weft("get", job), 1) == f"job {job} failed: {cause}"
    assert error_line(weft("get", f"{job}/stdout"), 1) == f"object {job}/stdout will not be produced: job {job} failed: {cause}"
    assert error_line(weft("get", "--wait", job), 1) == f"job {job} failed: {cause}"


def test_get_of_a_cancelled_job_says_so_and_exits_1(weft: Weft) -> None:
    job = job_id(weft("submit", "--input", f"tag={uuid.uuid4().hex}", "--", "sleep", "30"))
    ok(weft("cancel", job))
    assert error_line(weft("get", job), 1) == f"job {job} was cancelled: cancelled by user"


def test_get_of_a_running_job_without_wait_says_to_wait(weft: Weft) -> None:
    job = job_id(weft("submit", "--input", f"tag={uuid.uuid4().hex}", "--", "sleep", "30"))
    try:
        line = error_line(weft("get", job), 2)
        assert line.startswith(f"object {job}/stdout is not finished yet (job {job} is ")
        assert line.endswith(f"): use --wait, or weft wait {job}")
    finally:
        weft("cancel", job)
