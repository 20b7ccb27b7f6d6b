"""Job isolation in-process (actors/compute/isolation.py): the settings, the
sandbox around one command, and callables each in a fork of a clean worker.
The attacks on a running cluster are in tests/cluster/test_isolation.py."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
import trio
from isolation_support import job_user, need_sandbox

from weft.actors.compute.isolation import IsolationError, choose
from weft.actors.compute.pool import CallableNotFound, WorkerLost, WorkerPool
from weft.actors.compute.procs import group_alive
from weft.actors.compute.runner import RunnerError, run_command
from weft.actors.compute.taskdirs import make_skeleton
from weft.actors.model import JobSpec
from weft.runtime.settings import SettingError, resolve

FNS = '''
import json, os

def poison():
    json.dumps = lambda *a, **k: "poisoned"
    os.environ["WEFT_ISO_POISON"] = "1"
    return "done"

def probe():
    return json.dumps([1]) + "|" + os.environ.get("WEFT_ISO_POISON", "-")

def crash():
    os._exit(7)
'''


@pytest.fixture
def fns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "weft_iso_unit.py").write_text(FNS)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))


async def test_a_fresh_pool_runs_each_call_in_a_clean_process(fns: None) -> None:
    async with WorkerPool(1, fresh=True) as pool:
        assert await pool.run("weft_iso_unit:poison", {}) == "done"
        assert await pool.run("weft_iso_unit:probe", {}) == "[1]|-"
        with pytest.raises(CallableNotFound):
            await pool.run("weft_iso_unit:nothing", {})
        with pytest.raises(WorkerLost, match="exited with status 7"):
            await pool.run("weft_iso_unit:crash", {})
        with pytest.raises(trio.TooSlowError):
            await pool.run("weft.actors.builtins:sleep", {"seconds": "30"}, timeout=0.5)
        assert await pool.run("weft_iso_unit:probe", {}) == "[1]|-"  # the replacement works too


async def test_a_warm_pool_keeps_what_a_call_changed(fns: None) -> None:
    # The attack the fresh pool stops (so the test above can fail).
    async with WorkerPool(1) as pool:
        assert await pool.run("weft_iso_unit:poison", {}) == "done"
        assert await pool.run("weft_iso_unit:probe", {}) == "poisoned|1"


def test_isolation_settings_are_checked_in_one_line() -> None:
    with pytest.raises(SettingError, match="invalid --isolation 'box': expected auto, none or namespace"):
        resolve("compute", {"isolation": "box"})
    with pytest.raises(SettingError, match="--share"):
        resolve("compute", {"share": "relative/dir"})
    with pytest.raises(IsolationError, match="no such user"):
        choose("none", run_as="no-such-user-here")
    with pytest.raises(IsolationError, match="--share '/no/such/dir'"):
        choose("namespace", share="/no/such/dir")
    assert choose("auto", secure=False).mode == "none"
    assert not choose("auto", secure=False).fresh_callables


def test_auto_isolates_a_secure_cluster_or_says_why_not() -> None:
    sandbox = choose("auto", secure=True)
    assert sandbox.fresh_callables  # callables need no tool
    assert sandbox.mode == "namespace" or "UNSANDBOXED" in sandbox.note


def _spec(script: str, outputs: list[str] | None = None) -> JobSpec:
    return JobSpec.from_wire({"cmd": ["sh", "-c", script], "o": outputs or ["stdout"]})


@pytest.mark.parametrize("tool", ["bubblewrap", "unshare"])
async def test_a_sandboxed_command_sees_only_its_task_directory(tmp_path: Path, tool: str) -> None:
    need_sandbox(tool)
    user = job_user()
    # Readable by anyone outside the sandbox (pytest's own directories are not), so only the namespace hides it.
    outside = Path(tempfile.mkdtemp(prefix="weft-iso-", dir="/var/tmp" if os.path.isdir("/var/tmp") else None))
    os.chmod(outside, 0o755)
    secret = outside / "secret"
    secret.write_text("node's")
    os.chmod(secret, 0o644)
    share = tmp_path / "shared"
    share.mkdir()
    (share / "file").write_text("shared on purpose")
    os.chmod(share, 0o777)
    sandbox = choose("namespace", run_as=user.pw_name, share=str(share), tools=(tool,))
    work = tmp_path / "task"
    make_skeleton(work)
    script = (f"id -u; cat {share}/file; echo made > $WEFT_OUTPUTS/made; echo 50 half >> $WEFT_PROGRESS; "
              f"ln -s {secret} $WEFT_OUTPUTS/leak; ln -s made $WEFT_OUTPUTS/alias; cat {secret}")
    try:
        result = await run_command(_spec(script, ["stdout", "made", "leak", "alias"]), work, sandbox=sandbox)
    finally:
        shutil.rmtree(outside)
    assert result.exit_code == 1  # the last cat: no such file in there
    out = (work / "outputs" / "stdout").read_text().splitlines()
    assert out == [str(user.pw_uid), "shared on purpose"]
    assert (work / "outputs" / "made").read_text() == "made\n"
    # A symlink out of the task directory is not taken as an output (the node would read it as root).
    assert result.missing_outputs == ["leak"] and "alias" in result.outputs
    assert (work / "results" / "progress").read_text() == "50 half\n"


@pytest.mark.parametrize("tool", ["bubblewrap", "unshare"])
async def test_a_sandboxed_command_is_stopped_whole_and_its_end_reported(tmp_path: Path, tool: str) -> None:
    need_sandbox(tool)
    sandbox = choose("namespace", tools=(tool,))
    groups: list[int] = []
    make_skeleton(tmp_path / "a")
    result = await run_command(JobSpec(command=["sh", "-c", "sleep 30 & sleep 30"], timeout=0.5), tmp_path / "a",
                               sandbox=sandbox, grace=0.5, on_spawn=lambda pgid: groups.append(pgid))
    assert result.timed_out and not group_alive(groups[0])
    make_skeleton(tmp_path / "b")
    result = await run_command(JobSpec(command=["sh", "-c", "exit 3"]), tmp_path / "b", sandbox=sandbox)
    assert result.exit_code == 3


async def test_a_missing_command_is_still_command_not_found(tmp_path: Path) -> None:
    need_sandbox()
    work = tmp_path / "task"
    make_skeleton(work)
    with pytest.raises(RunnerError) as e:
        await run_command(JobSpec.from_wire({"cmd": ["no-such-command-here"]}), work, sandbox=choose("namespace"))
    assert e.value.code == "command-not-found"
