"""The Python client: submit jobs to a coordinator and get their outputs.

Usable from plain synchronous code, as a Dask user would expect::

    from weft.actors.client import Client

    with Client("tcp://127.0.0.1:5570") as client:
        a = client.submit("weft.actors.builtins:concat", x="1", y="2")
        b = client.submit("weft.actors.builtins:concat", x=a, y="3")   # a's output feeds b
        print(b.result(timeout=30))                                # b'123'
        futures = client.map("weft.actors.builtins:echo", ["a", "b", "c"], key="x")
        print([f.result() for f in futures])

A keyword argument that is a Future (or an ObjectRef) becomes an indirect
input: the job runs once that object exists and reads its bytes. A
pathlib.Path is a local file or directory, put first (`put`) and read by its
content. Anything else (str, bytes) is an immediate input.

The client runs a trio event loop in one background thread; every call is
handed to it. Calls that find the coordinator unreachable retry with backoff
for `retry_for` seconds (so a restarting coordinator costs time, not errors).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import trio

from weft.actors.model import JobSpec, SpecError, split_object_name
from weft.actors.putfiles import PutFiles
from weft.actors.resources import placement_fields
from weft.actors.storage.client import READ_TOKEN, read_all, read_chunks
from weft.actors.trees import is_manifest, object_of
from weft.actors.whoami import local_user
from weft.bus.errors import BusError, Busy, CallTimeout, RemoteError
from weft.bus.peers import PeerPool
from weft.bus.rpc import Peer, PeerClosed
from weft.protocol.enums import TERMINAL_JOB_STATES
from weft.protocol.follow import LogChunk, LogRead, ProgressAsk, ProgressReply
from weft.protocol.jobs import (
    Cancel,
    DeleteJobs,
    FlowPart,
    Gc,
    GcReply,
    GroupRef,
    ListJobs,
    Locate,
    LocateReply,
    NodeDrain,
    Pause,
    Status,
    Submit,
    SubmitReply,
    Wait,
    WaitReply,
    final_state,
)
from weft.protocol.submission import TrySubmitReply
from weft.runtime.configfile import client_security, default_coordinator
from weft.runtime.node import new_node_id

from .children import adopt
from .future import Future, JobFailed, ObjectRef, _Manifest
from .submitpipe import batches, map_batches, pipelined, submit_body

# How long one follow call waits on the coordinator for new log bytes.
_FOLLOW_WAIT = 10.0


# Jobs per submit call of `map`. Each call waits out its journal commit and a
# turnaround before the next is sent (one in flight: submitpipe.py), and part
# of that is per call, not per job: 10,000 took 100,000 jobs at a median
# 56,950 against 48,993 jobs/s for 5,000 (11 runs each, docs/performance.md).
_MAP_BATCH = 10_000
# Jobs per `wait` or `status` call: their answer stays far below the message size limit.
_WAIT_PAGE = 50_000


def _callable_name(fn: Any) -> str:
    if isinstance(fn, str):
        return fn
    module = getattr(fn, "__module__", None)
    qual = getattr(fn, "__qualname__", "")
    if not module or module == "__main__" or "." in qual or "<" in qual:
        raise ValueError(
            f"{fn!r} cannot be run by a worker: pass a top-level function of an importable module, or 'module:function'"
        )
    return f"{module}:{qual}"


class Client(PutFiles):
    def __init__(self, endpoint: str | None = None, *, timeout: float = 10.0, retry_for: float = 60.0,
                 key: str | Path | None = None) -> None:
        """`key`: this client's key file on a secure cluster (default $WEFT_KEY, else the configuration
        file's [client] key, else none: in the clear). The endpoint by default: $WEFT_COORDINATOR (inside
        a job, the cluster running it: children.py), else the configuration file, else the default."""
        self.endpoint = endpoint or default_coordinator()
        self.security = client_security(key)
        self.timeout = timeout
        self.retry_for = retry_for
        self.node_id = new_node_id("client")
        self._token: trio.lowlevel.TrioToken | None = None
        self._ready = threading.Event()
        self._stop: trio.Event | None = None
        self._error: BaseException | None = None
        self._pool: PeerPool | None = None
        self._thread = threading.Thread(target=self._thread_main, name="weft-client", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error

    # -- the loop thread ---------------------------------------------------------
    def _thread_main(self) -> None:
        try:
            trio.run(self._main)
        except BaseException as e:  # surfaced to the constructor
            self._error = e
            self._ready.set()

    async def _main(self) -> None:
        self._stop = trio.Event()
        async with trio.open_nursery() as nursery:
            self._nursery = nursery  # where a submit's batch in flight runs (submitpipe.py)
            self._pool = PeerPool(self.node_id, nursery, timeout=self.timeout, security=self.security)
            self._token = trio.lowlevel.current_trio_token()
            self._ready.set()
            await self._stop.wait()
            self._pool.close()
            nursery.cancel_scope.cancel()

    def _run(self, afn: Callable[..., Any], *args: Any) -> Any:
        if self._token is None or not self._thread.is_alive():
            raise RuntimeError("client is closed")
        return trio.from_thread.run(afn, *args, trio_token=self._token)

    def _run_sync(self, fn: Callable[..., Any], *args: Any) -> Any:
        if self._token is None or not self._thread.is_alive():
            raise RuntimeError("client is closed")
        return trio.from_thread.run_sync(fn, *args, trio_token=self._token)

    def close(self) -> None:
        if self._token is not None and self._thread.is_alive():
            trio.from_thread.run_sync(self._stop.set, trio_token=self._token)
            self._thread.join(5)
        self._token = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- calls ---------------------------------------------------------------------
    async def _call(self, op: str, body: Any, *, timeout: float | None = None, retry_for: float | None = None) -> Any:
        """Call the coordinator, retrying while it is unreachable."""
        peer: Peer = self._pool.get(self.endpoint)
        deadline = trio.current_time() + (self.retry_for if retry_for is None else retry_for)
        backoff = 0.2
        auth_until = min(deadline, trio.current_time() + 5.0)  # (a job's credential: below)
        while True:
            try:
                return await peer.call(op, body, timeout=timeout or self.timeout, retry_busy=False)
            except Busy as e:
                # Past its bound: wait as long as it asks (or back off), then again.
                wait = retry_hint(e.message) or backoff
                if trio.current_time() + wait > deadline:
                    raise
                await trio.sleep(wait)
                backoff = min(backoff * 2, 5.0)
            except (CallTimeout, PeerClosed) as e:
                if trio.current_time() + backoff > deadline:
                    raise BusError(
                        f"coordinator at {self.endpoint} is unreachable ({e.message})", code="unreachable"
                    ) from None
                await trio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                peer = self._pool.get(self.endpoint)
            except BusError as e:
                # A job's credential is admitted once its node's start answer reached the coordinator,
                # which a quick command may beat: a few tries more (actors/coordinator/credentials.py).
                if e.code != "auth-failed" or getattr(self.security, "identity", None) is None \
                        or self.security.identity.role != "job" or trio.current_time() + 0.2 > auth_until:
                    raise
                await trio.sleep(0.2)

    def call(self, op: str, body: Any = None, **kw: Any) -> Any:
        return self._run(lambda: self._call(op, body, **kw))

    # -- jobs ------------------------------------------------------------------------
    def spec(
        self,
        fn: Any,
        /,
        *,
        outputs: Sequence[str] | None = None,
        name: str | None = None,
        priority: int = 0,
        time_limit: float | None = None,
        timeout: float | None = None,
        groups: Sequence[str] = (),
        max_cancellation_time: float | None = None,
        retries: int = 0,
        retry_delay: float | None = None,
        pending_timeout: float | None = None,
        on_exit: dict[str, str] | Sequence[str] | None = None,
        cpus: int | None = None,
        memory: int | str | None = None,
        size: str | None = None,
        host: str | None = None,
        prefer_host: str | None = None,
        node: str | None = None,
        job_class: str | None = None,
        deadline: float | str | None = None,
        **inputs: Any,
    ) -> JobSpec:
        """Build a job spec: `fn` is argv (a list) for a command, else a callable.

        `time_limit` is how long the job may run, in seconds (`timeout` is its
        older name). `retries`: times its own failures (non-zero exit, crash,
        time limit) are retried, the first `retry_delay` seconds after (1 by
        default), each next twice as late. `pending_timeout`: seconds it may
        wait to start before it fails `pending-timeout`. `on_exit`: exit
        actions, {"1": "succeed", "timed-out": "retry", "crashed":
        "submit:cleanup.toml"} (or ["1=succeed", ...]); a flow file is read
        now, relative to the current directory.
        `groups` label it (`cancel(groups=...)`, `pause(group)`);
        `max_cancellation_time` is how long a cancelled command gets between
        SIGTERM and SIGKILL (default 10 s).
        Placement (docs/scheduling.md): `cpus`, `memory` (bytes or "512M")
        or `size` ("tiny", "small", "medium", "large"), `host` (required;
        "local": this machine), `prefer_host`, `node` (pinned), `job_class`
        ("batch" or "workorder"), `deadline` (epoch seconds, ISO or "+30m")."""
        if timeout is not None and time_limit is not None:
            raise SpecError("give time_limit or its older name timeout, not both")
        timeout = time_limit if time_limit is not None else timeout
        immediate: dict[str, str | bytes] = {}
        refs: dict[str, str] = {}
        for k, v in inputs.items():
            if isinstance(v, Future):
                refs[k] = v.key
            elif isinstance(v, ObjectRef):
                refs[k] = v.name
            elif isinstance(v, Path):  # a local file or tree: put now, read by its content
                refs[k] = object_of(self.put(v))
            elif isinstance(v, str | bytes):
                immediate[k] = v
            elif isinstance(v, int | float) and not isinstance(v, bool):
                immediate[k] = str(v)
            else:
                raise TypeError(f"input {k!r}: pass str, bytes, a number, a Future, an ObjectRef or a Path, "
                                f"not {type(v).__name__}")
        more: dict[str, Any] = {"retries": retries, "retry_delay": retry_delay, "pending_timeout": pending_timeout,
                                "groups": list(groups) if groups else (), "cancel_time": max_cancellation_time}
        more.update(placement_fields(cpus=cpus, memory=memory, size=size, host=host, prefer_host=prefer_host,
                                     node=node, job_class=job_class, deadline=deadline))
        if on_exit:
            from .flow import parse_on_exit

            more["on_exit"] = parse_on_exit(dict(on_exit) if isinstance(on_exit, dict) else list(on_exit),
                                            Path.cwd(), what="on_exit")
        if isinstance(fn, list | tuple):
            return JobSpec(command=list(fn), inputs=immediate, refs=refs, outputs=list(outputs or ["stdout"]),
                           name=name, priority=priority, timeout=timeout, **more)
        return JobSpec(call=_callable_name(fn), inputs=immediate, refs=refs, outputs=list(outputs or ["result"]),
                       name=name, priority=priority, timeout=timeout, **more)

    def submit(self, fn: Any, /, *, fail_fast: bool = False, **kw: Any) -> Future:
        return self.submit_specs([self.spec(fn, **kw)], fail_fast=fail_fast)[0]

    def submit_specs(self, specs: Iterable[JobSpec], *, batch: int = 5000, replace: bool = False,
                     fail_fast: bool = False, flow: str | None = None,
                     names: Sequence[str] | None = None, keep: dict[str, str] | None = None,
                     secret_inputs: dict[str, str] | None = None) -> list[Future]:
        """Submit jobs. A named job whose name is taken by other work (command
        or callable, inputs, outputs) is refused unless `replace`, which makes
        it that name's next version (`NAME@2`, ...; `NAME` means the newest).
        `fail_fast`: the first of these jobs to fail cancels the others still
        queued or running. `flow` and `names`: the flow file they are and
        each one's name in it, so `FLOW:NAME` finds them (status, wait, get);
        `keep`: names of the flow's earlier jobs that stand for this submission's
        (not submitted again: depcache.py) -> their ids. `secret_inputs`: NAME -> value,
        environment variables of every job, kept out of specs, logs and status (docs/security.md)."""
        specs = adopt(list(specs))  # inside a running job: its children
        wires = ([s.to_wire() for s in chunk] for chunk in batches(specs, batch))
        return self._submit_batches(wires, replace=replace, fail_fast=fail_fast, flow=flow,
                                    names=names, keep=keep, secret_inputs=secret_inputs)

    def _submit_batches(self, chunks: Iterator[list[dict[str, Any]]], *, replace: bool = False, fail_fast: bool = False,
                        flow: str | None = None, names: Sequence[str] | None = None,
                        keep: dict[str, str] | None = None,
                        secret_inputs: dict[str, str] | None = None) -> list[Future]:
        """Submit batches of specs on the wire in order, the next one built
        while the one before is taken (submitpipe.py)."""
        futures: list[Future] = []
        submission = secrets.token_hex(8) if fail_fast else None
        owner = None if self.security else local_user()

        def bodies() -> Iterator[dict[str, Any]]:
            done = 0
            for part, chunk_specs in enumerate(chunks):
                flow_part = None
                if flow is not None and names is not None:
                    flow_part = FlowPart(flow, list(names[done:done + len(chunk_specs)]), part,
                                         dict(keep or {}) if part == 0 else {})
                done += len(chunk_specs)
                yield submit_body(chunk_specs, Submit([], replace, flow_part, submission, owner=owner,
                                                      secrets=secret_inputs))

        def answer(reply: Any) -> None:
            futures.extend(Future(self, j.job, j.outputs, j.cached, j.joined, j.differs)
                           for j in SubmitReply.from_wire(reply).jobs)

        pipelined(self, bodies(), answer, timeout=max(self.timeout, 60.0))
        return futures

    def submit_flow(self, path: str | Path, *, fail_fast: bool = False, replace: bool = False) -> dict[str, Future]:
        """Submit a flow file (as `weft submit --file`): its job names -> their futures.
        Its local paths (`@./src`) are stored first; jobs whose files read
        last time are unchanged are stood for by the earlier job (depcache.py)."""
        from .depcache import submit_flow
        from .flow import load_named_flow
        from .localinputs import collecting

        with collecting() as local:
            name, flow = load_named_flow(Path(path))
        if local:
            self.put_scans(local.values())
        futures = submit_flow(self, Path(path), flow, local, replace=replace, fail_fast=fail_fast, flow_name=name)
        return dict(zip([n for n, _ in flow], futures, strict=True))
    def submit_batch(self, specs: Iterable[JobSpec], *, queue: bool = True,
                     replace: bool = False) -> list[Future] | dict[str, Any]:
        """`submit_specs`, or with `queue=False` a try-submit: only what can
        start now starts, the rest is not kept, and the answer is
        {"started": [job id], "rejected": [job id], "slots": {size: count}}
        (what still fits, by size class: tiny, small, medium, large)."""
        if queue:
            return self.submit_specs(specs, replace=replace)
        specs = adopt(list(specs))
        chunks = list(batches(specs, max(1, len(specs))))  # (checked as any submit)
        if len(chunks) > 1:
            raise SpecError("a try-submit is answered in one message: these jobs do not fit in one; send fewer")
        r = self.call("submit", Submit(specs, replace, queue=False, owner=None if self.security else local_user()).to_wire(),
                      timeout=max(self.timeout, 60.0))
        return TrySubmitReply.from_wire(r).to_wire()

    def map(self, fn: Any, items: Iterable[Any], *, key: str = "x", **kw: Any) -> list[Future]:
        """One job per item, the item given as input `key`. Specs are made a
        batch at a time, the next while the coordinator takes the one before:
        a bad item is refused with its number, and the batches before it stand."""
        def make(item: Any) -> JobSpec:  # (adopted: inside a running job, its children)
            return adopt([self.spec(fn, **{key: item}, **kw)])[0]

        return self._submit_batches(map_batches(make, items, key, _MAP_BATCH))

    def status(self, jobs: Sequence[str | Future], *, attempts: bool = False) -> list[dict[str, Any]]:
        """Each job's view; with `attempts`, its `attempt_list` too (every
        attempt: n, node, started, ended, outcome, exit_code, signal, code, detail)."""
        ids = [j.job if isinstance(j, Future) else j for j in jobs]
        out: list[dict[str, Any]] = []
        for at in range(0, max(len(ids), 1), _WAIT_PAGE):
            out += self.call("status", Status(ids[at:at + _WAIT_PAGE], attempts=attempts).to_wire())["jobs"]
        return out

    def wait(self, futures: Sequence[Future | str], timeout: float | None = None) -> list[dict[str, Any]]:
        """Wait for all; returns their statuses. Raises TimeoutError."""
        ids = [f.job if isinstance(f, Future) else f for f in futures]
        deadline = None if timeout is None else time.monotonic() + timeout
        result: dict[str, dict] = {}
        remaining = list(dict.fromkeys(ids))
        while remaining:
            step = 30.0 if deadline is None else max(0.0, min(30.0, deadline - time.monotonic()))
            # At most _WAIT_PAGE jobs a call: a million jobs' answer would pass
            # the message size limit (its connection dropped, nothing said).
            asking = remaining[:_WAIT_PAGE]
            r = WaitReply.from_wire(self.call("wait", Wait(asking, step, rows=True).to_wire(),
                                              timeout=step + self.timeout))
            # By position: a name (`NAME`, `NAME@2`) is answered with its version's job id.
            for asked, st in zip(asking, r.jobs, strict=False):
                if final_state(st) in TERMINAL_JOB_STATES:
                    result[asked] = st
            remaining = [j for j in remaining if j not in result]
            if remaining and deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"{len(remaining)} of {len(ids)} jobs still unfinished after {timeout:g}s")
        return [result[j] for j in ids]

    def cancel(self, jobs: Sequence[str | Future] = (), *, dependents: bool = True,
               groups: Sequence[str] = ()) -> list[dict[str, Any]]:
        """Cancel jobs and every member of `groups`; their dependents too unless
        `dependents=False`. A running job is `cancelling` until its node
        confirms it stopped. Returns their views."""
        ids = [j.job if isinstance(j, Future) else j for j in jobs]
        return self.call("cancel", Cancel(ids, dependents, list(groups)).to_wire())["jobs"]

    def jobs(self, *, states: Sequence[str] = (), group: str | None = None, since: float | None = None,
             limit: int = 10000) -> list[dict[str, Any]]:
        """Job views in submit order (the newest `limit`), filtered by state,
        group and submit time (wall-clock seconds)."""
        return self.call("jobs", ListJobs(list(states), group, since, limit).to_wire())["jobs"]

    def pause(self, group: str | None = None) -> dict[str, Any]:
        """Start no new job (of `group`, or at all); returns what is paused."""
        return self.call("pause", Pause(group).to_wire())["paused"]

    def resume(self, group: str | None = None) -> dict[str, Any]:
        return self.call("resume", Pause(group).to_wire())["paused"]

    def groups(self) -> dict[str, dict[str, int]]:
        """Every group: its members' counts by state."""
        return self.call("groups", {})["groups"]

    def group(self, name: str) -> dict[str, Any]:
        """One group: counts by state and the members not finished."""
        return self.call("group", GroupRef(name).to_wire())

    def delete(self, jobs: Sequence[str | Future], *, force: bool = False) -> dict[str, Any]:
        """Forget finished jobs with their outputs and logs (refused for one an
        unfinished job still reads, unless `force`: those fail); what was freed."""
        ids = [j.job if isinstance(j, Future) else j for j in jobs]
        return GcReply.from_wire(self.call("delete", DeleteJobs(ids, force).to_wire(), timeout=120.0)).to_wire()

    def gc(self, keep: float | None = None) -> dict[str, Any]:
        """Collect now: forget finished jobs older than `keep` seconds (default
        the coordinator's --keep) that nothing unfinished needs; what was freed."""
        return GcReply.from_wire(self.call("gc", Gc(keep).to_wire(), timeout=600.0)).to_wire()

    def prune(self, keep_recent: float = 3600.0, *, dry_run: bool = False) -> dict[str, Any]:
        """Delete the content objects (`put`, path inputs, directory outputs'
        files) nothing the coordinator keeps refers to, finished more than
        `keep_recent` seconds ago (an admin's call); `dry_run`: only say which."""
        from weft.protocol.objects import Prune, PruneReply

        body = Prune(keep_recent, dry_run).to_wire()
        return PruneReply.from_wire(self.call("prune", body, timeout=600.0)).to_wire()

    def nodes(self) -> list[dict[str, Any]]:
        return self.call("nodes", {})["nodes"]

    def drain(self, node: str, *, undo: bool = False) -> dict[str, Any]:
        """Stop new work on a node (a storage node's objects are copied away);
        `undo`: undrain it. Returns the node's view."""
        return self.call("undrain" if undo else "drain", NodeDrain(node).to_wire())

    # -- following a job -----------------------------------------------------------
    def progress(self, jobs: Sequence[str | Future]) -> dict[str, tuple[float, str]]:
        """job -> (percent, message): the latest progress of those running that reported some."""
        ids = [j.job if isinstance(j, Future) else j for j in jobs]
        return ProgressReply.from_wire(self.call("progress", ProgressAsk(ids).to_wire())).progress

    def logs(self, job: str | Future, follow: bool = False, *, offset: int = 0) -> bytes | Iterator[bytes]:
        """A job's log (stdout and stderr interleaved as written).

        Without `follow`: the bytes there are now. With it: an iterator of
        chunks as the job writes them, ending when the job has ended.
        """
        jid = job.job if isinstance(job, Future) else job
        if follow:
            return self._follow_log(jid, offset)
        out = bytearray()
        while True:
            r = self._log_chunk(jid, offset, 0.0)
            out += r.data
            offset = r.offset
            if r.done or not r.data:
                return bytes(out)

    def _log_chunk(self, job: str, offset: int, wait: float) -> LogChunk:
        return LogChunk.from_wire(self.call("logs", LogRead(job, offset, wait).to_wire(), timeout=wait + 20.0))

    def _follow_log(self, job: str, offset: int) -> Iterator[bytes]:
        while True:
            r = self._log_chunk(job, offset, _FOLLOW_WAIT)
            offset = r.offset
            if r.data:
                yield r.data
            if r.done:
                return

    def stats(self) -> dict[str, Any]:
        return self.call("stats", {})

    # -- objects ---------------------------------------------------------------------
    def locate(self, name: str) -> dict[str, Any]:
        split_object_name(name)
        return self.call("locate", Locate(name).to_wire())

    def get(self, name: str | ObjectRef | Future) -> bytes:
        """An object's bytes (it must be finished); tries each copy in turn.
        An executable file's are its file's; a directory tree is refused
        (TreeError: see get_tree)."""
        if isinstance(name, Future):
            name = name.key
        elif isinstance(name, ObjectRef):
            name = name.name
        raw = self._where(object_of(name))
        where = LocateReply.from_wire(raw)
        data = where.data
        if data is None:
            data = self._run(lambda: self._from_copies(where, lambda peer: read_all(peer, where.name), raw.get("rt")))
        return self._resolved_bytes(where, data) if is_manifest(data) else data

    def get_to(self, name: str, write: Callable[[bytes], Any]) -> int:
        """Stream an object's bytes to `write` chunk by chunk; returns the size."""
        raw = self._where(object_of(name))
        where = LocateReply.from_wire(raw)
        if where.data is not None:
            data = self._resolved_bytes(where, where.data) if is_manifest(where.data) else where.data
            write(data)
            return len(data)

        async def pump(peer: Peer) -> int:
            n = 0
            try:
                async for chunk in read_chunks(peer, where.name):
                    if not n and is_manifest(chunk):  # a tree, or an executable file
                        raise _Manifest(await read_all(peer, where.name))
                    await trio.to_thread.run_sync(write, bytes(chunk))
                    n += len(chunk)
            except (CallTimeout, PeerClosed) as e:
                if n:  # bytes already went out: another copy cannot resume them
                    raise BusError(f"storage {peer.endpoint} went away after {n} bytes of {name!r}: {e}") from e
                raise
            return n

        try:
            return self._run(lambda: self._from_copies(where, pump, raw.get("rt")))
        except _Manifest as m:
            data = self._resolved_bytes(where, m.data)
            write(data)
            return len(data)

    def _where(self, name: str) -> dict[str, Any]:
        where = self.locate(name)
        # (An empty output has no copy: the coordinator holds it, its bytes come along.)
        if where["state"] != "finished" or not (where["storage"] or where.get("data") == b""):
            raise BusError(f"object {name!r} is not available (state {where['state']})", code="not-finished")
        return where

    async def _from_copies(self, where: LocateReply, read: Callable[[Peer], Any], token: str | None = None) -> Any:
        """`read` from the first copy that answers: a storage node that died
        since the coordinator last heard from it is skipped, not fatal. `token`: the coordinator's
        read token (a user key's locate), sent with each read (actors/storage/readtoken.py)."""
        reset = READ_TOKEN.set(token)
        try:
            *others, last = where.copies
            for endpoint in others:
                try:
                    return await read(self._pool.get(endpoint))
                except (CallTimeout, PeerClosed):
                    self._pool.drop(endpoint)
            return await read(self._pool.get(last))
        finally:
            READ_TOKEN.reset(reset)


__all__ = ["Client", "Future", "ObjectRef", "JobFailed", "RemoteError"]


def retry_hint(message: str) -> float | None:
    """The seconds a busy answer asks to wait ("...; retry in 2s"), if it says."""
    _, sep, tail = message.rpartition("retry in ")
    if not sep or not tail.endswith("s"):
        return None
    try:
        seconds = float(tail[:-1])
    except ValueError:
        return None
    return seconds if 0 <= seconds <= 3600 else None
