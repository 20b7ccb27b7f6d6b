"""Storage and compute daemons end to end: real processes, sockets, SQLite and signals.

Each test talks to the daemons the way the coordinator would: it creates output
objects on storage, starts the task on compute with the storage endpoints, and
waits for the task to be done; then it checks what a user would check -- bytes
on storage, task states and outcomes, causes, processes.

The tests here run jobs on healthy daemons; those that kill or restart one are
in test_storage_compute_faults.py, the 200 MiB ones in test_storage_compute_big.py.
"""

from __future__ import annotations

import hashlib
import os
import random
import sys
import time
from pathlib import Path

import psutil
import pytest
import trio

from weft.actors.model import JobSpec
from weft.bus.errors import RemoteError
from weft.localcluster.cluster import Proc

from .conftest import (
    Shared,
    job_id,
    peer,
    process_gone,
    read_object,
    snapshot,
    start_task,
    stat_state,
    wait_done,
    wait_done_by_events,
    wait_for,
)

PY = sys.executable
MiB = 1 << 20


# -- 1. a command job: indirect input from storage A, two outputs to storage B -------

COPY_SCRIPT = r"""
import hashlib, os, sys
src = open(os.path.join(os.environ["WEFT_INPUTS"], "src"), "rb").read()
sys.stdout.buffer.write(src * 3)
sys.stdout.buffer.flush()
sys.stderr.write("read %d bytes of src\n" % len(src))
sys.stderr.flush()
with open(os.path.join(os.environ["WEFT_OUTPUTS"], "b"), "wb") as f:
    f.write(hashlib.sha256(src).hexdigest().encode() + b"\n" + src[::-1])
"""


async def test_command_job_reads_input_from_one_storage_and_writes_outputs_to_another(
    shared: Shared,
) -> None:
    src = random.Random(1).randbytes(700 * 1024)  # a file object on A; stdout (3x) streams in chunks
    in_name = f"{job_id('src')}/data"
    job = job_id("copy")
    with trio.fail_after(60):
        async with peer(shared.a) as a, peer(shared.b) as b, peer(shared.c) as c:
            put = await a.call("put", {"name": in_name, "data": src})
            assert (put["state"], put["size"]) == ("finished", len(src))
            for out in ("stdout", "b"):
                created = await b.call("create", {"name": f"{job}/{out}"})
                assert created["state"] == "empty"
            since = (await c.call("info", {}))["next"]
            spec = JobSpec(command=[PY, "-c", COPY_SCRIPT], refs={"src": in_name}, outputs=["stdout", "b"])
            started = await start_task(
                c, job, spec.to_wire(), inputs={"src": shared.a}, outputs={"stdout": shared.b, "b": shared.b}
            )
            assert started["job"] == job

            states = await wait_done_by_events(c, job, since)
            result = await c.call("result", {"job": job})

            stdout = await read_object(b, f"{job}/stdout")
            b_out = await read_object(b, f"{job}/b")
            for out in ("stdout", "b"):
                assert await stat_state(b, f"{job}/{out}") == "finished"
                with pytest.raises(RemoteError) as e:
                    await a.call("stat", {"name": f"{job}/{out}"})
                assert e.value.code == "missing"  # written to B only

    assert states == ["pending", "fetching", "running", "storing", "done"]
    assert result["outcome"] == "success", result
    assert result["exit"] == 0
    assert stdout == src * 3
    assert b_out == hashlib.sha256(src).hexdigest().encode() + b"\n" + src[::-1]

    log = (shared.compute.data_dir / "tasks" / job / "results" / "output.txt").read_bytes()
    err = b"read %d bytes of src\n" % len(src)
    assert len(log) == len(stdout) + len(err)
    assert err in log
    assert log.replace(err, b"", 1) == stdout  # stdout and stderr interleaved as they came


