"""The compute node: turns jobs into tasks, reads inputs, writes outputs.

A task is identified by its job: starting a job already in the table answers
with the existing task. Tasks wait for one of `slots` (FIFO), fetch their
indirect inputs from storage, run (a command in its own process group, or a
callable in the warm worker pool), and stream their outputs to storage. A task
is `done` only after storage acknowledged every finish. Every state change is
an event on the node's queue; compute calls storage only (the deadlock rule).

Outcomes: `failed-hard` is the job's own fault (non-zero exit, exception,
missing declared output); `failed-soft` is the infrastructure's (storage
unreachable, an input missing or unfinished, the node shutting down), and the
coordinator may run the job again elsewhere.
"""

from __future__ import annotations

import logging
import time
from functools import partial
from pathlib import Path
from typing import Any

import trio
import trio.lowlevel

from weft.actors.delegate import Delegate
from weft.actors.model import SpecError
from weft.actors.resources import show_size
from weft.actors.storage.client import (
    LATENCY,
)
from weft.bus.errors import BusError
from weft.bus.rpc import CallContext
from weft.protocol.enums import ErrorCode, EventKind, Outcome, StopReason, TaskState
from weft.protocol.probe import Probe, ProbeReply
from weft.protocol.tasks import (
    DeleteTasks,
    DeleteTasksReply,
    Refused,
    Start,
    StartMany,
    TaskInventory,
    TaskRef,
)
from weft.runtime.node import Node, NodeConfig

from . import credential, prefork, runner
from .ahead import Ahead
from .follow import keep_log, last_line, log_tail, read_log, read_progress
from .isolation import choose as choose_sandbox
from .layout import Layout
from .memlimit import MEMORY_LIMIT, MemoryGuard
from .pool import (
    CallableError,
    CallableNotFound,
    CallLog,
    WorkerLost,
    WorkerPool,
    worker_env,
)
from .probe import Prober
from .resources import Resources, Withdrawn, default_cpus, default_host, default_memory
from .restore import Restore
from .runner import RunnerError, run_command
from .steal import WITHDRAWN, withdraw
from .task import (
    HardFailure,
    SoftFailure,
    Task,
    Unmet,
    callable_outputs,
    delegation_of,
    stop_grace,
)
from .taskdirs import TaskDirs
from .tasklog import TaskLog
from .transfers import Transfers
from .valuecache import ValueCache, serve_read

log = logging.getLogger("weft.compute")

# Unfinished tasks (running, queued, following) a node takes before it
# answers starts busy: far above what the coordinator sends ahead.
DEFAULT_MAX_QUEUED = 10_000


