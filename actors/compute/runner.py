"""Running command jobs.

A command job runs `spec.command` as an argv (no shell is involved) in a
working directory prepared for the task:

    <workdir>/inputs/         the job's indirect inputs (refs), one file per input name
    <workdir>/outputs/        files the command writes here become outputs
    <workdir>/results/output.txt   stdout and stderr, interleaved as they arrived: the
                              job's log, kept as object JOB/_log when the task ends
                              (actors/compute/follow.py). stderr goes to it directly,
                              stdout through our pump, so a line of stdout can land a
                              moment after a later line of stderr.
    <workdir>/work/           the command's current directory
    <workdir>/delegate.json   written by the command to delegate (see below)

The working directory should be fresh: stale files in `outputs/` or a stale
`delegate.json` would be taken as this run's.

Environment
    The command sees the node's environment plus:

    WEFT_INPUT_<NAME>  each immediate input's value. <NAME> is the input name in
                       upper case with '.' and '-' turned into '_', so
                       `message` is `$WEFT_INPUT_MESSAGE`. Byte values are passed
                       through exactly; a value containing a NUL byte, or two
                       names that map to the same variable, are a spec error.
    WEFT_INPUTS        the inputs directory; indirect input <name> is the file
                       `$WEFT_INPUTS/<name>` (a tree: that directory, with its
                       structure and modes; compute/layout.py).
    WEFT_OUTPUTS       the outputs directory; a directory output (`dirs`) is
                       made there empty before the command starts.
    WEFT_DELEGATE      where to write a delegation (`<workdir>/delegate.json`).
    WEFT_JOB           the job id (also as WEFT_JOB_ID: `weft submit` and
                       Client() inside the job make children of it).
    WEFT_PARAM_<KEY>   each unit parameter (actors/units.py), also written as
                       `parameters.json` in the working directory.
    WEFT_PROGRESS      a file for progress lines `PERCENT MESSAGE` (e.g.
                       `echo "50 halfway" >> $WEFT_PROGRESS`); the last line counts.
    WEFT_DEPFILE       where to list the input files it read (actors/depfiles.py).

    Inherited `WEFT_INPUT_*` variables are removed, so a command never sees
    inputs that are not its own. Standard input is /dev/null.

Outputs
    Everything the command writes to stdout becomes the output `stdout`. A
    compute node streams it to storage as it comes (`capture=False`), so a
    file the command writes as `$WEFT_OUTPUTS/stdout` is not collected there;
    with `capture=True` stdout is kept as the file `outputs/stdout`, and such
    a file written by the command wins. A regular file (or a directory: a
    tree) the command writes as `$WEFT_OUTPUTS/<name>` becomes output
    `<name>`. Only names listed in the job's outputs are collected; a
    declared output that was not written is reported missing (`stdout` is
    never missing: it is at worst empty).

Delegation
    A command can finish by handing its output over to a new job: it writes
    `{"job": <job spec>, "stream": "<output of that job>"}` as JSON to
    `$WEFT_DELEGATE` and exits 0. The job spec uses the wire form (keys `cmd` or
    `call`, `in`, `refs`, `o`, ...). A delegation file that is not valid JSON or
    not a valid delegation fails the task (`bad-delegation`). The file is
    ignored when the command exits non-zero or is stopped.

Stopping
    Every command runs in a session and process group of its own. When the job
    times out (`timeout` seconds) or the task is cancelled, the whole group gets
    SIGTERM and, if any of it is still alive `grace` seconds later, SIGKILL. When
    the command exits by itself, processes it left behind in its group are
    stopped the same way: no process of a task outlives the task (except one
    that deliberately leaves the group with setsid()).

    A timeout returns a result with `timed_out=True`. Cancellation is not turned
    into a result: after the group is stopped, trio's Cancelled propagates as
    usual, so `CommandResult.cancelled` is always False from `run_command`;
    the field exists so a caller can record a cancelled task with the same type.

Errors
    `RunnerError` with `code`:
      command-not-found  argv[0] does not exist or is not executable
      bad-delegation     the delegation file is not valid
      missing-input      an indirect input's file does not exist
      inputs-too-large   the immediate inputs exceed the OS limit for the environment
      spawn-limit        the node could not fork (EAGAIN, ENOMEM): the node's fault, soft
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import math
import os
import signal
import stat
from collections.abc import Awaitable, Callable
from dataclasses import field
from pathlib import Path

import trio

from weft.protocol.enums import ErrorCode
from weft.protocol.record import record
from weft.protocol.tasks import Delegation

from ..model import JobSpec, SpecError, input_env_var
from ..specfields import param_env_var
from .block import wait_for_paths
from .isolation import Sandbox
from .procs import group_alive
from .spawn import Child, Launch, spawn
from .supervise import TAIL_KEEP, supervise

log = logging.getLogger("weft.compute")

_CHUNK = 65536
# How often the group is checked for survivors while it is being stopped.
_POLL = 0.02
# After the group is gone, pipes can still be held open by a process that left
# the group (setsid); don't let that hold the task hostage.
_DRAIN_LIMIT = 1.0
_KILL_WAIT = 1.0


class RunnerError(Exception):
    """A task could not run or finished in a way that is a hard failure."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"{self.message} [{self.code}]"

    def __reduce__(self):  # keep both fields across pickling
        return (type(self), (self.code, self.message))