async def test_a_succeeded_command_with_an_empty_log_gives_its_directory_back_at_once(shared: Shared) -> None:
    # Nothing in it is read again, so it is reused before the coordinator
    # deletes the task; one that logged something, or failed, keeps its
    # directory (and its log) until then.
    tasks = shared.compute.data_dir / "tasks"
    quiet, noisy, failed = job_id("quiet"), job_id("noisy"), job_id("failed")
    specs = {
        quiet: JobSpec(command=["true"], outputs=["stdout"]),
        noisy: JobSpec(command=["sh", "-c", "echo to-err >&2"], outputs=["stdout"]),
        failed: JobSpec(command=["false"], outputs=["stdout"]),
    }
    with trio.fail_after(60):
        async with peer(shared.c) as c:
            for job, spec in specs.items():
                await start_task(c, job, spec.to_wire(), outputs={"stdout": shared.b})
            results = {job: await wait_done(c, job) for job in specs}
            quiet_log = await c.call("log", {"job": quiet, "offset": 0})
    assert [results[j]["outcome"] for j in (quiet, noisy, failed)] == ["success", "success", "failed-hard"]
    assert not (tasks / quiet).exists()
    assert (quiet_log["data"], quiet_log["done"]) == (b"", True)
    assert (tasks / noisy / "results" / "output.txt").read_bytes() == b"to-err\n"
    assert (tasks / failed / "work").is_dir()


# -- 2. a callable job ----------------------------------------------------------------


async def test_callable_job_with_immediate_inputs(shared: Shared, fresh_compute: Proc) -> None:
    job = job_id("concat")
    x, y = "héllo, ", b"\x00\xffworld\n"
    spec = JobSpec(call="weft.actors.builtins:concat", inputs={"x": x, "y": y}, outputs=["result"])
    with trio.fail_after(30):
        async with peer(shared.b) as b, peer(fresh_compute.endpoint) as c:
            await b.call("create", {"name": f"{job}/result"})
            await start_task(c, job, spec.to_wire(), outputs={"result": shared.b})
            r = await wait_done(c, job)
            assert r["outcome"] == "success", r
            assert await read_object(b, f"{job}/result") == x.encode() + y


async def test_callable_job_with_an_indirect_input(shared: Shared, fresh_compute: Proc) -> None:
    job = job_id("concat-ref")
    in_name = f"{job_id('part')}/y"
    y = random.Random(2).randbytes(100_000)
    spec = JobSpec(call="weft.actors.builtins:concat", inputs={"x": "head:"}, refs={"y": in_name}, outputs=["result"])
    with trio.fail_after(30):
        async with peer(shared.a) as a, peer(shared.b) as b, peer(fresh_compute.endpoint) as c:
            await a.call("put", {"name": in_name, "data": y})
            await b.call("create", {"name": f"{job}/result"})
            await start_task(c, job, spec.to_wire(), inputs={"y": shared.a}, outputs={"result": shared.b})
            r = await wait_done(c, job)
            assert r["outcome"] == "success", r
            assert await read_object(b, f"{job}/result") == b"head:" + y


def worker_pids(compute: Proc) -> list[int]:
    node = psutil.Process(compute.pid)
    # Exec'd workers say what they are; the first ones are forks of the node (prefork.py).
    return [
        ch.pid
        for ch in node.children()
        if "weft.actors.compute.worker" in " ".join(ch.cmdline()) or ch.cmdline() == node.cmdline()
    ]


# -- 3. an input that exists but is not finished -----------------------------------------


@pytest.mark.parametrize("kind", ["command", "callable"])
async def test_unfinished_input_fails_soft_naming_the_input(
    shared: Shared, fresh_compute: Proc, kind: str
) -> None:
    in_name = f"{job_id('unfinished')}/data"
    job = job_id(f"reads-unfinished-{kind}")
    if kind == "command":
        spec = JobSpec(command=[PY, "-c", "print('ran')"], refs={"src": in_name}, outputs=["stdout"])
        out = "stdout"
    else:
        spec = JobSpec(call="weft.actors.builtins:echo", refs={"src": in_name}, outputs=["result"])
        out = "result"
    with trio.fail_after(30):
        async with peer(shared.a) as a, peer(shared.b) as b, peer(fresh_compute.endpoint) as c:
            await a.call("create", {"name": in_name})  # created, never written
            await b.call("create", {"name": f"{job}/{out}"})
            await start_task(c, job, spec.to_wire(), inputs={"src": shared.a}, outputs={out: shared.b})
            r = await wait_done(c, job)
            assert r["outcome"] == "failed-soft", r
            assert "'src'" in r["cause"] and in_name in r["cause"], r["cause"]
            assert "not finished" in r["cause"]
            # The reason travels as its own field, for the coordinator to act on.
            assert r.get("code") == "not-finished", r
            assert await stat_state(b, f"{job}/{out}") == "empty"
            assert await stat_state(a, in_name) == "empty"


