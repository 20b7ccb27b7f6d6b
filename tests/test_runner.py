"""Command jobs with real processes and real signals."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import pytest
import trio

from weft.actors.compute.follow import last_line
from weft.actors.compute.runner import RunnerError, run_command
from weft.actors.compute.spawn import Child
from weft.actors.model import JobSpec, SpecError

WAIT = 5.0  # every wait in this file is bounded by it


@pytest.fixture(autouse=True, params=["one-task", "nursery"])
def supervisor(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every rule here holds for both ways a command is supervised: in one
    task (supervise.py, where the child has a pidfd) and with a pump task
    beside the wait (runner._supervise, the rest): the second is forced by
    hiding the pidfd from run_command."""
    if request.param == "nursery":
        monkeypatch.setattr(Child, "pidfd", property(lambda self: -1))
    return request.param


def alive(pid: int) -> bool:
    """True if `pid` is a live process (a zombie nobody reaped yet counts as dead)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return False
    return data[data.rfind(b")") + 2 : data.rfind(b")") + 3] not in (b"Z", b"X")


def sh(script: str, **kw) -> JobSpec:
    return JobSpec(command=["sh", "-c", script], **kw)


async def wait_for_pids(path: Path, count: int) -> list[int]:
    with trio.fail_after(WAIT):
        while True:
            if path.exists():
                lines = path.read_text().split()
                if len(lines) >= count:
                    return [int(x) for x in lines]
            await trio.sleep(0.02)


# Three processes in the task's group: two background sleeps and the shell itself.
SPAWN = "sleep 100 & echo $! > pids; sleep 100 & echo $! >> pids; echo $$ >> pids; "
SPAWN_GROUP = SPAWN + "wait"


async def test_stdout_becomes_the_stdout_output(tmp_path: Path) -> None:
    chunks: list[bytes] = []

    async def on_stdout(chunk: bytes) -> None:
        chunks.append(chunk)

    spec = JobSpec(command=["echo", "hello", "world"], outputs=["stdout"])
    result = await run_command(spec, tmp_path, on_stdout=on_stdout)
    assert result.ok
    assert (result.exit_code, result.signal, result.timed_out) == (0, None, False)
    assert result.outputs == {"stdout": tmp_path / "outputs" / "stdout"}
    assert result.outputs["stdout"].read_bytes() == b"hello world\n"
    assert b"".join(chunks) == b"hello world\n"
    assert result.missing_outputs == []
    assert result.delegation is None


async def test_files_written_to_outputs_dir_become_outputs(tmp_path: Path) -> None:
    spec = sh(
        'printf A > "$WEFT_OUTPUTS/a"; printf BB > "$WEFT_OUTPUTS/b"; printf x > "$WEFT_OUTPUTS/extra"',
        outputs=["a", "b", "never", "stdout"],
    )
    result = await run_command(spec, tmp_path)
    assert result.exit_code == 0
    assert result.outputs["a"].read_bytes() == b"A"
    assert result.outputs["b"].read_bytes() == b"BB"
    assert result.outputs["stdout"].read_bytes() == b""  # always produced, maybe empty
    assert "extra" not in result.outputs  # not declared
    assert result.missing_outputs == ["never"]


async def test_command_writing_stdout_file_wins_over_captured_stdout(tmp_path: Path) -> None:
    spec = sh('echo printed; printf written > "$WEFT_OUTPUTS/stdout"', outputs=["stdout"])
    result = await run_command(spec, tmp_path)
    assert result.outputs["stdout"].read_bytes() == b"written"
    assert b"printed" in (tmp_path / "results" / "output.txt").read_bytes()


async def test_immediate_inputs_are_environment_variables(tmp_path: Path) -> None:
    spec = sh(
        'printf %s "$WEFT_INPUT_MESSAGE" > "$WEFT_OUTPUTS/m"; '
        'printf %s "$WEFT_INPUT_RAW_BIN" > "$WEFT_OUTPUTS/r"; '
        'printf %s "$WEFT_INPUTS|$WEFT_OUTPUTS|$WEFT_DELEGATE|$PWD" > "$WEFT_OUTPUTS/dirs"',
        inputs={"message": "hi there", "raw.bin": b"\xff\xfe ok"},
        outputs=["m", "r", "dirs"],
    )
    result = await run_command(spec, tmp_path)
    assert result.outputs["m"].read_bytes() == b"hi there"
    assert result.outputs["r"].read_bytes() == b"\xff\xfe ok"  # bytes pass through exactly
    assert result.outputs["dirs"].read_text() == "|".join(
        str(p)
        for p in (
            tmp_path / "inputs",
            tmp_path / "outputs",
            tmp_path / "delegate.json",
            tmp_path / "work",
        )
    )


async def test_inherited_input_variables_are_not_passed_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WEFT_INPUT_STALE", "from the node")
    spec = sh('printf %s "${WEFT_INPUT_STALE-unset}"', outputs=["stdout"])
    result = await run_command(spec, tmp_path)
    assert result.outputs["stdout"].read_bytes() == b"unset"


async def test_environment_changes_reach_later_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The node's environment is cached between commands; a change must still show.
    spec = JobSpec(command=["sh", "-c", 'printf "%s" "$WEFT_TEST_VAR"'], outputs=["stdout"])
    monkeypatch.setenv("WEFT_TEST_VAR", "one")
    await run_command(spec, tmp_path / "a")
    monkeypatch.setenv("WEFT_TEST_VAR", "two")
    await run_command(spec, tmp_path / "b")
    assert (tmp_path / "a" / "outputs" / "stdout").read_text() == "one"
    assert (tmp_path / "b" / "outputs" / "stdout").read_text() == "two"


async def test_command_found_on_path_follows_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Where PATH finds a command is remembered for a while; a command that was
    # removed since, or a changed PATH, is looked up again.
    first, second = tmp_path / "first", tmp_path / "second"
    for d, word in ((first, "first"), (second, "second")):
        d.mkdir()
        tool = d / "weft-test-tool"
        tool.write_text(f"#!/bin/sh\necho {word}\n")
        tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{first}:{second}:{os.environ['PATH']}")
    spec = JobSpec(command=["weft-test-tool"], outputs=["stdout"])

    async def run(name: str) -> str:
        await run_command(spec, tmp_path / name)
        return (tmp_path / name / "outputs" / "stdout").read_text().strip()

    assert await run("r1") == "first"
    (first / "weft-test-tool").unlink()
    assert await run("r2") == "second"
    monkeypatch.setenv("PATH", f"{second}:{first}:{os.environ['PATH']}")
    (first / "weft-test-tool").write_text("#!/bin/sh\necho first again\n")
    (first / "weft-test-tool").chmod(0o755)
    assert await run("r3") == "second"
    monkeypatch.setenv("PATH", f"{first}:{second}:{os.environ['PATH']}")
    assert await run("r4") == "first again"


async def test_bad_immediate_inputs_are_spec_errors(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="NUL"):
        await run_command(sh("true", inputs={"x": b"a\0b"}), tmp_path)
    with pytest.raises(SpecError, match="WEFT_INPUT_A_B"):
        await run_command(sh("true", inputs={"a.b": "1", "a-b": "2"}), tmp_path)


async def test_indirect_input_is_a_file_in_inputs_dir(tmp_path: Path) -> None:
    (tmp_path / "inputs").mkdir()
    (tmp_path / "inputs" / "data").write_bytes(b"object bytes\n")
    elsewhere = tmp_path / "cache-entry"
    elsewhere.write_bytes(b"cached\n")
    spec = sh(
        'cat "$WEFT_INPUTS/data" "$WEFT_INPUTS/other"',
        refs={"data": "jsource/out", "other": "jsource/more"},
        outputs=["stdout"],
    )
    result = await run_command(
        spec,
        tmp_path,
        input_files={"data": tmp_path / "inputs" / "data", "other": elsewhere},
    )
    assert result.outputs["stdout"].read_bytes() == b"object bytes\ncached\n"


async def test_missing_indirect_input_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(RunnerError) as e:
        await run_command(sh("true"), tmp_path, input_files={"x": tmp_path / "inputs" / "x"})
    assert e.value.code == "missing-input"


async def test_output_txt_interleaves_stdout_and_stderr(tmp_path: Path) -> None:
    spec = sh("echo to-out; echo to-err >&2; echo again", outputs=["stdout"])
    result = await run_command(spec, tmp_path)
    log = (tmp_path / "results" / "output.txt").read_bytes()
    assert b"to-out\n" in log and b"to-err\n" in log and b"again\n" in log
    assert result.outputs["stdout"].read_bytes() == b"to-out\nagain\n"


async def test_nonzero_exit_is_reported(tmp_path: Path) -> None:
    result = await run_command(sh("echo failing >&2; exit 3"), tmp_path)
    assert (result.exit_code, result.signal, result.timed_out, result.ok) == (3, None, False, False)


async def test_a_failed_commands_message_names_its_stderr_not_its_stdout(tmp_path: Path) -> None:
    """stdout lands in the log through the pump, often after stderr: the
    message's line is the last one not printed to stdout."""
    result = await run_command(sh("echo all went fine; echo cannot open db.sqlite >&2; exit 3", outputs=["stdout"]),
                               tmp_path)
    assert result.exit_code == 3 and result.stdout_tail == b"all went fine\n"
    assert last_line(tmp_path, stdout_tail=result.stdout_tail) == ": cannot open db.sqlite"
    # Nothing on stderr: its last line is stdout's; a line saying error wins wherever it is.
    only_out = await run_command(sh("echo step one; echo step two; exit 1"), tmp_path / "b")
    assert last_line(tmp_path / "b", stdout_tail=only_out.stdout_tail) == ": step two"
    errs = await run_command(sh("echo error: bad input; echo usage: x >&2; exit 2"), tmp_path / "c")
    assert last_line(tmp_path / "c", stdout_tail=errs.stdout_tail) == ": error: bad input"


