"""What a compute node says its workers can import without a probe
(actors/compute/importable.py): every name it lists, a worker finds."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from weft.actors.compute import importable, probe
from weft.actors.compute.pool import worker_env


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A node's working directory holding a user's code, and what is not code."""
    (tmp_path / "userfns.py").write_text("def shout(v):\n    return v.upper()\n")
    (tmp_path / "userpkg").mkdir()
    (tmp_path / "userpkg" / "__init__.py").write_text("")
    (tmp_path / "namespace_dir").mkdir()
    for name in ("not-a-name.py", "_private.py", "class.py", "notes.txt"):
        (tmp_path / name).write_text("")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_users_modules_and_weft_s_own_are_named(project: Path) -> None:
    names = importable.known(worker_env())
    assert names == sorted(set(names))
    for name in ("userfns", "userpkg", "namespace_dir",  # the working directory
                 "weft.actors.builtins", "weft.bench.workloads", "weft.actors.compute.worker"):  # weft's own
        assert name in names, name
    for name in ("not-a-name", "_private", "class", "notes", "no_such_mod", "weft.no_such_mod", "__main__",
                 "conftest", "os"):  # what this process imported is probed, not named

        assert name not in names, name


def test_every_module_named_is_found_by_an_interpreter_started_like_a_worker(project: Path) -> None:
    """The soundness of the list: the probe's own look-up, in the probe's own
    interpreter (the workers' executable, environment and directory), finds
    every name, so a submit taken from the list is one the probe would take."""
    names = importable.known(worker_env())
    done = subprocess.run([sys.executable, "-c", probe._SCRIPT, *names], env=worker_env(), cwd=project,
                          capture_output=True, timeout=120, check=True)
    answer = done.stdout.decode()
    assert len(answer) == len(names)
    assert [n for n, digit in zip(names, answer, strict=True) if digit != "1"] == []


def test_a_directory_of_too_many_entries_is_not_listed(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importable, "_MOST", 3)
    names = importable.known({**os.environ, "PYTHONPATH": ""})
    assert "userfns" not in names  # its modules are probed as before
    assert "weft.bench.workloads" in names


async def test_the_node_answers_a_probe_of_a_named_module_itself(project: Path) -> None:
    prober = probe.Prober(worker_env(), python="/nonexistent/python")  # any look-up would fail
    assert "userfns" in prober.known()
    assert await prober.probe(["userfns", "weft.bench.workloads"]) == (["userfns", "weft.bench.workloads"], [])
