"""The compute node's CPU and memory FIFO (actors/compute/resources.py) and
the sizes jobs ask for (actors/resources.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
import trio.testing

from weft.actors.compute.resources import Resources, Withdrawn
from weft.actors.flow import load_flow
from weft.actors.model import JobSpec, SpecError
from weft.actors.resources import chunks, parse_size, placement_fields

MIB = 1 << 20


async def test_tasks_start_in_arrival_order_when_their_cpus_and_memory_are_free() -> None:
    r = Resources(cpus=4, memory=512 * MIB)  # 16 chunks
    started: list[str] = []

    async def task(name: str, cpus: int, memory: int | None) -> None:
        await r.acquire(name, cpus, memory)
        started.append(name)

    async with trio.open_nursery() as n:
        await r.acquire("held", 1, 400 * MIB)  # 13 chunks
        n.start_soon(task, "big", 1, 256 * MIB)  # 8 chunks: must wait
        await trio.testing.wait_all_tasks_blocked()
        n.start_soon(task, "tiny", 1, None)  # fits, but is behind `big`
        await trio.testing.wait_all_tasks_blocked()
        assert started == []  # the head of the line is never overtaken
        r.release("held")
        await trio.testing.wait_all_tasks_blocked()
        assert sorted(started) == ["big", "tiny"]
        assert r.used_chunks == 8 + 1 and r.used_cpus == 2


async def test_waiting_says_whether_more_tasks_wait_than_there_are_cpus() -> None:
    # What a compute node's poll answers gather by (bus/events.py `more_coming`):
    # only while a round of work stays queued once the ends are reported.
    r = Resources(cpus=1, memory=512 * MIB)
    async with trio.open_nursery() as n:
        await r.acquire("a", 1, None)
        assert not r.backlogged()  # busy, but nothing behind it
        n.start_soon(r.acquire, "b", 1, None)
        await trio.testing.wait_all_tasks_blocked()
        assert not r.backlogged()  # one behind it: its end is wanted at once
        n.start_soon(r.acquire, "c", 1, None)
        await trio.testing.wait_all_tasks_blocked()
        assert r.backlogged()
        r.release("a")  # b takes the CPU: only c waits
        await trio.testing.wait_all_tasks_blocked()
        assert not r.backlogged() and r.used_cpus == 1
        n.cancel_scope.cancel()  # c still waits


async def test_a_workorder_takes_its_share_at_once_and_is_counted() -> None:
    r = Resources(cpus=1, memory=64 * MIB)
    await r.acquire("a", 1, None)
    with trio.fail_after(1):
        await r.acquire("wo", 1, None, force=True)
    assert r.used_cpus == 2 and r.overcommits == 1


async def test_withdrawing_takes_only_waiting_tasks_newest_first() -> None:
    r = Resources(cpus=1, memory=64 * MIB)
    await r.acquire("running", 1, None)
    outcomes: dict[str, str] = {}

    async def task(name: str) -> None:
        try:
            await r.acquire(name, 1, None)
            outcomes[name] = "started"
        except Withdrawn:
            outcomes[name] = "withdrawn"

    async with trio.open_nursery() as n:
        for name in ("q1", "q2", "pinned", "q3"):
            n.start_soon(task, name)
            await trio.testing.wait_all_tasks_blocked()
        assert r.withdraw(2, lambda owner: owner != "pinned") == ["q3", "q2"]
        await trio.testing.wait_all_tasks_blocked()
        assert outcomes == {"q3": "withdrawn", "q2": "withdrawn"}
        r.release("running")
        await trio.testing.wait_all_tasks_blocked()
        assert outcomes["q1"] == "started" and "pinned" not in outcomes  # one CPU: q1, then pinned
        r.release("q1")
    assert outcomes["pinned"] == "started"


async def test_a_cancelled_wait_leaves_nothing_held() -> None:
    r = Resources(cpus=1, memory=64 * MIB)
    await r.acquire("a", 1, None)
    with trio.move_on_after(0.05):
        await r.acquire("b", 1, None)
    r.release("a")
    assert r.used_cpus == 0 and r.used_chunks == 0


def test_sizes_and_chunks() -> None:
    assert parse_size("512M") == 512 * MIB and parse_size("1.5GiB") == 3 << 29 and parse_size(4096) == 4096
    assert chunks(None) == 1 and chunks(1) == 1 and chunks(32 * MIB) == 1 and chunks(33 * MIB) == 2
    assert placement_fields(size="small") == {"memory": 128 * MIB}
    for bad, why in ((dict(memory="lots"), "invalid memory 'lots'"), (dict(size="huge"), "tiny, small"),
                     (dict(memory="1G", size="tiny"), "not both")):
        with pytest.raises(SpecError, match=why):
            placement_fields(**bad)


def test_placement_fields_travel_and_are_checked() -> None:
    spec = JobSpec(command=["true"], cpus=2, memory=MIB, host="h", prefer_host="p", node="n",
                   job_class="workorder", deadline=1.5e9)
    assert JobSpec.from_wire(spec.to_wire()) == spec
    assert JobSpec(command=["true"]).to_wire() == {"o": [], "cmd": ["true"]}  # nothing new for plain jobs
    assert spec.job_id() == JobSpec(command=["true"]).job_id()  # placement is not identity
    for bad, why in ((dict(cpus=0), "cpus 0"), (dict(job_class="urgent"), "class 'urgent'"),
                     (dict(memory=-1), "memory -1"), (dict(host=""), "invalid host")):
        with pytest.raises(SpecError, match=why):
            JobSpec(command=["true"], **bad)


def test_flow_files_take_placement_keys(tmp_path: Path) -> None:
    flow = tmp_path / "flow.toml"
    flow.write_text('[jobs.a]\ncommand = ["true"]\nmemory = "256M"\nclass = "workorder"\nhost = "b2"\n'
                    '[jobs.b]\ncommand = ["true"]\nsize = "large"\ncpus = 2\ndeadline = "+30m"\n')
    (_, a), (_, b) = load_flow(flow)
    assert (a.memory, a.job_class, a.host) == (256 * MIB, "workorder", "b2")
    assert (b.memory, b.cpus) == (1 << 30, 2) and b.deadline is not None
    flow.write_text('[jobs.c]\ncommand = ["true"]\nsize = "huge"\n')
    with pytest.raises(SpecError, match="jobs.c: invalid size 'huge': expected one of tiny, small"):
        load_flow(flow)


async def test_a_task_cancelled_as_it_gets_room_gives_the_room_back() -> None:
    res = Resources(cpus=1, memory=1 << 30)
    with trio.CancelScope() as scope:
        scope.cancel()  # cancelled before the grant's checkpoint returns
        await res.acquire("cancelled", 1, None)
    assert res.used_cpus == 0 and res.used_chunks == 0
    with trio.fail_after(1):
        await res.acquire("next", 1, None)  # the CPU is free for the next task
    assert res.used_cpus == 1


async def test_a_task_asking_first_takes_the_next_room_ahead_of_the_line() -> None:
    # A follower whose input is ready (actors/compute/ahead.py): depth first.
    r = Resources(cpus=1, memory=512 * MIB)
    started: list[str] = []

    async def task(name: str, first: bool = False) -> None:
        await r.acquire(name, 1, None, first=first)
        started.append(name)

    async with trio.open_nursery() as n:
        await r.acquire("held", 1, None)
        for name in ("q1", "q2"):
            n.start_soon(task, name)
            await trio.testing.wait_all_tasks_blocked()
        n.start_soon(task, "follower", True)
        await trio.testing.wait_all_tasks_blocked()
        assert r.waiting() == ["follower", "q1", "q2"]
        r.release("held")
        await trio.testing.wait_all_tasks_blocked()
        assert started == ["follower"]
        for name in ("follower", "q1"):
            r.release(name)
            await trio.testing.wait_all_tasks_blocked()
        assert started == ["follower", "q1", "q2"]