@record(slots=False)
class CommandResult:
    exit_code: int | None  # None when a signal ended the command (ours or another)
    signal: int | None  # that signal
    outputs: dict[str, Path] = field(default_factory=dict)
    missing_outputs: list[str] = field(default_factory=list)
    delegation: Delegation | None = None
    timed_out: bool = False
    cancelled: bool = False
    # The log (results/output.txt) holds exactly what became output `stdout`:
    # nothing went to stderr and the command did not write $WEFT_OUTPUTS/stdout
    # itself. Then the log need not be stored apart (see ComputeNode._keep_log).
    log_is_stdout: bool = False
    # Nothing at all went to the log: once the task succeeded, nothing in its
    # directory is left to read (ComputeNode recycles it at once).
    log_empty: bool = False
    # The end of what it printed to stdout (its last two reads): a failed
    # command's message names a line of its log that is not stdout's when
    # there is one (follow.last_line), as stdout lands there late.
    stdout_tail: bytes = b""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out and not self.cancelled

    def when(self) -> str:
        """How it ended, as an exit action's WHEN: the exit code, `timed-out` or `crashed`."""
        if self.timed_out:
            return "timed-out"
        return str(self.exit_code) if self.exit_code is not None else "crashed"

    def accepted(self, spec: JobSpec) -> bool:
        """It ended well: exit 0, or an ending the job's exit actions say
        to count as success (`--on-exit 1=succeed`). Its outputs are then
        collected as after exit 0 (a declared one not written still fails)."""
        if self.cancelled:
            return False
        if self.exit_code == 0 and not self.timed_out:
            return True
        return spec.exit_action(self.when()) == "succeed"


# Set by the compute node for every command it runs (WEFT_COORDINATOR).
JOB_ENV: dict[str, str] = {}


def _build_env(spec: JobSpec, workdir: str, job: str) -> dict[str, str | bytes]:
    """The job's own variables, set over the node's environment (spawn.py)."""
    env: dict[str, str | bytes] = {}
    seen: dict[str, str] = {}
    for name, value in spec.inputs.items():
        var = input_env_var(name)
        if var in seen:
            raise SpecError(f"inputs {seen[var]!r} and {name!r} both map to ${var}")
        seen[var] = name
        raw = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
        if b"\0" in raw:
            raise SpecError(
                f"input {name!r} contains a NUL byte and cannot be an environment value"
            )
        # Popen fsencodes str and keeps bytes, so byte values reach the command exactly.
        env[var] = value
    env["WEFT_INPUTS"] = workdir + "/inputs"
    env["WEFT_OUTPUTS"] = workdir + "/outputs"
    env["WEFT_DELEGATE"] = workdir + "/delegate.json"
    env["WEFT_JOB"] = env["WEFT_JOB_ID"] = job
    if JOB_ENV:
        env.update(JOB_ENV)
    if spec.params:
        env.update({param_env_var(k): str(v) for k, v in spec.params.items()})
    # Progress lines `PERCENT MESSAGE`; read by the node only when someone asks.
    env["WEFT_PROGRESS"] = workdir + "/results/progress"
    env["WEFT_DEPFILE"] = workdir + "/results/deps"  # files it read (actors/depfiles.py)
    return env