async def test_death_by_signal_is_reported(tmp_path: Path) -> None:
    result = await run_command(sh("kill -SEGV $$"), tmp_path)
    assert (result.exit_code, result.signal) == (None, signal.SIGSEGV)


async def test_missing_command(tmp_path: Path) -> None:
    with pytest.raises(RunnerError) as e:
        await run_command(JobSpec(command=["no-such-command-weft", "x"]), tmp_path)
    assert e.value.code == "command-not-found"
    assert "no-such-command-weft" in e.value.message
    assert "\n" not in e.value.message


async def test_not_executable_command(tmp_path: Path) -> None:
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\necho hi\n")  # no x bit
    with pytest.raises(RunnerError) as e:
        await run_command(JobSpec(command=[str(script)]), tmp_path / "wd")
    assert e.value.code == "command-not-found"


async def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    spec = sh(SPAWN_GROUP, timeout=0.5)
    with trio.fail_after(WAIT):
        result = await run_command(spec, tmp_path, grace=1.0)
    pids = await wait_for_pids(tmp_path / "work" / "pids", 3)
    assert result.timed_out
    assert result.exit_code is None and result.signal == signal.SIGTERM
    assert [p for p in pids if alive(p)] == []


async def test_processes_ignoring_sigterm_get_sigkill_after_grace(tmp_path: Path) -> None:
    spec = sh("trap '' TERM; " + SPAWN_GROUP, timeout=0.3)
    start = trio.current_time()
    with trio.fail_after(WAIT):
        result = await run_command(spec, tmp_path, grace=0.3)
    pids = await wait_for_pids(tmp_path / "work" / "pids", 3)
    assert result.timed_out and result.signal == signal.SIGKILL
    assert trio.current_time() - start >= 0.6
    assert [p for p in pids if alive(p)] == []


