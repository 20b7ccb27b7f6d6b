"""The event queue and its long-poll, directly and over the wire."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import trio
import trio.testing

from weft.bus.errors import RemoteError
from weft.bus.events import EventQueue
from weft.bus.peers import connect
from weft.bus.rpc import Server

from helpers import await_for

Serve = Callable[..., Any]  # the `serve` fixture from conftest.py


async def test_poll_returns_retained_events_at_once() -> None:
    q = EventQueue()
    for i in range(5):
        assert q.append("job", {"n": i}) == i + 1
    with trio.fail_after(1):
        r = await q.poll(0, timeout=10)  # 0 means "from the first"
    assert r["events"] == [[i + 1, "job", {"n": i}] for i in range(5)]
    assert (r["next"], r["resync"], r["inc"]) == (6, False, q.incarnation)
    with trio.fail_after(1):
        r = await q.poll(3, limit=2, timeout=10)
    assert [e[0] for e in r["events"]] == [3, 4] and r["next"] == 5


async def test_long_poll_wakes_on_a_new_event() -> None:
    q = EventQueue()
    q.append("old")
    result: dict[str, Any] = {}

    async def poller() -> None:
        result.update(await q.poll(2, timeout=10))
        result["at"] = trio.current_time()

    with trio.fail_after(2):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(poller)
            await trio.testing.wait_all_tasks_blocked()
            assert not result  # still waiting
            appended = trio.current_time()
            q.append("new", 42)
    assert result["events"] == [[2, "new", 42]]
    assert result["next"] == 3
    assert result["at"] - appended < 0.05


async def test_urgent_poller_sleeps_through_quiet_events_and_gets_them_with_the_urgent_one() -> None:
    q = EventQueue()
    q.append("old")
    result: dict[str, Any] = {}
    eager: dict[str, Any] = {}

    async def poller(out: dict[str, Any], urgent_only: bool) -> None:
        out.update(await q.poll(2, timeout=10, urgent_only=urgent_only))

    with trio.fail_after(2):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(poller, result, True)
            nursery.start_soon(poller, eager, False)
            await trio.testing.wait_all_tasks_blocked()  # both parked
            q.append("running", 1, urgent=False)
            q.append("storing", 1, urgent=False)
            # The plain poller wakes and returns; then every task has had its
            # turn, the urgent poller included.
            await await_for(lambda: bool(eager), 1, "the plain poller woke")
            await trio.testing.wait_all_tasks_blocked()
            assert not result  # quiet steps do not wake it
            assert [e[1] for e in eager["events"]] == ["running", "storing"]  # a plain poller woke
            q.append("done", 1)
    assert result["events"] == [[2, "running", 1], [3, "storing", 1], [4, "done", 1]]
    assert result["next"] == 5


async def test_urgent_poller_gets_quiet_events_at_its_timeout_and_before_the_window_passes_it() -> None:
    q = EventQueue(window=10)
    q.append("old")
    with trio.fail_after(2):
        r = await q.poll(2, timeout=0.1, urgent_only=True)
    assert r["events"] == [] and r["next"] == 2
    q.append("quiet", urgent=False)
    with trio.fail_after(2):
        r = await q.poll(2, timeout=0.1, urgent_only=True)
    assert r["events"] == [[2, "quiet", None]]
    result: dict[str, Any] = {}

    async def poller() -> None:
        result.update(await q.poll(3, timeout=10, urgent_only=True))

    with trio.fail_after(2):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(poller)
            await trio.testing.wait_all_tasks_blocked()
            for i in range(5):  # half the window: the poller must hear of it
                q.append("quiet", i, urgent=False)
    assert not result["resync"] and [e[0] for e in result["events"]] == [3, 4, 5, 6, 7]


async def test_urgent_poller_with_gather_waits_for_more_ends_while_more_are_coming() -> None:
    # A busy compute node (tasks waiting for a CPU): its ends travel together;
    # the end after which nothing waits any more answers at once.
    q = EventQueue()
    busy = [True]
    q.more_coming = lambda: busy[0]
    result: dict[str, Any] = {}

    async def poller() -> None:
        result.update(await q.poll(1, timeout=10, urgent_only=True, gather=1.0))

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(poller)
            await trio.testing.wait_all_tasks_blocked()
            q.append("done", "a")
            await trio.testing.wait_all_tasks_blocked()
            assert not result  # gathering: more ends are coming
            q.append("running", "c", urgent=False)
            q.append("done", "b")
            await trio.testing.wait_all_tasks_blocked()
            assert not result
            busy[0] = False  # the last waiting task took the CPU
            q.append("done", "c")
            await trio.testing.wait_all_tasks_blocked()
            assert result  # at once: not at the end of the window
    assert [e[2] for e in result["events"]] == ["a", "c", "b", "c"]
    assert result["next"] == 5


@pytest.mark.parametrize("more", [None, False])
async def test_urgent_poller_with_gather_answers_at_once_when_no_more_are_coming(more: bool | None) -> None:
    # An idle node, or a chain's hop: nothing waits behind the end.
    q = EventQueue()
    if more is not None:
        q.more_coming = lambda: more
    q.append("done", "a")
    with trio.fail_after(5):
        r = await q.poll(1, timeout=10, urgent_only=True, gather=30.0)
    assert r["events"] == [[1, "done", "a"]]


async def test_gather_ends_at_its_window_even_if_more_are_still_coming() -> None:
    q = EventQueue()
    q.more_coming = lambda: True
    q.append("done", "a")
    with trio.fail_after(5):
        r = await q.poll(1, timeout=30, urgent_only=True, gather=0.05)
    assert r["events"] == [[1, "done", "a"]] and not r["resync"]


async def test_long_poll_times_out_empty() -> None:
    q = EventQueue()
    q.append("old")
    start = trio.current_time()
    with trio.fail_after(2):
        r = await q.poll(2, timeout=0.2)
    elapsed = trio.current_time() - start
    assert r == {"events": [], "next": 2, "inc": q.incarnation, "resync": False}
    assert 0.2 <= elapsed < 0.5
    with trio.fail_after(1):
        assert (await q.poll(2, timeout=0))["events"] == []


async def test_poller_behind_the_window_is_told_to_resync() -> None:
    q = EventQueue(window=10)
    for i in range(50):
        q.append("e", i)
    with trio.fail_after(1):
        r = await q.poll(1, timeout=5)
    assert r == {"events": [], "next": 51, "inc": q.incarnation, "resync": True}
    # After re-reading state it polls from `next` and is in step again.
    q.append("e", 50)
    with trio.fail_after(1):
        r = await q.poll(r["next"], timeout=5)
    assert r["events"] == [[51, "e", 50]] and not r["resync"]
    # The oldest retained event is still served without a resync.
    with trio.fail_after(1):
        r = await q.poll(42, timeout=5)
    assert [e[0] for e in r["events"]] == list(range(42, 52)) and not r["resync"]


async def test_poller_from_the_future_is_told_to_resync() -> None:
    q = EventQueue()
    q.append("e")
    with trio.fail_after(1):
        r = await q.poll(10, timeout=5)  # numbered by some other incarnation
    assert r["resync"] and r["next"] == 2


async def test_other_incarnation_is_told_to_resync() -> None:
    old, new = EventQueue(), EventQueue()
    assert old.incarnation != new.incarnation
    new.append("e")
    with trio.fail_after(1):
        r = await new.poll(1, timeout=5, incarnation=old.incarnation)
    assert r == {"events": [], "next": 2, "inc": new.incarnation, "resync": True}
    with trio.fail_after(1):
        r = await new.poll(1, timeout=5, incarnation=new.incarnation)
    assert r["events"] == [[1, "e", None]] and not r["resync"]


async def test_poller_overtaken_while_waiting_is_told_to_resync() -> None:
    """Events dropped out of the window while a poll waited must not vanish silently."""
    q = EventQueue(window=10)
    result: dict[str, Any] = {}

    async def poller() -> None:
        result.update(await q.poll(1, timeout=5))

    with trio.fail_after(2):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(poller)
            await trio.testing.wait_all_tasks_blocked()
            for i in range(20):  # a burst, before the poller runs again
                q.append("e", i)
    # Either every event from 1 on, or a resync: never a silent gap.
    got = [e[0] for e in result["events"]]
    assert result["resync"] or got[:1] == [1], f"events 1..{got[0] - 1} were lost without a resync"


async def test_one_append_wakes_200_pollers() -> None:
    q = EventQueue()
    results: list[dict[str, Any]] = []

    async def poller() -> None:
        results.append(await q.poll(q.next_seq, timeout=10))

    with trio.fail_after(3):
        async with trio.open_nursery() as nursery:
            for _ in range(200):
                nursery.start_soon(poller)
            await trio.testing.wait_all_tasks_blocked()
            assert results == []
            q.append("wake", "up")
    assert len(results) == 200
    assert all(r["events"] == [[1, "wake", "up"]] and r["next"] == 2 for r in results)


@pytest.mark.parametrize("urgent", [False, True])
async def test_pollers_parked_after_a_wake_up_or_a_timeout_are_woken_by_the_next_append(urgent: bool) -> None:
    # The queue counts the pollers parked on its wake-up (no trio statistics
    # per append): one woken, then one that timed out, must leave the next
    # poller counted, and an append with nobody parked wakes nobody.
    q = EventQueue()
    got: list[dict[str, Any]] = []

    async def poller(timeout: float) -> None:
        got.append(await q.poll(q.next_seq, timeout=timeout, urgent_only=urgent))

    with trio.fail_after(5):  # (the last poller's own timeout is 30 s)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(poller, 30.0)
            await trio.testing.wait_all_tasks_blocked()
            q.append("first")
        assert [r["events"] for r in got] == [[[1, "first", None]]] and q.wakeups == 1
        await poller(0.05)  # times out, parked no more
        assert got[-1]["events"] == []
        q.append("nobody")
        assert q.wakeups == 1
        async with trio.open_nursery() as nursery:
            nursery.start_soon(poller, 30.0)
            await trio.testing.wait_all_tasks_blocked()
            q.append("last")
    assert got[-1]["events"] == [[3, "last", None]] and q.wakeups == 2


async def test_200_pollers_over_the_wire_are_woken_by_one_append(serve: Serve) -> None:
    q = EventQueue()
    server = Server("srv", max_concurrent=4)  # polls bypass admission
    server.add("poll", q.handle_poll, bypass=True)
    ep = await serve(server)
    results: list[dict[str, Any]] = []

    async def poller(peer: Any) -> None:
        results.append(await peer.call("poll", {"since": 1, "timeout": 10, "inc": q.incarnation}))

    with trio.fail_after(5):
        async with connect(ep, "watcher") as peer, trio.open_nursery() as nursery:
            for _ in range(200):
                nursery.start_soon(poller, peer)
            while server.stats.calls < 200:
                await trio.sleep(0.01)
            await trio.testing.wait_all_tasks_blocked()  # every poll is waiting
            assert results == []
            start = trio.current_time()
            q.append("job.done", {"job": 7})
        elapsed = trio.current_time() - start
    assert len(results) == 200
    assert all(r["events"] == [[1, "job.done", {"job": 7}]] for r in results)
    assert elapsed < 1.0


@pytest.mark.parametrize(
    "body",
    [
        None,
        [1],
        {"since": -1},
        {"since": "3"},
        {"since": 1.5},
        {"since": 1, "max": 0},
        {"since": 1, "max": "10"},
        {"since": 1, "timeout": -1},
        {"since": 1, "timeout": 301},
        {"since": 1, "timeout": "5"},
        {"since": 1, "timeout": float("nan")},
        {"since": 1, "inc": 5},
        {"since": 1, "wake": "sometimes"},
        {"since": 1, "wake": "urgent", "gather": 2},
        {"since": 1, "wake": "urgent", "gather": "0.01"},
    ],
    ids=repr,
)
async def test_bad_poll_requests_are_refused(serve: Serve, body: Any) -> None:
    q = EventQueue()
    server = Server("srv")
    server.add("poll", q.handle_poll, bypass=True)
    ep = await serve(server)
    with trio.fail_after(3):
        async with connect(ep, "watcher") as peer:
            with pytest.raises(RemoteError) as info:
                await peer.call("poll", body)
    assert info.value.code == "bad-request"
