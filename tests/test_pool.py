"""The warm worker pool with real worker processes."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import trio

from weft.actors.compute import pool as pool_mod
from weft.actors.compute.pool import CallableError, CallableNotFound, Parts, WorkerLost, WorkerPool
from weft.actors.delegate import Delegate
from weft.actors.model import JobSpec, SpecError

WAIT = 10.0  # every wait in this file is bounded by it

# Callables that misbehave, importable by the workers from a temporary directory.
HELPERS = """
import os, sys

def crash(code="3"):
    os._exit(int(code))

def chatty():
    print("noise " * 50)
    sys.stdout.write("unterminated")
    os.write(1, b"straight to fd 1\\n")
    return b"clean"

def hand_over():
    from weft.actors.delegate import Delegate
    return Delegate({"cmd": ["echo", "next"], "o": ["stdout"]}, "stdout")

def sized(n):
    return b"x" * int(n)

def text():
    return "h\\u00e9llo"

def value():
    return {"n": 42, "nested": [1.5, None]}

def unpicklable():
    return lambda: 1

def exits():
    sys.exit(7)

def reads_stdin():
    return sys.stdin.read().encode()

NOT_CALLABLE = 5
"""


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return False
    return data[data.rfind(b")") + 2 : data.rfind(b")") + 3] not in (b"Z", b"X")


async def wait_until(pred: Callable[[], bool]) -> None:
    """Poll `pred`: processes dying and starting signal no event we could wait on."""
    with trio.fail_after(WAIT):
        while True:
            if pred():
                return
            await trio.sleep(0.01)


@pytest.fixture
def helpers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "weft_test_helpers.py").write_text(HELPERS)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))


@pytest.fixture
async def pool(helpers: None) -> AsyncIterator[WorkerPool]:
    async with WorkerPool(2) as p:
        yield p


async def test_builtins(pool: WorkerPool) -> None:
    assert pool.size == 2 and pool.busy == 0
    assert await pool.run("weft.actors.builtins:hello", {}) == b"hello from weft: hello, world\n"
    assert await pool.run("weft.actors.builtins:hello", {"message": "tests"}) == (
        b"hello from weft: tests\n"
    )
    assert await pool.run("weft.actors.builtins:noop", {"ignored": b"x"}) == b""
    assert await pool.run("weft.actors.builtins:concat", {"b": b"2", "a": "1", "c": b"3"}) == b"123"
    assert await pool.run("weft.actors.builtins:echo", {"only": b"\x00\xff"}) == b"\x00\xff"
    assert await pool.run("weft.actors.builtins:echo", {"a": "1", "b": b"2"}) == {"a": b"1", "b": b"2"}


async def test_return_values_travel(pool: WorkerPool) -> None:
    assert await pool.run("weft_test_helpers:text", {}) == "h\u00e9llo"
    assert await pool.run("weft_test_helpers:value", {}) == {"n": 42, "nested": [1.5, None]}
    assert await pool.run("weft.actors.builtins:sleep", {"seconds": "0"}) == b""


async def test_large_inputs_and_results(pool: WorkerPool) -> None:
    big = os.urandom(3 << 20)
    got = await pool.run("weft.actors.builtins:concat", {"a": big, "b": "-", "c": big[:100_000]})
    assert bytes(got) == big + b"-" + big[:100_000]  # (a Segment: segments.py)
    assert len(await pool.run("weft_test_helpers:sized", {"n": str(20 << 20)})) == 20 << 20


async def test_values_in_pieces_reach_the_function_whole(pool: WorkerPool) -> None:
    # How a compute node hands over an input read from storage: the chunks as
    # they came, never joined on the node.
    chunks = [os.urandom(n) for n in (1 << 20, 1 << 20, 12345)]
    got = await pool.run("weft.actors.builtins:concat", {"a": Parts(chunks), "b": Parts([b"x", memoryview(b"yz")])})
    assert bytes(got) == b"".join(chunks) + b"xyz"
    assert await pool.run("weft.actors.builtins:concat", {"a": Parts()}) == b""


@pytest.mark.parametrize("memfd", [True, False], ids=["memory-files", "pipes-only"])
async def test_large_values_with_and_without_memory_files(
    helpers: None, monkeypatch: pytest.MonkeyPatch, memfd: bool
) -> None:
    # Memory files that grew past what a worker keeps are given back, and the
    # next call through them still gets the right bytes.
    monkeypatch.setattr(pool_mod, "_HAVE_MEMFD", memfd and pool_mod._HAVE_MEMFD)
    monkeypatch.setattr(pool_mod, "_SHM_KEEP", 2 << 20)
    async with WorkerPool(1) as p:
        for n in (5 << 20, 1 << 20, 300_000, 6 << 20):
            data = os.urandom(n)
            got = await p.run("weft.actors.builtins:concat", {"a": data, "b": Parts([data[:7]])})
            assert bytes(got) == data + data[:7]
            assert len(await p.run("weft_test_helpers:sized", {"n": str(n)})) == n
        assert await p.run("weft_test_helpers:text", {}) == "h\u00e9llo"


async def test_exception_becomes_callable_error(pool: WorkerPool) -> None:
    with pytest.raises(CallableError) as e:
        await pool.run("weft.actors.builtins:fail", {"message": "bad input"})
    assert type(e.value) is CallableError
    assert e.value.message == "RuntimeError: bad input"
    assert "Traceback" in e.value.traceback and "in fail" in e.value.traceback
    with pytest.raises(CallableError, match="SystemExit: 7"):
        await pool.run("weft_test_helpers:exits", {})
    with pytest.raises(CallableError, match="TypeError"):
        await pool.run("weft.actors.builtins:hello", {"unknown": "x"})
    with pytest.raises(CallableError, match="cannot be sent"):
        await pool.run("weft_test_helpers:unpicklable", {})
    # The worker survives all of that.
    assert await pool.run("weft.actors.builtins:noop", {}) == b""


@pytest.mark.parametrize(
    "call, why",
    [
        ("weft_no_such_module:fn", "ModuleNotFoundError"),
        ("weft.actors.builtins:no_such_function", "AttributeError"),
        ("weft_test_helpers:NOT_CALLABLE", "not callable"),
    ],
)
async def test_missing_callable(pool: WorkerPool, call: str, why: str) -> None:
    with pytest.raises(CallableNotFound) as e:
        await pool.run(call, {})
    assert isinstance(e.value, CallableError)
    assert e.value.message.startswith(f"no callable {call!r}: ")
    assert why in e.value.message and "\n" not in e.value.message


async def test_dead_worker_is_reported_and_replaced(pool: WorkerPool) -> None:
    before = set(pool.pids)
    with pytest.raises(WorkerLost, match="exited with status 3"):
        await pool.run("weft_test_helpers:crash", {"code": "3"})
    assert await pool.run("weft.actors.builtins:hello", {"message": "again"}) == (
        b"hello from weft: again\n"
    )
    await wait_until(lambda: len(pool.pids) == 2)
    assert len(before - set(pool.pids)) == 1
    # Both workers work, including the replacement.
    async with trio.open_nursery() as nursery:
        for _ in range(4):
            nursery.start_soon(pool.run, "weft.actors.builtins:sleep", {"seconds": "0.05"})


async def test_timeout_kills_and_replaces_the_worker(pool: WorkerPool) -> None:
    before = set(pool.pids)
    start = time.monotonic()
    with pytest.raises(trio.TooSlowError):
        await pool.run("weft.actors.builtins:sleep", {"seconds": "60"}, timeout=0.2)
    assert time.monotonic() - start < WAIT
    assert pool.busy == 0
    (killed,) = before - set(pool.pids)
    await wait_until(lambda: not alive(killed))
    assert await pool.run("weft.actors.builtins:noop", {}, timeout=WAIT) == b""
    await wait_until(lambda: len(pool.pids) == 2)


async def test_cancellation_kills_and_replaces_the_worker(pool: WorkerPool) -> None:
    before = set(pool.pids)
    with trio.move_on_after(0.2) as scope:
        await pool.run("weft.actors.builtins:sleep", {"seconds": "60"})
    assert scope.cancelled_caught
    (killed,) = before - set(pool.pids)
    await wait_until(lambda: not alive(killed))
    assert await pool.run("weft.actors.builtins:hello", {}) == b"hello from weft: hello, world\n"


async def test_a_call_cancelled_before_it_starts_takes_no_worker(pool: WorkerPool) -> None:
    # A free worker is taken without a scheduler trip (a chain's next call
    # goes out at once): a caller already cancelled must still stop before
    # it, not send its call and have the worker killed for it.
    before = set(pool.pids)
    with trio.CancelScope() as scope:
        scope.cancel()
        await pool.run("weft.actors.builtins:sleep", {"seconds": "60"})
    assert scope.cancelled_caught
    assert set(pool.pids) == before and pool.busy == 0
    assert await pool.run("weft.actors.builtins:hello", {}, timeout=WAIT) == b"hello from weft: hello, world\n"
    assert set(pool.pids) == before


async def test_prints_do_not_corrupt_results(pool: WorkerPool) -> None:
    for _ in range(3):
        assert await pool.run("weft_test_helpers:chatty", {}) == b"clean"
    assert await pool.run("weft_test_helpers:reads_stdin", {}) == b""
    assert await pool.run("weft.actors.builtins:concat", {"a": "x", "b": "y"}) == b"xy"


async def test_workers_ignore_sigint(pool: WorkerPool) -> None:
    for pid in pool.pids:
        os.kill(pid, signal.SIGINT)
    async with trio.open_nursery() as nursery:
        for _ in range(4):
            nursery.start_soon(pool.run, "weft.actors.builtins:noop", {})
    assert all(alive(pid) for pid in pool.pids) and len(pool.pids) == 2


async def test_delegate_round_trips(pool: WorkerPool) -> None:
    got = await pool.run("weft_test_helpers:hand_over", {})
    assert isinstance(got, Delegate)
    assert got.to_wire() == {"job": {"cmd": ["echo", "next"], "o": ["stdout"]}, "stream": "stdout"}
    spec, stream = got.spec()
    assert spec.command == ["echo", "next"] and stream == "stdout"


def test_delegate_validates() -> None:
    d = Delegate(JobSpec(call="weft.actors.builtins:hello", outputs=["result"]))
    assert d.to_wire() == {
        "job": {"call": "weft.actors.builtins:hello", "o": ["result"]},
        "stream": "result",
    }
    with pytest.raises(SpecError, match="not an output"):
        Delegate({"cmd": ["true"], "o": ["stdout"]})  # default stream "result"


async def test_many_noops_through_two_workers(pool: WorkerPool) -> None:
    n, tasks = 2000, 16
    done = 0

    async def client() -> None:
        nonlocal done
        for _ in range(n // tasks):
            assert await pool.run("weft.actors.builtins:noop", {}) == b""
            done += 1

    start = time.perf_counter()
    with trio.fail_after(WAIT * 3):
        async with trio.open_nursery() as nursery:
            for _ in range(tasks):
                nursery.start_soon(client)
    elapsed = time.perf_counter() - start
    assert done == n and pool.busy == 0
    print(f"\n{n} noop calls through 2 workers: {n / elapsed:,.0f}/s")


async def test_exit_leaves_no_worker_alive(helpers: None) -> None:
    lost: list[BaseException] = []

    async def stuck(pool: WorkerPool) -> None:
        try:
            await pool.run("weft.actors.builtins:sleep", {"seconds": "60"})
        except WorkerLost as e:
            lost.append(e)

    with trio.fail_after(WAIT):
        async with trio.open_nursery() as nursery:
            async with WorkerPool(3, stop_grace=0.2) as pool:
                pids = pool.pids
                assert len(pids) == 3 and all(alive(p) for p in pids)
                await pool.run("weft.actors.builtins:noop", {})
                nursery.start_soon(stuck, pool)
                await wait_until(lambda: pool.busy == 1)
            assert [p for p in pids if alive(p)] == []
    assert len(lost) == 1  # the call in flight learns its worker is gone
    with pytest.raises(trio.ClosedResourceError):
        await pool.run("weft.actors.builtins:noop", {})


async def test_pool_can_be_entered_and_exited_from_different_tasks(helpers: None) -> None:
    pool = WorkerPool(1)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(pool.__aenter__)
    assert await pool.run("weft.actors.builtins:noop", {}) == b""
    with pytest.raises(WorkerLost):
        await pool.run("weft_test_helpers:crash", {})  # replacement runs in the background
    pids = pool.pids
    async with trio.open_nursery() as nursery:
        nursery.start_soon(pool.__aexit__, None, None, None)
    assert [p for p in pids if alive(p)] == []
    assert pool.pids == []