async def test_cancellation_kills_the_group_and_propagates(tmp_path: Path) -> None:
    finished = False

    async def run() -> None:
        nonlocal finished
        await run_command(sh(SPAWN_GROUP), tmp_path, grace=1.0)
        finished = True

    with trio.fail_after(WAIT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run)
            pids = await wait_for_pids(tmp_path / "work" / "pids", 3)
            nursery.cancel_scope.cancel()
    assert not finished  # Cancelled propagated out of run_command
    assert [p for p in pids if alive(p)] == []


async def test_leftover_background_processes_are_stopped(tmp_path: Path) -> None:
    # The leftover holds stdout open: without stopping the group this would hang.
    spec = sh("sleep 100 & echo $! > pid; echo done", outputs=["stdout"])
    with trio.fail_after(WAIT):
        result = await run_command(spec, tmp_path)
    assert result.exit_code == 0 and result.signal is None
    assert result.outputs["stdout"].read_bytes() == b"done\n"
    assert not alive(int((tmp_path / "work" / "pid").read_text()))


async def test_on_stdout_failure_stops_the_command_and_propagates(tmp_path: Path) -> None:
    async def on_stdout(chunk: bytes) -> None:
        raise ConnectionError("storage went away")

    with trio.fail_after(WAIT), pytest.raises(ConnectionError, match="storage went away"):
        await run_command(sh(SPAWN + "echo go; wait"), tmp_path, on_stdout=on_stdout)
    pids = await wait_for_pids(tmp_path / "work" / "pids", 3)
    assert [p for p in pids if alive(p)] == []


