"""The `weft task` and `weft object` commands against real daemons, run as a user would."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import Shared, run_cli
from helpers import wait_for

TIMEOUT = 20.0


def ok(*args: str) -> str:
    r = run_cli(*args)
    assert r.returncode == 0, f"weft {' '.join(args)} -> {r.returncode}: {r.stderr}"
    return r.stdout


def assert_one_line_error(r, *, rc: int | None = None) -> str:
    """A failed command: non-zero exit, one line on stderr, no traceback; the line."""
    assert r.returncode != 0 if rc is None else r.returncode == rc, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert lines[0].startswith("weft: "), lines[0]
    return lines[0]


def wait_result(compute: str, job: str, timeout: float = TIMEOUT) -> list[str]:
    """`weft task result` until the task is done; the fields of its line."""

    def done() -> list[str] | None:
        fields = ok("task", "result", "--compute", compute, job).split()
        assert fields[0] == job
        return fields if fields[1] == "done" else None

    return wait_for(done, timeout, f"task {job} done", interval=0.1)


def test_hello_through_the_cli(shared: Shared) -> None:
    out = ok("task", "create", "--compute", shared.c, "hello", "--message", "hi")
    job, node, endpoint = out.strip().split("\t")
    assert (node, endpoint) == ("compute-1", shared.c)

    assert wait_result(shared.c, job) == [job, "done", "success", "exit", "0"]
    d = json.loads(ok("task", "result", "--compute", shared.c, job, "--json"))
    assert (d["job"], d["state"], d["outcome"], d["exit"]) == (job, "done", "success", 0)

    events = [line.split() for line in ok("task", "poll", "--compute", shared.c).splitlines()]
    states = [e[2] for e in events if len(e) > 2 and e[1] == job]
    assert states == ["pending", "running", "storing", "done"], states
    assert [e[3] for e in events if e[1] == job and e[2] == "done"] == ["success"]

    listed = ok("task", "list", "--compute", shared.c).splitlines()
    assert [line.split()[:3] for line in listed if line.split()[0] == job] == [[job, "done", "success"]]

    assert ok("task", "delete", "--compute", shared.c, job).strip() == f"deleted {job}"
    assert job not in ok("task", "list", "--compute", shared.c)
    r = run_cli("task", "result", "--compute", shared.c, job)
    assert_one_line_error(r)
    assert r.stdout == ""


def test_hello_stores_its_stdout_on_storage(shared: Shared, tmp_path: Path) -> None:
    out = ok("task", "create", "--compute", shared.c, "hello", "--message", "hi", "--storage", shared.b)
    job = out.split("\t")[0]
    assert wait_result(shared.c, job)[1:3] == ["done", "success"]

    name = f"{job}/stdout"
    rows = [line.split() for line in ok("object", "ls", "--storage", shared.b).splitlines()]
    assert [r for r in rows if r[-1] == name] == [["finished", str(len("hello from weft: hi\n")), name]]
    assert ok("object", "get", "--storage", shared.b, name) == "hello from weft: hi\n"

    r = run_cli("object", "get", "--storage", shared.b, name, "--output", str(tmp_path / "hello.txt"))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "hello.txt").read_text() == "hello from weft: hi\n"


def test_cli_unreachable_storage_fails_within_seconds() -> None:
    r = run_cli("object", "get", "--storage", "tcp://127.0.0.1:1", "x/y", timeout=15)
    assert r.elapsed < 10  # type: ignore[attr-defined]
    assert_one_line_error(r)
    assert r.stdout == ""


@pytest.mark.parametrize(
    "args,needle",
    [
        (["task", "result", "--compute", "notanendpoint", "J"], "notanendpoint"),
        (["object", "get", "--storage", "not-an-endpoint", "x/y"], "not-an-endpoint"),
        (["task", "create", "--compute", "tcp://127.0.0.1:1", "nosuchjob"], "nosuchjob"),
        (["object", "get", "--storage", "tcp://127.0.0.1:1", "../evil"], "../evil"),
        (["object", "get", "--storage", "tcp://127.0.0.1:1", "a/../../evil"], "a/../../evil"),
        (["task", "poll", "--compute", "tcp://127.0.0.1:1", "--since", "-1"], "--since"),
        (["coordinator", "--data-dir", "/tmp/weft-never-made", "--follow-ahead", "-1"], "--follow-ahead -1"),
        (["storage", "--data-dir", "/tmp/weft-never-made", "--page-cache-mb", "-5"], "--page-cache-mb -5"),
    ],
    ids=["bad-compute-endpoint", "bad-storage-endpoint", "unknown-builtin", "traversal-1",
         "traversal-2", "negative-since", "negative-follow-ahead", "negative-page-cache"],
)
def test_cli_bad_arguments_exit_2_with_one_line(args: list[str], needle: str) -> None:
    r = run_cli(*args)
    line = assert_one_line_error(r, rc=2)
    assert needle in line, line
    assert r.stdout == ""


@pytest.mark.parametrize(
    "what", ["missing-task", "missing-object", "unreachable-storage"]
)
def test_cli_errors_from_a_node_name_the_problem(shared: Shared, what: str) -> None:
    args, needles = {
        "missing-task": (["task", "result", "--compute", shared.c, "no-such-job"], ["no-such-job"]),
        "missing-object": (["object", "get", "--storage", shared.b, "no-such/obj"], ["no-such/obj"]),
        "unreachable-storage": (["object", "get", "--storage", "tcp://127.0.0.1:1", "x/y"],
                                ["tcp://127.0.0.1:1"]),
    }[what]
    r = run_cli(*args)
    line = assert_one_line_error(r, rc=2)
    assert "internal error" not in line and "ExceptionGroup" not in line, line
    for n in needles:
        assert n in line, line