class ComputeNode(Ahead, Restore, Transfers, Layout, Node):
    role = "compute"

    def __init__(self, config: NodeConfig, *, slots: int | None = None, workers: int | None = None,
                 min_copies: int = 0, slow_after: float | None = None, max_queued: int = DEFAULT_MAX_QUEUED,
                 memory: int | None = None, host_name: str | None = None,
                 value_cache: int | None = None, isolation: str = "auto",
                 run_as: str | None = None, share: str | None = None) -> None:
        if config.data_dir is None:
            raise ValueError("a compute node needs a data directory")
        if min_copies < 0:
            raise ValueError("min_copies must be 0 (all replicas) or more")
        # Replicas whose finish a write waits for (0: every replica it still has).
        self.min_copies = min_copies
        if slow_after is not None:
            LATENCY.floor = slow_after  # the least latency bound of a storage node
        self.data_dir = Path(config.data_dir).resolve()
        self.slots = slots or default_cpus()  # the CPUs it offers
        self.host_name = host_name or default_host()
        self.sandbox = choose_sandbox(isolation, run_as, share, secure=config.security_mode == "curve")
        self.pool_size = workers or self.slots
        self._preforked: list[prefork.Prespawned] = []  # see before_run
        self.tasks: dict[str, Task] = {}
        # Admission: past this many unfinished tasks a start is answered busy
        # (the coordinator places it elsewhere), so a flood of starts cannot
        # grow the node's queue without bound.
        self.max_queued = max_queued
        self.unfinished = 0
        self.resources = Resources(self.slots, memory or default_memory())
        self.pool: WorkerPool | None = None
        self.values = ValueCache.sized(value_cache, self.resources.memory)  # stored outputs, for consumers
        self._task_nursery: trio.Nursery | None = None
        super().__init__(config)
        self.events.more_coming = self.resources.backlogged  # a busy node's ends gather (bus/events.py)
        self.memguard = MemoryGuard(self.node_id)
        (self.data_dir / "tasks").mkdir(parents=True, exist_ok=True)
        (self.data_dir / "progress").mkdir(exist_ok=True)  # callables' progress files
        self.tasklog = TaskLog(self.data_dir / "tasks.log")
        self.taskdirs = TaskDirs(self.data_dir / "tasks")
        self.pool_error: str | None = None
        # Storage endpoint -> when a call to it last failed for want of a connection.
        self._storage_failed: dict[str, float] = {}
        self.prober = Prober(worker_env())
        self._restore()

    def register(self) -> None:
        add = self.server.add
        add("start", self._op_start)
        add("start_many", self._op_start_many)
        add("result", self._op_result, bypass=True)
        add("list", self._op_list, bypass=True)
        add("delete", self._op_delete)
        add("cancel", self._op_cancel)
        add("probe", self._op_probe)
        add("withdraw", partial(withdraw, self))  # work stealing (steal.py)
        add("read", partial(serve_read, self))  # values in memory, for consumers on other nodes
        # Following a task (actors/compute/follow.py): asked only by someone watching.
        add("log", self._op_log, bypass=True)
        add("progress", self._op_progress, bypass=True)

    def describe(self) -> dict[str, Any]:
        return {"slots": self.slots, "busy": self.busy, "tasks": len(self.tasks),
                "unfinished": self.unfinished, "max_queued": self.max_queued, "host": self.host_name,
                "memory_limits": self.memguard.mode, "value_cache": self.values.view(),
                "isolation": self.sandbox.describe(), **self.resources.view()}

    @property
    def busy(self) -> int:
        return self.resources.used_cpus

    async def main(self, nursery: trio.Nursery) -> None:
        self._task_nursery = nursery
        if self.config.coordinator:
            # Jobs submit children through it (`weft submit` inside a job);
            # with beacon discovery they keep what the node inherited.
            runner.JOB_ENV["WEFT_COORDINATOR"] = self.config.coordinator
        nursery.start_soon(self.taskdirs.run)
        nursery.start_soon(self.memguard.run)
        self.sandbox.log_start()
        self.pool = WorkerPool(self.pool_size, progress_dir=str(self.data_dir / "progress"),
                               fresh=self.sandbox.fresh_callables, prespawned=self._preforked)
        # Warmed in the background: the node takes tasks (and says hello) at
        # once, and a callable that arrives first waits for its worker.
        nursery.start_soon(self._warm_pool)

    def before_run(self) -> None:
        # The pool's first workers, forked while the daemon is still one thread (prefork.py).
        if prefork.usable(self.config.security is not None, self.sandbox.fresh_callables):
            self._preforked = prefork.fork_workers(self.pool_size, worker_env(), str(self.data_dir / "progress"))
            self.prober.spare = prefork.fork_probe(worker_env())

    async def _warm_pool(self) -> None:
        try:
            await self.pool.__aenter__()
        except Exception as e:
            if self.pool._closed:
                return  # shut down while starting
            self.pool_error = f"its worker processes did not start: {e}"
            log.critical("compute node %s: %s; callable tasks will fail soft", self.node_id, self.pool_error)

    async def shutdown(self) -> None:
        for task in self.tasks.values():
            if task.scope is not None and task.state != TaskState.DONE:
                task.stop = StopReason.SHUTDOWN
                task.scope.cancel()
        # Give cancelled commands their SIGTERM grace before the pool goes.
        await trio.lowlevel.checkpoint()
        if self.pool is not None:
            await self.pool.__aexit__(None, None, None)
        self.tasklog.close()

    # -- ops ---------------------------------------------------------------------
    def _start(self, start: Start, logged: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        # The task's report, wired (a new task's `pending` event shares it). `logged`: a batch's
        # list its `started` record goes to, written by the caller in one write.
        task = Task.started_by(start)
        existing = self.tasks.get(task.job)
        if existing is not None:
            # Same job again: the existing task answers, unless it is a finished
            # earlier attempt and this is a newer one (higher fencing token).
            if existing.state != TaskState.DONE or task.token <= existing.token:
                return existing.summary()
        if self.unfinished >= self.max_queued:
            raise BusError(f"compute {self.node_id} is busy: {self.unfinished} tasks unfinished "
                           f"(its limit is {self.max_queued})", code=ErrorCode.BUSY)
        self.unfinished += 1
        self.tasks[task.job] = task
        self.values.forget_job(task.job)  # a new attempt: an older one's outputs may not be served
        if task.after:
            self._follow(task)
        record = {"job": task.job, "s": "started", "t": task.token, "spec": task.spec.to_wire(), "st": time.time()}
        if logged is None:
            self.tasklog.write(record)
        else:
            logged.append(record)
        wire = task.summary()  # one for its `pending` event and the answer (never changed after)
        self.events.append(EventKind.TASK, wire, urgent=False)
        self._task_nursery.start_soon(self._execute, task)
        return wire

    def _op_start(self, body: Any, ctx: CallContext) -> dict[str, Any]:
        self.fence(body)
        return self._start(Start.from_wire(body))

    def _op_start_many(self, body: Any, ctx: CallContext) -> dict[str, Any]:
        self.fence(body)
        wires: list[dict[str, Any]] = []  # StartManyReply's items, each wired once
        logged: list[dict[str, Any]] = []
        try:
            for item in StartMany.from_wire(body).tasks:
                if type(item) is not Refused:
                    try:
                        wires.append(self._start(item, logged))
                        continue
                    except (BusError, SpecError) as e:
                        item = Refused(item.job, e.code, str(e))
                wires.append(item.to_wire())
        finally:
            # Before the answer and before the tasks' events or their runs
            # (started soon, after this returns) can leave the node.
            self.tasklog.write_many(logged)
        return credential.with_keys(self, {"tasks": wires})  # (secure clusters)

    def _get(self, job: str) -> Task:
        task = self.tasks.get(job)
        if task is None:
            raise BusError(f"no task for job {job!r} on {self.node_id}", code=ErrorCode.MISSING)
        return task

    def _op_result(self, body: Any, ctx: CallContext) -> dict[str, Any]:
        return self._get(TaskRef.from_wire(body, "result").job).summary()

    def _op_list(self, body: Any, ctx: CallContext) -> dict[str, Any]:
        return TaskInventory(
            [t.report() for t in self.tasks.values()], self.events.next_seq, self.events.incarnation,
            self.slots, self.busy, self.resources.memory, self.host_name, self.sandbox.describe(),
            self.prober.known(),
        ).to_wire()

    def _op_delete(self, body: Any, ctx: CallContext) -> dict[str, Any]:
        self.fence(body)
        req = DeleteTasks.from_wire(body)
        jobs = req.jobs
        if req.single:
            self._get(jobs[0])
        deleted, running = [], []
        logged: list[dict[str, Any]] = []  # one write for the batch, below
        try:
            for job in jobs:
                task = self.tasks.get(job)
                if task is None:
                    continue
                if task.state != TaskState.DONE:
                    running.append(job)
                    continue
                del self.tasks[job]
                logged.append({"job": job, "s": "deleted"})
                if task.has_dir():
                    self.taskdirs.recycle(job)
                self.events.append(EventKind.DELETED, {"job": job}, urgent=False)
                deleted.append(job)
        finally:
            self.tasklog.write_many(logged)
        if running and len(jobs) == 1:
            raise BusError(f"task {running[0]!r} is still {self.tasks[running[0]].state}; cancel it first",
                           code=ErrorCode.RUNNING)
        return DeleteTasksReply(deleted, running).to_wire()

    def _op_cancel(self, body: Any, ctx: CallContext) -> dict[str, Any]:
        self.fence(body)
        task = self._get(TaskRef.from_wire(body, "cancel").job)
        if task.state != TaskState.DONE:
            task.cause = "cancelled by request"
            task.stop = StopReason.CANCEL
            if task.scope is not None:
                task.scope.cancel()
        return task.summary()

    async def _op_log(self, body: Any, ctx: CallContext) -> dict[str, Any]:
        return await read_log(self, body)

    def _op_progress(self, body: Any, ctx: CallContext) -> dict[str, Any]:
        return read_progress(self, body)

    async def _op_probe(self, body: Any, ctx: CallContext) -> dict[str, Any]:
        found, missing = await self.prober.probe(Probe.from_wire(body).modules)
        return ProbeReply(found, missing).to_wire()

    # -- execution -------------------------------------------------------------
    def _emit(self, task: Task) -> None:
        # Only an ended task wakes an urgent poller (the coordinator); the
        # steps before it ride along in the same answer.
        self.events.append(EventKind.TASK, task.summary(), urgent=task.state == TaskState.DONE)

    def _set_state(self, task: Task, state: TaskState) -> None:
        if state == TaskState.STORING:
            # Storing is I/O, not computation: the next task may use the slot.
            self._release(task)
        task.state = state
        self._emit(task)

    def _release(self, task: Task) -> None:
        if task.holding:
            task.holding = False
            self.resources.release(task)

    def _finish(self, task: Task, outcome: Outcome, cause: str | None = None, code: str | None = None) -> None:
        if task.state != TaskState.DONE:
            self.unfinished -= 1
        task.outcome = outcome
        if cause is not None:
            task.cause = cause
        task.code = code
        task.finished = time.time()
        self._log_done(task)
        self._set_state(task, TaskState.DONE)
        self._ended(task)

    async def _execute(self, task: Task) -> None:
        with trio.CancelScope() as scope:
            task.scope = scope
            if task.stop is not None:
                scope.cancel()  # cancelled before it got here
            try:
                first = False
                if task.after:
                    # Before taking a slot: waiting holds none.
                    await self._await_producers(task)
                    first = self._goes_first(task)
                spec = task.spec
                await self.resources.acquire(task, spec.cpus, spec.memory, force=spec.job_class == "workorder",
                                             first=first)
                task.holding = True
                try:
                    # Its slot time, reported with its end: it makes the run an
                    # attempt. The task log has it only once the run begins
                    # (the spawn's record, or a callable's inputs read): a task
                    # that a crash stopped while it read its inputs comes back
                    # as never run, not as an attempt that executed nothing.
                    task.started = time.time()
                    await self._run(task)
                finally:
                    self._release(task)
                await keep_log(self, task, failed=False)
                self._finish(task, Outcome.SUCCESS)
                if task.log_empty:
                    # Its outputs are stored, its log is empty: nothing in its
                    # directory is read again, so it is reused now rather than
                    # when the coordinator deletes the task (every 0.5 s: a
                    # new directory made per command in between).
                    self.taskdirs.recycle(task.job)
            except Withdrawn:
                self._finish(task, Outcome.FAILED_SOFT, f"withdrawn from {self.node_id} for an idle node", WITHDRAWN)
            except SoftFailure as e:
                task.unmet = isinstance(e, Unmet)
                await keep_log(self, task, failed=True)
                self._finish(task, Outcome.FAILED_SOFT, str(e), e.code)
            except HardFailure as e:
                task.tail = e.tail
                await keep_log(self, task, failed=True)
                self._finish(task, Outcome.FAILED_HARD, str(e), e.code)
            except trio.TooSlowError:
                await keep_log(self, task, failed=True)
                self._finish(task, Outcome.TIMED_OUT, f"ran longer than its timeout of {task.spec.timeout:g}s")
            except Exception as e:
                log.exception("task %s failed unexpectedly", task.job)
                self._finish(task, Outcome.FAILED_SOFT, f"internal error on {self.node_id}: {type(e).__name__}: {e}",
                             ErrorCode.INTERNAL)
        task.scope = None
        if scope.cancelled_caught:
            if task.stop == StopReason.SHUTDOWN:
                self._finish(task, Outcome.FAILED_SOFT, "compute node shutting down", ErrorCode.SHUTTING_DOWN)
            else:
                await keep_log(self, task, failed=True)  # readable like a failed job's
                self._finish(task, Outcome.CANCELLED)

    async def _run(self, task: Task) -> None:
        spec = task.spec
        if spec.refs and (spec.command is not None or len(task.inline) < len(task.inputs)):
            # (A callable whose every input is in memory already, a chain's
            # follower, reads nothing: no `fetching` step, one event less a hop.)
            self._set_state(task, TaskState.FETCHING)
        if spec.command is not None:
            workdir = self.taskdirs.take(task.job)
            input_files = await self._fetch_to_files(task, workdir / "inputs")
            self._set_state(task, TaskState.RUNNING)
            await self._run_command(task, workdir, input_files)
        else:
            kwargs: dict[str, Any] = dict(spec.inputs)
            if task.inputs:
                kwargs.update(await self._fetch_to_memory(task))
            else:  # nothing to read (a no-op): only its outputs' storage looked at
                await self._probe_task(task)
            self._set_state(task, TaskState.RUNNING)
            self.tasklog.write({"job": task.job, "r": task.started})  # (see _execute)
            try:
                await self._run_callable(task, kwargs)
            except (HardFailure, trio.TooSlowError):
                await self._inputs_durable(task)  # an input not made: Unmet instead (ahead.py)
                raise

    # -- running -------------------------------------------------------------------
    def _spawned(self, task: Task, pgid: int) -> None:
        self.tasklog.write({"job": task.job, "s": "started", "t": task.token, "pg": pgid, "r": task.started})
        if task.spec.memory is not None:
            self.memguard.limit(task, pgid, task.spec.memory)

    async def _run_command(self, task: Task, workdir: Path, input_files: dict[str, Path]) -> None:
        spec = task.spec
        stdout_writer = None
        if "stdout" in spec.outputs:
            stdout_writer = self._writer(task, "stdout")
        printed = False

        async def on_stdout(chunk: bytes) -> None:
            nonlocal printed
            printed = True
            try:
                await stdout_writer.write(chunk)
            except BusError as e:
                raise self._storage_soft(e, "output 'stdout'") from None

        try:
            result = await run_command(
                spec, workdir, input_files=input_files, job=task.job, grace=lambda: stop_grace(task),
                on_spawn=lambda pgid: self._spawned(task, pgid), secrets=task.secrets,
                on_stdout=on_stdout if stdout_writer is not None else None,
                sandbox=self.sandbox if self.sandbox.active else None,
                capture=False,  # stdout streams to storage (on_stdout): no file of it here
            )
        except RunnerError as e:
            if e.code == "spawn-limit":  # out of processes here: another try may work
                raise SoftFailure(e.message, e.code) from None
            # e.g. a command that does not exist: the job's fault.
            raise HardFailure(e.message, e.code) from None
        except SpecError as e:
            # e.g. an input that cannot be an environment variable.
            raise HardFailure(str(e), e.code) from None
        finally:
            over = spec.memory is not None and self.memguard.exceeded(task)
        if over:
            raise HardFailure(f"command {spec.command[0]!r} used more than its memory limit of "
                              f"{show_size(spec.memory)} and was killed", MEMORY_LIMIT)
        task.exit_code = result.exit_code
        task.signal = None if result.timed_out else result.signal
        task.log_same = result.log_is_stdout and "stdout" in spec.outputs
        task.log_empty = result.log_empty
        accepted = result.accepted(spec)  # exit 0, or an exit action's `succeed`
        if result.timed_out and not accepted:
            raise trio.TooSlowError
        if not accepted:
            how = f"signal {result.signal}" if result.signal else f"exit code {result.exit_code}"
            raise HardFailure(f"command {spec.command[0]!r} failed with {how}{last_line(workdir, stdout_tail=result.stdout_tail)}",
                              tail=None if task.log_same else log_tail(workdir))
        delegated = None
        if result.delegation is not None:
            task.delegation = result.delegation
            delegated = self._delegated_output(task)
        self._set_state(task, TaskState.STORING)
        for name in spec.outputs:
            if name == delegated:
                continue
            if name == "stdout":
                await self._close(task, stdout_writer, name, empty=not printed)
                continue
            path = result.outputs.get(name)
            if path is None:
                raise HardFailure(f"command did not write declared output {name!r} to $WEFT_OUTPUTS/{name}",
                                  "output-missing")
            await self._upload_file(task, name, path)
        await self._keep_deps(task, workdir)  # $WEFT_DEPFILE (layout.py)

    async def _run_callable(self, task: Task, kwargs: dict[str, Any]) -> None:
        spec = task.spec
        try:
            task.call_log = CallLog()
            value = await self.pool.run(spec.call, kwargs, timeout=spec.timeout,
                                        log=task.call_log, grace=lambda: stop_grace(task),
                                        env={**runner.JOB_ENV, "WEFT_JOB_ID": task.job})
        except trio.ClosedResourceError:
            raise SoftFailure(f"no worker process on {self.node_id}: {self.pool_error or 'shutting down'}",
                              ErrorCode.WORKER_LOST) from None
        except CallableNotFound as e:
            raise HardFailure(str(e)) from None
        except CallableError as e:
            raise HardFailure(f"{spec.call} raised {e}") from None
        except WorkerLost as e:
            raise HardFailure(f"{spec.call} killed its worker process: {e}") from None
        delegated = None
        if isinstance(value, Delegate):
            try:
                task.delegation = delegation_of(value)
            except SpecError as e:
                raise HardFailure(f"{spec.call} returned an invalid delegation: {e}") from None
            delegated = self._delegated_output(task)
            value = None
        outputs = callable_outputs(spec, value)
        self._publish(task, outputs)  # followers here may start on them now (ahead.py)
        if task.unsure or task.call_log.data or any(outputs.get(name) for name in spec.outputs):
            self._set_state(task, TaskState.STORING)
        else:
            # Nothing to wait for or write (a no-op: empty outputs, held by the coordinator) and `done` follows
            # in this wake-up: a `storing` event would say nothing. (The slot goes back as _run returns.)
            task.state = TaskState.STORING
        if task.unsure:
            await self._inputs_durable(task)  # no output before its inputs are durable
        for name in spec.outputs:
            if name == delegated:
                continue
            if name not in outputs:
                raise HardFailure(f"{spec.call} did not return declared output {name!r}")
            if not outputs[name]:
                # b"" (a no-op's result): held by the coordinator, no put, no fsync.
                self._hold_empty(task, name)
                continue
            w = self._writer(task, name)
            try:
                await w.write(outputs[name])
            except BusError as e:
                raise self._storage_soft(e, f"output {name!r}") from None
            await self._close(task, w, name, outputs[name])

    def _delegated_output(self, task: Task) -> str:
        try:
            return task.delegation.handed_output(task.spec)
        except SpecError as e:
            raise HardFailure(f"invalid delegation: {e}") from None
