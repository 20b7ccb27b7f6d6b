"""A task's log and progress, for those following it, and the log kept as an object.

The log of a command task is `results/output.txt` in its directory: stdout
and stderr interleaved as written; a callable's is what it printed, caught
by its worker (compute.pool.CallLog). When the task ends, whatever its outcome,
the node stores it as the object `JOB/_log` (LOG_OUTPUT) on the first
storage node of the job's outputs, so it outlives the task directory and
this node. The coordinator learns of that object from storage's usual
events (a finished object of the job that no spec lists, so never an input
of another job nor part of any cache key) and reads it from there once the
task is gone. Not stored, to keep the common job free of a storage round
trip: an empty log, and a succeeded job's log that is byte for byte its
`stdout` output (nothing went to stderr): readers take `JOB/stdout` then.

While the task runs, `log` reads the file from an offset, waiting (polling
its size, only while someone asks) for new bytes, and `progress` reads the
last line of the task's progress file.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import trio

from weft.actors.progress import read_latest
from weft.actors.storage.client import ObjectWriter
from weft.bus.errors import BusError, RemoteError
from weft.protocol.enums import ErrorCode, TaskState
from weft.protocol.follow import LOG_OUTPUT, LogChunk, LogRead, ProgressAsk, ProgressReply
from weft.protocol.objects import Create

if TYPE_CHECKING:
    from weft.bus.peers import PeerPool

    from .task import Task


class NodeView(Protocol):
    """What following a task uses of the compute node (node.py, which
    imports this module: naming the class here would import it back)."""

    data_dir: Path
    tasks: dict[str, Task]
    peers: PeerPool | None

    def _get(self, job: str) -> Task: ...

log = logging.getLogger("weft.compute")

# How often a waiting log read looks at the file's size.
_LOG_POLL = 0.1
# Storing the log of a failed task may not hold its report back longer than this.
_KEEP_FAILED_LIMIT = 5.0


def log_path(data_dir: Path, job: str) -> Path:
    return data_dir / "tasks" / job / "results" / "output.txt"


# A failed command's `tail`: its log's last lines, enough for a compiler
# error with its source and caret lines, bounded in bytes so a job printing
# one endless line cannot bloat the coordinator's journal.
TAIL_LINES = 20
TAIL_BYTES = 4096


def log_tail(workdir: Path, lines: int = TAIL_LINES, limit: int = TAIL_BYTES) -> str | None:
    """The last `lines` lines of a command task's log (stderr, with any
    stdout interleaved), at most `limit` bytes; None when it is empty."""
    try:
        with open(workdir / "results" / "output.txt", "rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - limit))
            data = f.read()
    except OSError:
        return None
    text = data.decode(errors="replace").rstrip()
    kept = text.splitlines()[-lines:]
    if size > limit and len(kept) == len(text.splitlines()) and kept:
        kept = kept[1:] or kept  # the first line read is most likely cut
    return "\n".join(kept) or None


def last_line(workdir: Path, limit: int = 2048, stdout_tail: bytes = b"") -> str:
    """`: LINE` for a failed command's message: its log's last line that
    says `error` (a compiler's error, not the caret line under it), else
    its last line that is not one of stdout's (`stdout_tail`: stdout lands
    in the log a moment late, and a failure's reason is most often on
    stderr), else its last line."""
    try:
        with open(workdir / "results" / "output.txt", "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - limit))
            text = f.read().decode(errors="replace").strip()
    except OSError:
        return ""
    lines = [line.strip() for line in text.splitlines()[-20:] if line.strip()]
    printed = {line.strip() for line in stdout_tail.decode(errors="replace").splitlines()}
    last = next((line for line in reversed(lines) if "error" in line.lower()), None)
    if last is None:
        last = next((line for line in reversed(lines) if line not in printed), lines[-1] if lines else "")
    return f": {last[:200]}" if last else ""


def progress_path(data_dir: Path, task: Task) -> Path | None:
    if task.spec.command is not None:
        return data_dir / "tasks" / task.job / "results" / "progress"
    # A callable reports to the file of the worker running it (named once in
    # that worker's environment), known while the call runs.
    log = task.call_log
    return Path(log.progress) if log is not None and log.progress else None


async def keep_log(node: NodeView, task: Task, *, failed: bool) -> None:
    """Store the task's log as `JOB/_log` (see the module docstring for when not)."""
    spec = task.spec
    if not task.outputs or LOG_OUTPUT in spec.outputs:
        return  # nowhere to put it, or the job's own output has the name
    if spec.command is None:
        source: Path | bytes = task.call_log.data if task.call_log is not None else b""
        if not source:
            return
    else:
        if not failed and task.log_same:
            return
        source = log_path(node.data_dir, task.job)
        try:
            if os.stat(source).st_size == 0:
                return
        except OSError:
            return
    endpoint = next(iter(task.outputs.values()))[0]
    name = f"{task.job}/{LOG_OUTPUT}"
    with trio.move_on_after(_KEEP_FAILED_LIMIT if failed else float("inf")):
        try:
            try:
                await _upload(node, endpoint, name, source, task.token)
            except RemoteError as e:
                if e.code != ErrorCode.IMMUTABLE:
                    raise
                # An earlier attempt's log: this attempt's replaces it.
                await node.peers.get(endpoint).call("create", Create(name, task.token, True).to_wire())
                await _upload(node, endpoint, name, source, task.token)
        except (BusError, OSError) as e:
            # The log is not worth failing (or delaying) the job for.
            log.info("task %s: its log was not stored: %s", task.job, e)