async def test_delegation_file_is_parsed(tmp_path: Path) -> None:
    delegation = {"job": {"cmd": ["echo", "next"], "o": ["stdout"]}, "stream": "stdout"}
    spec = JobSpec(
        command=[
            sys.executable,
            "-c",
            "import json, os, sys; json.dump(json.loads(sys.argv[1]), open(os.environ['WEFT_DELEGATE'], 'w'))",
            json.dumps(delegation),
        ],
        outputs=["stdout"],
    )
    result = await run_command(spec, tmp_path)
    assert result.exit_code == 0
    assert result.delegation is not None and result.delegation.to_wire() == delegation


@pytest.mark.parametrize(
    "content, why",
    [
        ("{not json", "not valid JSON"),
        ('{"job": {"cmd": ["echo"], "o": ["a"]}, "stream": "b"}', "not an output"),
        ('{"job": {"bogus": 1}}', "'job' and 'stream'"),
    ],
)
async def test_invalid_delegation_is_a_hard_error(tmp_path: Path, content: str, why: str) -> None:
    spec = sh('printf %s "$1" > "$WEFT_DELEGATE"', outputs=["stdout"])
    spec.command = [*spec.command, "sh", content]
    with pytest.raises(RunnerError, match=why) as e:
        await run_command(spec, tmp_path)
    assert e.value.code == "bad-delegation"


async def test_delegation_ignored_when_command_fails(tmp_path: Path) -> None:
    result = await run_command(sh('echo "{bad" > "$WEFT_DELEGATE"; exit 1'), tmp_path)
    assert result.exit_code == 1 and result.delegation is None


async def test_workdir_layout_and_environment(tmp_path: Path) -> None:
    spec = sh('printf %s "$WEFT_JOB"', outputs=["stdout"], name="my-job")
    result = await run_command(spec, tmp_path)
    assert result.outputs["stdout"].read_text() == "my-job"
    for d in ("inputs", "outputs", "results", "work"):
        assert (tmp_path / d).is_dir()
    assert os.listdir(tmp_path / "results") == ["output.txt"]


# -- supervising in one task (actors/compute/supervise.py) ----------------------------------


async def test_stdout_beyond_the_pipe_buffer_arrives_whole(tmp_path: Path) -> None:
    # 1 MB: the command blocks on a full pipe many times, and the last chunks
    # are still in the pipe when it exits.
    chunks: list[bytes] = []

    async def on_stdout(chunk: bytes) -> None:
        chunks.append(chunk)

    spec = sh("head -c 1000000 /dev/zero; echo tail", outputs=["stdout"])
    with trio.fail_after(WAIT):
        result = await run_command(spec, tmp_path, on_stdout=on_stdout)
    expected = b"\0" * 1_000_000 + b"tail\n"
    assert result.ok
    assert result.outputs["stdout"].read_bytes() == expected
    assert b"".join(chunks) == expected
    assert (tmp_path / "results" / "output.txt").read_bytes() == expected