def _link_inputs(inputs_dir: Path, input_files: dict[str, Path]) -> None:
    for name, path in input_files.items():
        target = inputs_dir / name
        path = Path(path)
        if path != target and not target.exists():
            # The caller may keep fetched objects elsewhere (a cache); the
            # command only ever looks in $WEFT_INPUTS.
            target.symlink_to(path.resolve())
        if not target.is_file() and not target.is_dir():  # (a directory: a tree input)
            raise RunnerError("missing-input", f"input {name!r}: no file at {path}")


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # kill() also succeeds on zombies that nobody reaped yet (an init that does
    # not reap, as in some containers), so look at the members where /proc allows.
    if not os.path.isdir("/proc"):
        return True
    return group_alive(pgid)


def _killpg(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


async def _stop_group(proc: Child | trio.Process, grace: float) -> int | None:
    """Stop the process group led by `proc`; return the last signal sent if `proc` itself
    was still running when we started (so the caller can report it as killed by us)."""
    pgid = proc.pid
    main_running = proc.returncode is None
    if not main_running and not _group_alive(pgid):
        return None  # the common case: the command exited and took everything with it
    sent = signal.SIGTERM
    _killpg(pgid, sent)
    with trio.move_on_after(grace):
        await proc.wait()
        # Polling: nothing signals when the last member of a group exits.
        while _group_alive(pgid):  # noqa: ASYNC110
            await trio.sleep(_POLL)
    if proc.returncode is None or _group_alive(pgid):
        sent = signal.SIGKILL
        _killpg(pgid, sent)
        log.debug("process group %d survived SIGTERM for %.1fs; killed", pgid, grace)
        await proc.wait()
        # SIGKILL takes effect asynchronously; only a process stuck in the kernel
        # (uninterruptible sleep) could outlast this.
        with trio.move_on_after(_KILL_WAIT):
            while _group_alive(pgid):  # noqa: ASYNC110
                await trio.sleep(_POLL)
    return int(sent) if main_running else None


def _collect_outputs(spec: JobSpec, outputs_dir: str, skip: str = "") -> tuple[dict[str, Path], list[str]]:
    found: dict[str, Path] = {}
    missing: list[str] = []
    for name in spec.outputs:
        if name == skip:
            continue
        path = f"{outputs_dir}/{name}"
        try:
            st = os.stat(path)
        except OSError:
            st = None
        # Only regular files and directories (trees, compute/layout.py): a
        # FIFO or device would hang or flood whoever reads it.
        if st is not None and (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
            found[name] = Path(path)
        else:
            missing.append(name)
    return found, missing


def _read_delegation(file: str) -> Delegation | None:
    try:
        with open(file, "rb") as f:
            text = f.read()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise RunnerError(ErrorCode.BAD_DELEGATION, f"cannot read {Path(file).name}: {e.strerror}") from None
    path = Path(file)
    try:
        data = json.loads(text)
    except ValueError as e:
        raise RunnerError(ErrorCode.BAD_DELEGATION, f"{path.name} is not valid JSON: {e}") from None
    try:
        return Delegation.from_wire(data)
    except SpecError as e:
        raise RunnerError(ErrorCode.BAD_DELEGATION, f"{path.name}: {e}") from None


async def run_command(
    spec: JobSpec,
    workdir: Path,
    *,
    input_files: dict[str, Path] | None = None,
    on_stdout: Callable[[bytes], Awaitable[None]] | None = None,
    grace: float | Callable[[], float] = 2.0,
    job: str | None = None,
    on_spawn: Callable[[int], None] | None = None,
    sandbox: Sandbox | None = None,  # isolation.py: namespace, --run-as
    secrets: dict[str, str] | None = None,
    capture: bool = True,
) -> CommandResult:
    """Run a command job in `workdir` and wait for it; see the module docstring.
    `secrets` are more environment variables, written nowhere (docs/security.md).

    With `capture=False` stdout is not kept as the file outputs/stdout (nor
    listed in the result's outputs): the caller takes it from `on_stdout`
    (the compute node streams it to storage). `log_is_stdout` then says the
    log holds exactly what `on_stdout` was given. Saves a file, its rename
    and the directory's clean-up per command.

    `job` is the job id for $WEFT_JOB (default: the spec's own `job_id()`).
    `on_spawn(pgid)` is called once the command's process group exists, so
    the caller can record it (a node restarted after being killed stops what
    it left running). Without it the pgid goes to `workdir/pgid`.
    """
    if spec.command is None:
        raise SpecError("run_command needs a job with 'command'")
    # Paths as strings: pathlib's joins were ~10% of the node's CPU per command.
    w = os.fspath(workdir)
    outputs_dir, results_dir, cwd = w + "/outputs", w + "/results", w + "/work"
    if not os.path.isdir(cwd):  # the caller may have made the layout already
        for d in (w + "/inputs", outputs_dir, results_dir, cwd):
            os.makedirs(d, exist_ok=True)
    if input_files:
        _link_inputs(Path(w, "inputs"), input_files)
    for d in spec.dirs:  # directory outputs (--output-dir): there to write into
        os.makedirs(f"{outputs_dir}/{d}", exist_ok=True)
    env = _build_env(spec, w, job or spec.job_id())
    env.update(secrets or {})
    if spec.params:
        Path(cwd, "parameters.json").write_text(json.dumps(spec.params, sort_keys=True))
    if spec.block:
        await wait_for_paths(spec.block, Path(results_dir, "progress"), Path(cwd))

    capture_path = results_dir + "/stdout"
    given = [0]  # stdout bytes handed to on_stdout (capture=False)
    if not capture and on_stdout is not None:
        sink = on_stdout

        async def counted(chunk: bytes) -> None:
            given[0] += len(chunk)
            await sink(chunk)

        on_stdout = counted
    # Plain blocking writes: local files land in the page cache in microseconds,
    # cheaper than a thread hop per chunk.
    log_fd = os.open(results_dir + "/output.txt", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    capture_fd = os.open(capture_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644) if capture else -1
    try:
        try:
            # Isolation's wrapper goes in front of the argv (isolation.py); child
            # settings only Popen applies would go in Launch.popen_kw (spawn.py).
            argv = spec.command if sandbox is None else sandbox.command(spec.command, workdir, cwd, env)
            proc = await spawn(Launch(argv, cwd, env, log_fd))
        except (FileNotFoundError, PermissionError, NotADirectoryError, IsADirectoryError):
            raise RunnerError(
                "command-not-found",
                f"command not found or not executable: {spec.command[0]!r}",
            ) from None
        except OSError as e:
            if e.errno == errno.E2BIG:
                raise RunnerError(
                    "inputs-too-large",
                    "immediate inputs are too large for the environment; pass them as objects",
                ) from None
            if e.errno in (errno.EAGAIN, errno.ENOMEM):
                # The node is out of processes or memory for now: not the job's fault.
                raise RunnerError("spawn-limit", f"cannot start {spec.command[0]!r}: {e.strerror}") from None
            if e.errno == errno.ENOEXEC:
                raise RunnerError(
                    "command-not-found",
                    f"command is not an executable format: {spec.command[0]!r}",
                ) from None
            raise
        # Recorded so a node restarted after being killed can stop what it left running.
        pgid_path = None
        if on_spawn is not None:
            on_spawn(proc.pid)
        else:
            pgid_path = Path(w, "pgid")
            pgid_path.write_text(str(proc.pid))
        try:
            if isinstance(proc, Child) and proc.pidfd >= 0:
                # One task, no nursery (supervise.py): the common case on Linux.
                result = _result(*await supervise(
                    spec.timeout, proc, log_fd, capture_fd, on_stdout,
                    grace if callable(grace) else lambda: grace, _stop_group, _group_alive, _DRAIN_LIMIT,
                ))
            else:
                result = await _supervise(spec, proc, log_fd, capture_fd, on_stdout, grace)
            # Every stdout byte went to both files, so equal sizes mean no stderr.
            log_size = os.fstat(log_fd).st_size
            same = log_size == (os.fstat(capture_fd).st_size if capture else given[0])
        finally:
            if pgid_path is not None:
                pgid_path.unlink(missing_ok=True)
    except BaseException:
        if capture:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(capture_path)
        raise
    finally:
        os.close(log_fd)
        if capture:
            os.close(capture_fd)

    if sandbox is not None:
        sandbox.settle(Path(workdir))  # no output symlinked out of the task directory
    stdout_path = outputs_dir + "/stdout"
    if not capture:
        result.log_is_stdout = same and on_stdout is not None
    elif os.path.lexists(stdout_path):  # the command wrote it itself: that wins
        os.unlink(capture_path)
    else:
        os.rename(capture_path, stdout_path)
        result.log_is_stdout = same
    result.log_empty = log_size == 0
    result.outputs, result.missing_outputs = _collect_outputs(spec, outputs_dir, skip="" if capture else "stdout")
    if result.exit_code == 0 and not result.timed_out:
        result.delegation = _read_delegation(w + "/delegate.json")
    return result


async def _supervise(
    spec: JobSpec,
    proc: Child | trio.Process,
    log_fd: int,
    capture_fd: int,
    on_stdout: Callable[[bytes], Awaitable[None]] | None,
    grace: float | Callable[[], float],
) -> CommandResult:
    assert proc.stdout is not None
    sink_error: list[BaseException] = []
    # Once the group is gone every writer of the pipes is gone too, except a
    # process that escaped with setsid(); reads then get a deadline so such a
    # process cannot hold the task hostage, while a slow on_stdout still can take its time.
    group_gone = False
    read_scopes: set[trio.CancelScope] = set()
    sink = on_stdout
    last_reads = [b"", b""]  # references, no copies: the pump's hot loop stays as it was

    async def pump(stream: trio.abc.ReceiveStream) -> None:
        nonlocal sink
        while True:
            # Shielded: a cancelled task's group is still being stopped, and
            # what it prints until it is gone belongs in its log. Reads end
            # at EOF, or _DRAIN_LIMIT after the group is gone.
            with trio.CancelScope(shield=True) as scope:
                if group_gone:
                    scope.deadline = trio.current_time() + _DRAIN_LIMIT
                read_scopes.add(scope)
                try:
                    chunk = await stream.receive_some(_CHUNK)
                finally:
                    read_scopes.discard(scope)
            if scope.cancelled_caught or not chunk:
                return
            os.write(log_fd, chunk)
            last_reads[0], last_reads[1] = last_reads[1], chunk
            if capture_fd >= 0:
                os.write(capture_fd, chunk)
            if sink is not None:
                try:
                    await sink(chunk)
                except trio.Cancelled:
                    # The task is being stopped: its outputs are not kept,
                    # its log still is (trio delivers the cancel again to the
                    # caller at its next checkpoint).
                    sink = None
                except Exception as e:
                    # Raised from here it would reach the caller wrapped in an
                    # ExceptionGroup; keep it and stop the task instead.
                    sink_error.append(e)
                    nursery.cancel_scope.cancel()
                    return

    timed_out = False
    killed_with: int | None = None
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(pump, proc.stdout)
            try:
                with trio.move_on_after(spec.timeout or math.inf) as deadline:
                    await proc.wait()
                timed_out = deadline.cancelled_caught
            finally:
                # Also on cancellation: the group must be gone before we let go.
                with trio.CancelScope(shield=True):
                    # Asked when stopping: a cancel's grace is the job's own.
                    killed_with = await _stop_group(proc, grace() if callable(grace) else grace)
                # (Also when cancelled: the shielded read must not wait on a
                # process that escaped the group.)
                group_gone = True
                for scope in read_scopes:
                    scope.deadline = trio.current_time() + _DRAIN_LIMIT
    finally:
        with trio.CancelScope(shield=True):
            await proc.stdout.aclose()
        if isinstance(proc, Child):
            proc.close()
    if sink_error:
        raise sink_error[0]

    rc = proc.returncode
    assert rc is not None
    return _result(rc, killed_with, timed_out, last_reads[0][-TAIL_KEEP:] + last_reads[1][-TAIL_KEEP:])


def _result(rc: int, killed_with: int | None, timed_out: bool, stdout_tail: bytes = b"") -> CommandResult:
    if rc < 0:
        return CommandResult(exit_code=None, signal=-rc, timed_out=timed_out, stdout_tail=stdout_tail)
    if killed_with is not None:
        # The command handled our SIGTERM and exited; it still did not finish its work.
        return CommandResult(exit_code=None, signal=killed_with, timed_out=timed_out, stdout_tail=stdout_tail)
    return CommandResult(exit_code=rc, signal=None, timed_out=timed_out, stdout_tail=stdout_tail)