async def _upload(node: NodeView, endpoint: str, name: str, source: Path | bytes, token: int) -> None:
    w = ObjectWriter(node.peers.get(endpoint), name, token, quiet=True)
    if isinstance(source, bytes):
        await w.write(source)
    else:
        with open(source, "rb") as f:
            while chunk := f.read(1 << 20):
                await w.write(chunk)
    await w.close()


async def read_log(node: NodeView, body: object) -> dict:
    """`log` {job, offset, wait?, limit?} -> LogChunk; `done` once the task ended."""
    req = LogRead.from_wire(body, "log")
    task = node._get(req.job)
    if task.spec.call is not None:
        return await _read_call_log(task, req)
    path = log_path(node.data_dir, req.job)
    with trio.move_on_after(req.wait):
        # Polling: a command writes its log straight to the file, nothing signals it.
        while task.state != TaskState.DONE and _size(path) <= req.offset:  # noqa: ASYNC110
            await trio.sleep(_LOG_POLL)
    done = task.state == TaskState.DONE
    data = b""
    try:
        with open(path, "rb") as f:
            f.seek(req.offset)
            data = f.read(req.limit)
            more = bool(f.read(1))
    except OSError:
        more = False  # a callable's task, or a directory already recycled
    return LogChunk(data, req.offset + len(data), done and not more).to_wire()


async def _read_call_log(task: Task, req: LogRead) -> dict:
    """A callable's prints: live from its worker's log file while it runs, then kept bytes."""
    def live() -> bytes:
        log = task.call_log
        if log is None:
            return b""
        if log.fd < 0:
            return log.data[req.offset:req.offset + req.limit]
        try:
            return os.pread(log.fd, req.limit, req.offset)
        except OSError:
            return b""  # the call just ended: its bytes are in log.data next time

    data = live()
    with trio.move_on_after(req.wait):
        while not data and task.state != TaskState.DONE:
            await trio.sleep(_LOG_POLL)
            data = live()
    done = task.state == TaskState.DONE
    if done and not data:
        data = live()
    end = req.offset + len(data)
    total = len(task.call_log.data) if task.call_log is not None else 0
    return LogChunk(data, end, done and end >= total).to_wire()


def _size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return -1


def read_progress(node: NodeView, body: object) -> dict:
    """`progress` {jobs} -> ProgressReply for those of them running here."""
    out = {}
    for job in ProgressAsk.from_wire(body).jobs:
        task = node.tasks.get(job)
        if task is None or task.state == TaskState.DONE:
            continue
        path = progress_path(node.data_dir, task)
        got = read_latest(path) if path is not None else None
        if got is not None:
            out[job] = got
    return ProgressReply(out).to_wire()