# -- 8. bad input ---------------------------------------------------------------------------


def one_line(message: str) -> bool:
    return bool(message.strip()) and "\n" not in message


BAD_SPECS = [
    ("command-is-a-string", {"cmd": "echo", "o": []}, "'command'"),
    ("outputs-is-a-number", {"cmd": ["echo"], "o": 5}, "'outputs'"),
    ("command-empty", {"cmd": [], "o": []}, "'command'"),
    ("command-arg-not-a-string", {"cmd": ["echo", 5], "o": []}, "'command'"),
    ("neither-command-nor-call", {"o": []}, "'command' or 'call'"),
    ("both-command-and-call", {"cmd": ["echo"], "call": "weft.actors.builtins:noop"}, "'command' or 'call'"),
    ("call-malformed", {"call": "no colon here", "o": []}, "'call'"),
    ("input-not-a-string", {"cmd": ["echo"], "in": {"x": 5}}, "'x'"),
    ("timeout-negative", {"cmd": ["echo"], "t": -1}, "time limit -1"),
    ("priority-not-an-int", {"cmd": ["echo"], "pri": "high"}, "'priority'"),
    ("unknown-field", {"cmd": ["echo"], "bogus": 1}, "bogus"),
    ("duplicate-outputs", {"cmd": ["echo"], "o": ["a", "a"]}, "named twice"),
    ("spec-not-a-map", "echo hi", "map"),
]


@pytest.mark.parametrize("spec,needle", [c[1:] for c in BAD_SPECS], ids=[c[0] for c in BAD_SPECS])
async def test_start_with_a_malformed_spec_answers_a_clear_error(
    shared: Shared, spec: object, needle: str
) -> None:
    job = job_id("bad")
    with trio.fail_after(10):
        async with peer(shared.c) as c:
            with pytest.raises(RemoteError) as e:
                await start_task(c, job, spec)  # type: ignore[arg-type]
            tasks = (await c.call("list", {}))["tasks"]
    assert e.value.code in ("bad-spec", "bad-request"), e.value
    assert one_line(e.value.message) and needle in e.value.message, e.value.message
    assert job not in {t["job"] for t in tasks}


BAD_BODIES = [
    ("token-negative", {"token": -1}, "'token'"),
    ("output-endpoint-not-a-string", {"outputs": {"stdout": 5}}, "'outputs'"),
    ("output-endpoint-missing", {"outputs": {}}, "stdout"),
    ("input-endpoint-missing", {"inputs": {}}, "'src'"),
    ("job-missing", {"job": None}, "job id"),
    ("body-not-a-map", None, "map"),
]


@pytest.mark.parametrize("change,needle", [c[1:] for c in BAD_BODIES], ids=[c[0] for c in BAD_BODIES])
async def test_start_with_a_malformed_body_answers_a_clear_error(
    shared: Shared, change: dict | None, needle: str
) -> None:
    job = job_id("bad-body")
    spec = JobSpec(command=["true"], refs={"src": "some-job/out"}, outputs=["stdout"])
    body = {"job": job, "spec": spec.to_wire(), "inputs": {"src": shared.a}, "outputs": {"stdout": shared.b}}
    body = "not a map" if change is None else {**body, **change}
    with trio.fail_after(10):
        async with peer(shared.c) as c:
            with pytest.raises(RemoteError) as e:
                await c.call("start", body)
            assert (await c.call("ping", {}))["role"] == "compute"
    assert e.value.code in ("bad-spec", "bad-request"), e.value
    assert one_line(e.value.message) and needle in e.value.message, e.value.message


async def test_start_many_reports_bad_items_and_runs_good_ones(fresh_compute: Proc) -> None:
    good, bad = job_id("many-good"), job_id("many-bad")
    with trio.fail_after(20):
        async with peer(fresh_compute.endpoint) as c:
            r = await c.call("start_many", {"tasks": [
                {"job": good, "spec": {"call": "weft.actors.builtins:noop", "o": []}},
                {"job": bad, "spec": {"cmd": "echo", "o": []}},
            ]})
            first, second = r["tasks"]
            assert first["job"] == good and "error" not in first
            assert second["job"] == bad and second["error"]["code"] == "bad-spec"
            done = await wait_done(c, good)
            assert done["outcome"] == "success", done