async def test_a_process_that_left_the_group_cannot_hold_the_task(tmp_path: Path) -> None:
    # It keeps the stdout pipe open after the command exited; the task ends
    # anyway, about _DRAIN_LIMIT after the command's group is gone, while
    # that process still runs.
    spec = sh("setsid sh -c 'echo $$ > pid; exec sleep 20' & "
              "for i in $(seq 500); do [ -s pid ] && break; sleep 0.01; done; echo started", outputs=["stdout"])
    pid_file = tmp_path / "work" / "pid"
    try:
        result = await run_command(spec, tmp_path)
        assert result.ok
        assert result.outputs["stdout"].read_bytes() == b"started\n"
        assert alive(int(pid_file.read_text()))  # it did not wait for it
    finally:
        if pid_file.exists():
            os.kill(int(pid_file.read_text()), signal.SIGKILL)


async def test_what_a_command_prints_while_stopping_reaches_its_log_before_it_ends(tmp_path: Path) -> None:
    # Between SIGTERM and its end (here: until the test lets it) its output
    # goes on to the log, where `weft logs --follow` reads it.
    flag = tmp_path / "may-stop"
    # One process, no children: no race between the group's SIGTERM and a fork.
    script = (
        "import os, signal, sys, time\n"
        "def stop(*_):\n"
        "    print('stopping', flush=True)\n"
        f"    for _ in range(500):\n"
        f"        if os.path.exists({str(flag)!r}): sys.exit(0)\n"
        "        time.sleep(0.02)\n"
        "    sys.exit(1)\n"
        "signal.signal(signal.SIGTERM, stop)\n"
        "print('started', flush=True)\n"
        "time.sleep(100)\n"
    )
    log = tmp_path / "results" / "output.txt"
    ended = False

    async def run() -> None:
        nonlocal ended
        try:
            await run_command(JobSpec(command=[sys.executable, "-c", script]), tmp_path, grace=WAIT)
        finally:
            ended = True

    try:
        with trio.fail_after(WAIT):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(run)
                while not (log.exists() and b"started" in log.read_bytes()):  # noqa: ASYNC110
                    await trio.sleep(0.02)
                nursery.cancel_scope.cancel()
                with trio.CancelScope(shield=True):  # (the cancel above is ours)
                    for _ in range(200):
                        if b"stopping" in log.read_bytes():
                            break
                        await trio.sleep(0.02)
                    seen_while_running = b"stopping" in log.read_bytes() and not ended
                    flag.touch()
    finally:
        flag.touch()
    assert seen_while_running
    assert ended
    data = log.read_bytes()  # (SIGTERM can land inside print('started'): its newline then never comes)
    assert data.startswith(b"started") and data.endswith(b"stopping\n") and data.count(b"stopping") == 1


async def test_without_capture_stdout_goes_only_to_the_caller_and_the_log(tmp_path: Path) -> None:
    # As the compute node runs commands: it streams stdout to storage itself.
    chunks: list[bytes] = []

    async def on_stdout(chunk: bytes) -> None:
        chunks.append(chunk)

    quiet = await run_command(sh("echo out", outputs=["stdout"]), tmp_path / "a", on_stdout=on_stdout, capture=False)
    assert b"".join(chunks) == b"out\n"
    assert quiet.ok and quiet.outputs == {} and quiet.missing_outputs == []
    assert not (tmp_path / "a" / "outputs" / "stdout").exists()
    assert not (tmp_path / "a" / "results" / "stdout").exists()
    assert quiet.log_is_stdout and not quiet.log_empty
    noisy = await run_command(sh("echo out; echo err >&2", outputs=["stdout"]), tmp_path / "b",
                              on_stdout=on_stdout, capture=False)
    # (stdout comes through our pump, stderr straight: either may land first)
    assert sorted((tmp_path / "b" / "results" / "output.txt").read_bytes().splitlines()) == [b"err", b"out"]
    assert not noisy.log_is_stdout
    silent = await run_command(sh("true", outputs=["stdout"]), tmp_path / "c", on_stdout=on_stdout, capture=False)
    assert silent.log_empty and silent.log_is_stdout
