"""Flows on a real local cluster, as a developer uses them for a build:
FLOW:JOB names, --fail-fast, and a compiler error a person can read
(gcc's message with the file name and caret under the job's message, a
dependent's cause naming the root failure once). One cluster for the module."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pytest
from cluster.conftest import Weft

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")


def ok(p) -> str:
    assert p.returncode == 0, f"exit {p.returncode}: {p.stdout!r} {p.stderr!r}"
    return p.stdout


def one_line_error(p, code: int) -> str:
    assert p.returncode == code, f"exit {p.returncode}: {p.stdout!r} {p.stderr!r}"
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("weft: error: "), p.stderr
    return lines[0]


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


def test_flow_job_names_resolve_to_the_newest_submission(weft: Weft, tmp_path: Path) -> None:
    flow = write(tmp_path / "greet.toml", """
        [vars]
        who = "world"
        [[each]]
        for = "w"
        in = ["hello", "bye"]
        name = "say-${w}"
        [each.job]
        command = ["echo", "${w}", "${who}"]
    """)
    out = ok(weft("submit", "--file", str(flow), "--wait"))
    ids = {line.split("\t")[0]: line.split("\t")[1].split()[0] for line in out.strip().splitlines()}
    assert sorted(ids) == ["say-bye", "say-hello"]
    assert ok(weft("get", "greet:say-hello")) == "hello world\n"
    assert ok(weft("get", "greet:say-bye/stdout")) == "bye world\n"
    st = json.loads(ok(weft("status", "greet:say-hello", "--json")))
    assert st["job"] == ids["say-hello"] and st["flow"] == "greet:say-hello"

    # A changed flow: FLOW:JOB now means the new submission's job.
    flow.write_text(flow.read_text().replace('"world"', '"moon"'))
    listed = json.loads(ok(weft("submit", "--file", str(flow), "--json")))["jobs"]
    assert {r["name"] for r in listed} == {"say-hello", "say-bye"} and {r["flow"] for r in listed} == {"greet"}
    new_id = next(r["job"] for r in listed if r["name"] == "say-hello")
    assert new_id != ids["say-hello"]
    ok(weft("wait", "greet:say-hello"))
    assert ok(weft("get", "greet:say-hello")) == "hello moon\n"

    assert "flow 'greet' has no job 'say-hi' (its jobs: say-bye, say-hello)" in one_line_error(
        weft("get", "greet:say-hi"), 2)


FAILING = """
    [jobs.bad]
    command = ["sh", "-c", "sleep 0.3; echo broken >&2; exit 1"]
    inputs = { tag = "TAG" }
    [[each]]
    for = "n"
    in = [1, 2, 3, 4, 5]
    name = "slow-${n}"
    [each.job]
    command = ["sleep", "60"]
    inputs = { tag = "TAG", n = "${n}" }
    max_cancellation_time = 1
