"""The build example (examples/cbuild.toml) end to end, as a developer uses it.

A copy of examples/cbuild is built on a real local cluster with `weft submit
--file ... --wait`: cold; again with nothing changed (nothing runs); after an
edit of one .c (its compile, the archive, the link and the run rerun); after an
edit of one header (only the compiles that include it, then the rest of the
chain); with a syntax error and --fail-fast (the compiler's message and file
in the cause, the build stopped). The program's output is checked against the
same program built by `make` from the same sources.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import REPO, Weft

pytestmark = pytest.mark.skipif(shutil.which("cc") is None or shutil.which("make") is None,
                                reason="needs a C compiler and make")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cbuild")
    shutil.copytree(REPO / "examples" / "cbuild", root / "cbuild")
    shutil.copy(REPO / "examples" / "cbuild.toml", root / "cbuild.toml")
    return root


def build(weft: Weft, project: Path, *extra: str) -> tuple[subprocess.CompletedProcess[str], dict[str, dict]]:
    """`weft submit --file cbuild.toml --wait --json`: the run and its jobs by name."""
    env = {"XDG_CACHE_HOME": str(project / "cache")}  # where discovered dependencies are remembered
    p = weft("submit", "--file", str(project / "cbuild.toml"), "--wait", "--json", *extra, env=env)
    jobs = {j["name"]: j for j in json.loads(p.stdout)["jobs"]} if p.stdout.strip() else {}
    return p, jobs


def status(weft: Weft, name: str) -> dict:
    p = weft("status", f"cbuild:{name}", "--json")
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def ran(jobs: dict[str, dict]) -> set[str]:
    return {name for name, j in jobs.items() if not j["cached"]}


def failed(jobs: dict[str, dict]) -> dict[str, dict]:
    """The jobs a `--wait` run ended not succeeded, with what their status said: for a failing assertion's message."""
    out = {}
    for name, j in jobs.items():
        st = j.get("status") or {}
        final = st.get("final") or st
        if final.get("state") != "succeeded":
            out[name] = {k: final.get(k) for k in ("state", "code", "cause", "attempts", "stderr_tail")}
    return out


def make_output(project: Path) -> str:
    """What the same program prints when make builds it from the same sources."""
    src = project / "make-copy"
    shutil.rmtree(src, ignore_errors=True)
    shutil.copytree(project / "cbuild", src)
    subprocess.run(["make", "-s", "-C", str(src)], check=True, capture_output=True, timeout=120)
    return subprocess.run([str(src / "cbuild")], check=True, capture_output=True, text=True).stdout


ALL = {"cc-vec", "cc-stats", "cc-parse", "cc-fmt", "cc-main", "ar", "link", "run"}


def test_cold_then_no_change_then_edits(weft: Weft, project: Path, tmp_path: Path) -> None:
    p, jobs = build(weft, project)
    assert p.returncode == 0, (p.stderr, failed(jobs))
    assert set(jobs) == ALL and ran(jobs) == ALL
    assert weft("get", "cbuild:run").stdout == make_output(project)
    out = tmp_path / "cbuild"
    assert weft("get", "cbuild:link/cbuild", "-o", str(out)).returncode == 0
    assert os.access(out, os.X_OK)  # the linked program keeps its executable bit
    assert subprocess.run([str(out)], capture_output=True, text=True).stdout == make_output(project)

    p, jobs = build(weft, project)  # nothing changed: nothing runs
    assert p.returncode == 0 and ran(jobs) == set(), (p.stderr, ran(jobs), failed(jobs))

    with open(project / "cbuild" / "src" / "stats.c", "a") as f:
        f.write("double stats_range(const vec *v) { return stats_max(v) - stats_min(v); }\n")
    p, jobs = build(weft, project)
    assert p.returncode == 0 and ran(jobs) == {"cc-stats", "ar", "link", "run"}, (p.stderr, ran(jobs), failed(jobs))

    # fmt.h is included by fmt.c and main.c only (their depfiles say so).
    with open(project / "cbuild" / "include" / "fmt.h", "a") as f:
        f.write("/* a comment that changes the header */\n")
    p, jobs = build(weft, project)
    assert p.returncode == 0 and ran(jobs) == {"cc-fmt", "cc-main", "ar", "link", "run"}, (p.stderr, ran(jobs), failed(jobs))
    assert weft("get", "cbuild:run").stdout == make_output(project)
    # A job an earlier one stood for keeps its flow name.
    assert status(weft, "cc-vec")["state"] == "succeeded"


def test_a_syntax_error_names_the_file_and_fail_fast_stops_the_build(weft: Weft, project: Path) -> None:
    parse = project / "cbuild" / "src" / "parse.c"
    good = parse.read_text()
    parse.write_text(good.replace("size_t n = 0;", "size_t n = 0"))
    # Another edit, so that more than one compile is to run with the broken one.
    with open(project / "cbuild" / "src" / "vec.c", "a") as f:
        f.write("/* touched */\n")
    try:
        p, jobs = build(weft, project, "--fail-fast")
        assert p.returncode == 1
        failed = status(weft, "cc-parse")
        assert failed["state"] == "failed" and failed["code"] == "exit-status"
        assert "parse.c:" in failed["cause"] and "error" in failed["cause"]
        assert any("parse.c:" in line and "error:" in line for line in failed["stderr_tail"].splitlines())
        # What depends on it names the root once; nothing downstream ran.
        link = status(weft, "link")
        assert link["state"] == "failed" and link["cause"].count("cbuild:cc-parse") == 1
        states = {name: status(weft, name)["state"] for name in ALL}
        assert states["run"] != "succeeded" and states["ar"] != "succeeded"
    finally:
        parse.write_text(good)
