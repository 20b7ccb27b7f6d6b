"""Commands that talk to one node directly: `weft task ...` and `weft object ...`."""

from __future__ import annotations

import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from .app import app
from .common import check_endpoint, emit_json, fail

# trio, the bus and the messages are imported by the commands that use them:
# every `weft` invocation imports this module to register its commands.
if TYPE_CHECKING:
    from weft.bus.rpc import Peer

task_app = typer.Typer(help="Drive one compute node directly.", no_args_is_help=True)
object_app = typer.Typer(help="Read objects from one storage node directly.", no_args_is_help=True)
app.add_typer(task_app, name="task")
app.add_typer(object_app, name="object")

ComputeOpt = typer.Option(..., "--compute", help="Compute node endpoint.")
StorageOpt = typer.Option(..., "--storage", help="Storage node endpoint.")
JsonOpt = typer.Option(False, "--json", help="Machine-readable output on stdout.")


def with_peer(endpoint: str, what: str, fn: Callable[[Peer], Awaitable[Any]]) -> Any:
    import trio

    from weft.bus.peers import connect
    from weft.runtime.node import new_node_id

    check_endpoint(endpoint, f"{what} endpoint")

    async def main() -> Any:
        async with connect(endpoint, new_node_id("cli"), timeout=5.0) as peer:
            return await fn(peer)

    return trio.run(main)


HELLO = [sys.executable, "-c", "import os; print('hello from weft: ' + os.environ['WEFT_INPUT_MESSAGE'])"]