"""


def test_fail_fast_cancels_the_rest_of_the_flow_at_the_first_failure(weft: Weft, tmp_path: Path) -> None:
    flow = write(tmp_path / "ff.toml", FAILING.replace("TAG", "fail-fast"))
    p = weft("submit", "--file", str(flow), "--fail-fast", "--wait", "--json")
    assert p.returncode == 1, p.stderr
    jobs = {r["name"]: r["status"] for r in json.loads(p.stdout)["jobs"]}
    assert jobs["bad"]["state"] == "failed"
    for n in range(1, 6):  # running or still queued when `bad` failed: all stopped
        st = jobs[f"slow-{n}"]
        assert st["state"] == "cancelled", st
        assert f"--fail-fast: job {jobs['bad']['job']} failed" in st["cause"], st


def test_the_client_submits_a_flow_failing_fast(client, tmp_path: Path) -> None:  # noqa: ANN001
    flow = write(tmp_path / "py.toml", FAILING.replace("TAG", "client"))
    futures = client.submit_flow(flow, fail_fast=True)
    states = {n: s["state"] for n, s in zip(futures, client.wait(list(futures.values()), timeout=50), strict=True)}
    assert states == {"bad": "failed", **{f"slow-{n}": "cancelled" for n in range(1, 6)}}
    assert client.status(["py:bad"])[0]["job"] == futures["bad"].job


def test_without_fail_fast_the_rest_runs_on(client, tmp_path: Path) -> None:  # noqa: ANN001
    futures = client.submit_flow(write(tmp_path / "kk.toml", FAILING.replace("TAG", "keep-going")))
    slow = [futures[f"slow-{n}"] for n in range(1, 6)]
    try:
        assert client.wait([futures["bad"]], timeout=50)[0]["state"] == "failed"
        states = [st["state"] for st in client.status(slow)]
        assert "cancelled" not in states and "running" in states, states
    finally:
        client.cancel(slow)


def test_a_compiler_error_is_shown_with_its_file_and_the_dependents_name_the_root_once(
        weft: Weft, tmp_path: Path) -> None:
    flow = write(tmp_path / "cb.toml", r"""
        [vars]
        cflags = ["-Wall", "-O1"]

        [jobs.src-good]
        command = ["printf", "int good(void) { int unused; return 0; }\n"]
        [jobs.src-bad]
        command = ["printf", "int bad(void) {\n  return 0\n}\n"]

        [[each]]
        for = "f"
        in = ["good", "bad"]
        name = "cc-${f}"
        [each.job]
        command = ["sh", "-c", "cp $WEFT_INPUTS/code ${f}.c && gcc ${cflags} -c ${f}.c -o $WEFT_OUTPUTS/obj"]
        inputs = { code = "@src-${f}" }
        outputs = ["obj"]

        [jobs.lib]
        command = ["sh", "-c", "cat $WEFT_INPUTS/a $WEFT_INPUTS/b > $WEFT_OUTPUTS/lib"]
        inputs = { a = "@cc-good/obj", b = "@cc-bad/obj" }
        outputs = ["lib"]
        [jobs.app]
        command = ["wc", "-c", "inputs/lib"]
        inputs = { lib = "@lib/lib" }
    """)
    p = weft("submit", "--file", str(flow), "--wait")
    assert p.returncode == 1, p.stderr
    # The --wait listing shows the compiler's lines under the failed compile.
    assert "bad.c:3:1: error:" in p.stdout or "bad.c:2:" in p.stdout, p.stdout

    st = json.loads(ok(weft("status", "cb:cc-bad", "--json")))
    assert st["state"] == "failed" and st["cause"].startswith("command 'sh' failed with exit code 1: bad.c:2:")
    assert "error: expected" in st["cause"] and "\n" not in st["cause"]  # the error line, not the caret under it
    tail = st["stderr_tail"].splitlines()
    assert any("bad.c:" in line and "error:" in line for line in tail), tail
    assert any(line.strip().endswith("^") or "| ^" in line for line in tail), tail  # gcc's caret line
    shown = ok(weft("status", "cb:cc-bad")).splitlines()
    assert "flow      cb:cc-bad" in shown, shown
    at = next(i for i, line in enumerate(shown) if line.startswith("cause"))
    assert shown[at + 1].startswith("stderr") and "| " in shown[at + 1], shown
    assert any("error:" in line for line in shown[at + 1:at + 1 + len(tail)]), shown

    bad_id = st["job"]
    lib = json.loads(ok(weft("status", "cb:lib", "--json")))
    app = json.loads(ok(weft("status", "cb:app", "--json")))
    assert f"job {bad_id} (cb:cc-bad) failed: command 'sh' failed" in lib["cause"], lib["cause"]
    # The dependent of a dependent: the job it waited on, then the root, once.
    assert app["cause"].startswith(f"input {lib['job']}/lib: job {lib['job']} failed, because job {bad_id} "
                                   "(cb:cc-bad) failed: "), app["cause"]
    assert app["cause"].count("input ") == 1 and "stderr_tail" not in lib

    # The compile that succeeded kept its warning: weft logs shows it.
    good = json.loads(ok(weft("status", "cb:cc-good", "--json")))
    assert good["state"] == "succeeded"
    log = ok(weft("logs", "cb:cc-good"))
    assert "good.c:1:" in log and "unused" in log and "warning" in log, log


def test_flow_errors_reach_the_user_as_one_line(weft: Weft, tmp_path: Path) -> None:
    flow = write(tmp_path / "typo.toml", """
        [vars]
        cflags = "-O2"
        [jobs.cc]
        command = ["cc", "${cflag}", "-c", "x.c"]
    """)
    line = one_line_error(weft("submit", "--file", str(flow)), 2)
    assert f"{flow}: jobs.cc.command[1]: undefined variable ${{cflag}} (variables: cflags)" in line
    line = one_line_error(weft("submit", "--fail-fast", "--", "true"), 2)
    assert "--fail-fast applies to the jobs of a workflow file" in line


def test_a_flow_job_makes_a_directory_its_dependent_reads_as_a_tree(weft: Weft, tmp_path: Path) -> None:
    flow = write(tmp_path / "site.toml", """
        [jobs.build]
        # No mkdir of site/ itself: a directory output is there to write into.
        command = ["sh", "-c", "mkdir $WEFT_OUTPUTS/site/bin && echo hi > $WEFT_OUTPUTS/site/index.html && printf '#!/bin/sh\\\\necho run\\\\n' > $WEFT_OUTPUTS/site/bin/run && chmod 755 $WEFT_OUTPUTS/site/bin/run"]
        output_dirs = ["site"]
        [jobs.check]
        command = ["sh", "-c", "cd $WEFT_INPUTS/site && find . -type f | sort && ./bin/run"]
        inputs = { site = "@build/site" }
    """)
    ok(weft("submit", "--file", str(flow), "--wait"))
    assert ok(weft("get", "site:check")) == "./bin/run\n./index.html\nrun\n"
    out = tmp_path / "got"
    ok(weft("get", "site:build/site", "-o", str(out)))
    assert (out / "index.html").read_text() == "hi\n"
    assert (out / "bin" / "run").stat().st_mode & 0o111  # modes kept