@pytest.mark.parametrize("argv0", ["/nonexistent/weft-e2e-nosuch", "weft-e2e-no-such-command"])
async def test_missing_command_fails_hard_naming_it(shared: Shared, argv0: str) -> None:
    job = job_id("nocmd")
    with trio.fail_after(20):
        async with peer(shared.c) as c:
            await start_task(c, job, JobSpec(command=[argv0, "arg"]).to_wire())
            r = await wait_done(c, job)
    assert r["outcome"] == "failed-hard", r
    assert argv0 in r["cause"] and one_line(r["cause"]), r["cause"]


@pytest.mark.parametrize("call", ["nosuch.module:fn", "weft.actors.builtins:nosuch"])
async def test_missing_callable_fails_hard_naming_it(fresh_compute: Proc, call: str) -> None:
    job = job_id("nocall")
    with trio.fail_after(20):
        async with peer(fresh_compute.endpoint) as c:
            await start_task(c, job, JobSpec(call=call).to_wire())
            r = await wait_done(c, job)
    assert r["outcome"] == "failed-hard", r
    assert call in r["cause"] and "no callable" in r["cause"] and one_line(r["cause"]), r["cause"]


@pytest.mark.parametrize(
    "inputs,needle",
    [({"x": "a\x00b"}, "'x'"), ({"a.b": "1", "a_b": "2"}, "WEFT_INPUT_A_B")],
    ids=["nul-byte", "two-names-one-variable"],
)
async def test_command_input_unusable_as_environment_is_the_jobs_fault(
    shared: Shared, inputs: dict, needle: str
) -> None:
    job = job_id("badenv")
    # The wire form, as another client could send it: the node must judge it.
    wire = {"cmd": [PY, "-c", "pass"], "in": inputs, "o": []}
    with trio.fail_after(20):
        async with peer(shared.c) as c:
            try:
                await start_task(c, job, wire)
            except RemoteError as e:  # refusing it up front is as good
                assert e.code == "bad-spec" and needle in e.message
                return
            r = await wait_done(c, job)
    assert r["outcome"] == "failed-hard", r
    assert needle in r["cause"] and "internal error" not in r["cause"], r["cause"]


TRAVERSAL = ["../evil1", "a/../../evil2", "../../evil3/x", "/evil4/x", "ok/../evil5", "..", "a/.."]


async def test_path_traversal_names_are_refused_and_nothing_is_written_outside(
    shared: Shared, tmp_path_factory: pytest.TempPathFactory
) -> None:
    base = tmp_path_factory.getbasetemp()
    cwd = Path.cwd()
    before = snapshot(base)
    cwd_before = set(os.listdir(cwd))
    errors: list[tuple[str, RemoteError]] = []

    async def refused(p, what: str, op: str, body: object) -> None:
        with pytest.raises(RemoteError) as e:
            await p.call(op, body)
        errors.append((what, e.value))

    with trio.fail_after(30):
        async with peer(shared.a) as a, peer(shared.c) as c:
            for bad in TRAVERSAL:
                for op, body in [
                    ("create", {"name": bad}),
                    ("read", {"name": bad}),
                    ("put", {"name": bad, "data": b"pwned"}),
                    ("populate", {"name": bad, "data": b"pwned"}),
                    ("finish", {"name": bad}),
                    ("stat", {"name": bad}),
                    ("delete", {"name": bad}),
                    ("delegate", {"name": bad, "target": "x/y"}),
                ]:
                    await refused(a, f"storage {op} {bad!r}", op, body)
                await a.call("create", {"name": "traversal-src/ok"})
                await refused(a, f"storage delegate to {bad!r}", "delegate",
                              {"name": "traversal-src/ok", "target": bad})
                await a.call("delete", {"name": "traversal-src/ok"})

                ok = job_id("trav")
                script = [PY, "-c", "open('pwned', 'w').write('x')"]
                starts = {
                    "job id": {"job": bad, "spec": JobSpec(command=script).to_wire()},
                    "output": {"job": ok, "spec": {"cmd": script, "o": [bad]},
                               "outputs": {bad: shared.b}},
                    "input ref": {"job": ok, "spec": {"cmd": script, "o": [], "refs": {"i": bad}},
                                  "inputs": {"i": shared.a}},
                    "resolved input": {"job": ok, "spec": {"cmd": script, "o": [], "refs": {"i": "j/o"}},
                                       "inputs": {"i": [shared.a, bad]}},
                    "immediate input": {"job": ok, "spec": {"cmd": script, "o": [], "in": {bad: "v"}}},
                }
                for what, body in starts.items():
                    await refused(c, f"compute start {what} {bad!r}", "start", body)
                for op in ("result", "delete", "cancel"):
                    await refused(c, f"compute {op} {bad!r}", op, {"job": bad})
            assert not [t for t in (await c.call("list", {}))["tasks"] if t["job"].startswith("trav-")]

    for what, e in errors:
        assert e.code in ("bad-spec", "bad-request"), f"{what}: [{e.code}] {e.message}"
        assert one_line(e.message), f"{what}: {e.message!r}"

    after = snapshot(base)
    allowed = shared.daemons.data_dirs() + [shared.daemons.logs.resolve()]
    changed = {p for p, st in after.items() if before.get(p) != st}
    outside = sorted(p for p in changed if not any(Path(p).resolve().is_relative_to(d) for d in allowed))
    assert outside == [], f"written outside the data dirs: {outside}"
    suspicious = sorted(p for p in set(after) - set(before) if "evil" in p or "pwned" in p)
    assert suspicious == []
    assert not {n for n in set(os.listdir(cwd)) - cwd_before if "evil" in n or "pwned" in n}