@task_app.command("create")
def task_create(
    job: str = typer.Argument(..., metavar="JOB", help="Built-in job to start: hello."),
    message: str = typer.Option("hello, world", "--message", help="The hello job's message."),
    storage: str = typer.Option(None, "--storage", help="Store the job's stdout as an object on this storage node."),
    compute: str = ComputeOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Start a built-in job on a compute node; print its job id and the node."""
    from weft.actors.model import JobSpec
    from weft.bus.peers import connect
    from weft.protocol.objects import Create
    from weft.protocol.tasks import Start

    if job != "hello":
        fail(f"unknown built-in job {job!r}; available: hello")
    spec = JobSpec(command=HELLO, inputs={"MESSAGE": message}, outputs=["stdout"] if storage else [])
    jid = f"hello-{spec.job_id()[1:13]}-{int(time.time() * 1000) % 10**8}"

    async def go(peer: Peer) -> Any:
        outputs = {}
        if storage:
            check_endpoint(storage, "storage endpoint")
            async with connect(storage, peer.node_id, timeout=5.0) as s:
                await s.call("create", Create(f"{jid}/stdout").to_wire())
            outputs = {"stdout": [storage]}
        r = await peer.call("start", Start(jid, spec, outputs=outputs).to_wire())
        info = await peer.call("info", {})
        return r, info

    r, info = with_peer(compute, "compute", go)
    if as_json:
        emit_json({"job": jid, "node": info["node"], "endpoint": info["endpoint"], "task": r})
    else:
        typer.echo(f"{jid}\t{info['node']}\t{info['endpoint']}")


def _print_task(t: dict[str, Any]) -> None:
    line = f"{t['job']}  {t['state']}"
    if t.get("outcome"):
        line += f"  {t['outcome']}"
    if t.get("exit") is not None:
        line += f"  exit {t['exit']}"
    if t.get("cause"):
        line += f"  {t['cause']}"
    typer.echo(line)


@task_app.command("result")
def task_result(job: str, compute: str = ComputeOpt, as_json: bool = JsonOpt) -> None:
    """State, outcome and cause of a task."""
    from weft.protocol.tasks import TaskRef

    t = with_peer(compute, "compute", lambda p: p.call("result", TaskRef(job).to_wire()))
    emit_json(t) if as_json else _print_task(t)


@task_app.command("delete")
def task_delete(job: str, compute: str = ComputeOpt) -> None:
    """Delete a finished task's results."""
    from weft.protocol.tasks import DeleteTasks, DeleteTasksReply

    r = DeleteTasksReply.from_wire(
        with_peer(compute, "compute", lambda p: p.call("delete", DeleteTasks([job], single=True).to_wire()))
    )
    if job not in r.deleted:
        fail(f"task {job} was not deleted")
    typer.echo(f"deleted {job}")


@task_app.command("list")
def task_list(compute: str = ComputeOpt, as_json: bool = JsonOpt) -> None:
    """Every task in the node's table."""
    r = with_peer(compute, "compute", lambda p: p.call("list", {}))
    if as_json:
        emit_json(r)
        return
    for t in r["tasks"]:
        _print_task(t)


@task_app.command("poll")
def task_poll(
    compute: str = ComputeOpt,
    since: int = typer.Option(0, "--since", help="First event sequence number to show."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new events until Ctrl-C."),
    as_json: bool = JsonOpt,
) -> None:
    """Print task state changes as they happen."""
    from weft.protocol.enums import EventKind
    from weft.protocol.events import Poll, PollReply

    if since < 0:
        fail("--since must be >= 0")

    async def go(peer: Peer) -> None:
        nxt = since
        while True:
            r = PollReply.from_wire(
                await peer.call("poll", Poll(nxt, 10.0 if follow else 0).to_wire(), timeout=20)
            )
            if r.resync:
                typer.echo(f"events before {r.next} are no longer kept; continuing from there", err=True)
            for seq, kind, data in r.events:
                if as_json:
                    sys.stdout.write(f'{{"seq": {seq}, "kind": "{kind}", "data": {__import__("json").dumps(data, default=str)}}}\n')
                elif kind == EventKind.TASK:
                    typer.echo(f"{seq:>6} {data['job']}  {data['state']}" + (f"  {data['outcome']}" if data.get("outcome") else "") + (f"  {data['cause']}" if data.get("cause") else ""))
                else:
                    typer.echo(f"{seq:>6} {kind} {data}")
            sys.stdout.flush()
            nxt = r.next
            if not follow:
                return

    try:
        with_peer(compute, "compute", go)
    except KeyboardInterrupt:
        pass


@object_app.command("get")
def object_get(
    name: str,
    storage: str = StorageOpt,
    output: Path = typer.Option(None, "--output", "-o", help="Write to this file instead of stdout."),
) -> None:
    """Print (or save) an object's bytes from one storage node."""
    from weft.actors.model import SpecError, split_object_name
    from weft.actors.storage.client import read_chunks

    try:
        split_object_name(name)
    except SpecError as e:
        fail(str(e))
    try:
        sink = open(output, "wb") if output else sys.stdout.buffer
    except OSError as e:
        fail(f"cannot write {output}: {e.strerror}")

    async def go(peer: Peer) -> int:
        n = 0
        async for chunk in read_chunks(peer, name, require_finished=False):
            sink.write(chunk)
            n += len(chunk)
        return n

    try:
        size = with_peer(storage, "storage", go)
    finally:
        if output:
            sink.close()
        else:
            sink.flush()
    if output:
        typer.echo(f"wrote {size} bytes to {output}", err=True)


@object_app.command("ls")
def object_ls(
    storage: str = StorageOpt,
    prefix: str = typer.Option("", "--prefix", help="Only names starting with this."),
    as_json: bool = JsonOpt,
) -> None:
    """List the objects a storage node holds."""
    from weft.protocol.objects import ListObjects

    r = with_peer(storage, "storage", lambda p: p.call("list", ListObjects(prefix).to_wire()))
    if as_json:
        emit_json(r["objects"])
        return
    for o in r["objects"]:
        extra = f" -> {o['target']}" if o.get("target") else ""
        typer.echo(f"{o['state']:9} {o['size']:>12}  {o['name']}{extra}")