async def test_cancel_ends_a_running_task_cancelled_not_failed(shared: Shared) -> None:
    """Cancel and shutdown both stop a task; only a cancel ends it `cancelled`."""
    job = job_id("cancel-me")
    spec = JobSpec(command=[PY, "-c", "import time; time.sleep(60)"])
    with trio.fail_after(30):
        async with peer(shared.c) as c:
            await start_task(c, job, spec.to_wire())

            async def running() -> bool:
                return (await c.call("result", {"job": job}))["state"] == "running"

            await wait_for(running, 20, what="the command to run")
            r = await c.call("cancel", {"job": job})
            assert r["job"] == job
            done = await wait_done(c, job)
    assert done["outcome"] == "cancelled", done
    assert done["cause"] == "cancelled by request" and "code" not in done, done


async def test_a_multi_chunk_object_moves_with_several_chunks_in_flight(shared: Shared) -> None:
    from weft.actors.storage.client import CHUNK, ObjectWriter, read_all, read_chunks

    data = random.Random(7).randbytes(5 * CHUNK + 12345)
    name = f"{job_id('window')}/big"
    with trio.fail_after(60):
        async with peer(shared.a) as a:
            w = ObjectWriter(a, name, 0)
            await w.write(data[:100])  # a small write, then one big enough for a window
            await w.write(data[100:])
            info = await w.close()
            assert (info["state"], info["size"]) == ("finished", len(data))
            assert await read_all(a, name) == data
            assert await read_all(a, name, window=1) == data
            assert b"".join([c async for c in read_chunks(a, name)]) == data
            # One large write at once (a callable's result) takes the path without the buffer.
            w = ObjectWriter(a, f"{name}-whole", 0)
            await w.write(data)
            assert (await w.close())["size"] == len(data)
            assert await read_all(a, f"{name}-whole") == data


# Last in the module: its node (shared.idle) has idled through the tests above,
# so little of its idle time is left to wait here.
async def test_callable_jobs_still_run_after_the_node_was_idle(shared: Shared) -> None:
    cp = shared.idle  # started with the shared nodes; nothing else uses it
    with trio.fail_after(10):  # the pool warms up in the background once the node is up
        while not (workers := worker_pids(cp)):
            await trio.sleep(0.05)
    # Idle longer than trio's worker-thread idle timeout (10 s) since its last
    # worker started; the node has been idle while the tests before this ran,
    # so only what is left of that is waited here.
    spawned = max(psutil.Process(w).create_time() for w in workers)
    await trio.sleep(max(0.0, spawned + 11 - time.time()))
    assert time.time() > spawned + 11
    job = job_id("after-idle")
    spec = JobSpec(call="weft.actors.builtins:concat", inputs={"x": "still ", "y": "warm"}, outputs=["result"])
    with trio.fail_after(30):
        async with peer(shared.b) as b, peer(cp.endpoint) as c:
            await b.call("create", {"name": f"{job}/result"})
            await start_task(c, job, spec.to_wire(), outputs={"result": shared.b})
            r = await wait_done(c, job)
            assert r["outcome"] == "success", r
            assert await read_object(b, f"{job}/result") == b"still warm"
    assert [p for p in workers if process_gone(p)] == []
