"""Tasks started ahead of their input, on the node making it (`after`).

A dependent started with `after: {input: [producer job, token]}` waits on the
compute node for that producer's value, then runs with the bytes the producer
kept: no round trip through the coordinator, no read from storage. A callable
starts on the value while the producer is still storing it, and holds its
own outcome and outputs back until the producer's are durable
(actors/compute/ahead.py). These tests drive real compute and storage daemons
the way the coordinator does.
"""

from __future__ import annotations

import sys

import pytest
import trio

from weft.actors.model import JobSpec
from weft.actors.storage.client import ObjectWriter
from weft.bus.errors import RemoteError
from weft.localcluster.cluster import Proc

from .conftest import Shared, job_id, peer, read_object, start_task, wait_done, wait_done_by_events

PY = sys.executable


def concat_spec(**refs: str) -> dict:
    return JobSpec(call="weft.actors.builtins:concat", inputs={"z": "!"}, refs=refs, outputs=["result"]).to_wire()


async def start_follower(c, job: str, made: str, read_at: str, write_to: str, after: list, token: int) -> dict:
    """Start `job` (concat of `made` and "!") after the task `after` = [job, token]
    on this node, reading `made` at `read_at` if it has to."""
    return await c.call("start", {
        "job": job, "spec": concat_spec(a=made),
        "inputs": {"a": read_at}, "outputs": {"result": write_to},
        "after": {"a": after}, "token": token,
    })


async def fill_slots(c, storage: str) -> list[str]:
    """Both slots of the module's compute node busy with 0.5 s sleepers: a
    producer started next waits for a slot, so its follower, started right
    after it, certainly finds it not ended (a warm node ends a callable in
    milliseconds, sooner than the follower's start arrives)."""
    sleeper = JobSpec(call="weft.actors.builtins:sleep", inputs={"seconds": "0.5"}, outputs=["result"])
    jobs = [job_id("slow"), job_id("slow")]
    for job in jobs:
        await start_task(c, job, sleeper.to_wire(), outputs={"result": storage}, token=1)
    # Both hold their slots before anything else starts (a task started
    # right after could otherwise take a slot first: trio does not run new
    # tasks in the order they were started).
    for _ in range(200):
        states = [(await c.call("result", {"job": job}))["state"] for job in jobs]
        if all(s == "running" for s in states):
            break
        await trio.sleep(0.01)
    return jobs


async def test_follower_runs_after_its_producer_with_the_bytes_it_kept(shared: Shared, fresh_compute: Proc) -> None:
    producer, follower = job_id("prod"), job_id("follow")
    made = f"{producer}/result"
    prod_spec = JobSpec(call="weft.actors.builtins:echo", inputs={"x": "made by the producer"}, outputs=["result"])
    with trio.fail_after(30):
        async with peer(shared.b) as b, peer(fresh_compute.endpoint) as c:
            sleepers = await fill_slots(c, shared.b)
            await start_task(c, producer, prod_spec.to_wire(), outputs={"result": shared.b}, token=7)
            since = (await c.call("info", {}))["next"]
            # The storage named for the input is the one that does NOT hold
            # it: a follower that read from storage would fail `missing`.
            r = await start_follower(c, follower, made, shared.a, shared.b, [producer, 7], 8)
            assert r["state"] == "pending"
            # It reads nothing, so it reports no `fetching` step (one event
            # less per chain hop).
            assert await wait_done_by_events(c, follower, since) == ["pending", "running", "storing", "done"]
            done = await wait_done(c, follower)
            prod = await wait_done(c, producer)
            assert done["outcome"] == "success", done
            assert await read_object(b, f"{follower}/result") == b"made by the producer!"
            # It started on the value while the producer stored it, and
            # ended only once the producer's output was durable.
            assert done["started"] < prod["finished"] <= done["finished"]
            for slow in sleepers:
                await wait_done(c, slow)


async def test_follower_of_a_failed_producer_ends_unmet_naming_it(shared: Shared, fresh_compute: Proc) -> None:
    producer, follower = job_id("prod-fail"), job_id("follow-fail")
    bad = JobSpec(call="weft.actors.builtins:fail", inputs={"message": "no bytes today"}, outputs=["result"])
    with trio.fail_after(30):
        async with peer(fresh_compute.endpoint) as c:
            sleepers = await fill_slots(c, shared.b)
            await start_task(c, producer, bad.to_wire(), outputs={"result": shared.b}, token=3)
            await start_follower(c, follower, f"{producer}/result", shared.b, shared.b, [producer, 3], 4)
            done = await wait_done(c, follower)
            for slow in sleepers:
                await wait_done(c, slow)
    assert done["outcome"] == "failed-soft"
    assert done.get("unmet") is True  # the coordinator queues it again, uncounted
    assert producer in done["cause"] and "failed-hard" in done["cause"]


async def ran_ahead_of_a_refused_producer(shared: Shared, compute: Proc, tag: str, start, check) -> bool:
    """A producer whose write storage refuses (its output is already finished
    by a newer attempt), and a follower `start(c, producer, made)` started
    ahead of it; `check(b, done, producer, follower)` asserts each try's outcome. The
    refusal is quick, so on a loaded machine the producer may end before the
    follower runs: then the case under test did not happen, and it is tried
    again, up to four times. True once the follower ran on the value."""
    for attempt in range(4):
        producer = job_id(f"prod-{tag.replace(' ', '-')}-{attempt}")
        made = f"{producer}/result"
        prod_spec = JobSpec(call="weft.actors.builtins:echo", inputs={"x": f"{tag} {attempt}"}, outputs=["result"])
        with trio.fail_after(30):
            async with peer(shared.b) as b, peer(compute.endpoint) as c:
                w = ObjectWriter(b, made, 1 << 40)
                await w.write(b"the newer attempt's")
                await w.close()
                sleepers = await fill_slots(c, shared.b)
                await start_task(c, producer, prod_spec.to_wire(), outputs={"result": shared.b}, token=9)
                follower = await start(c, producer, made, attempt)
                done = await wait_done(c, follower)
                prod = await wait_done(c, producer)
                for slow in sleepers:
                    await wait_done(c, slow)
                assert prod["outcome"] == "failed-soft", prod
                await check(b, done, producer, follower)
        if done.get("started") is not None and done["started"] < prod["finished"]:
            return True
    return False


async def test_follower_whose_producer_could_not_store_its_value_ends_unmet_and_writes_nothing(
    shared: Shared, fresh_compute: Proc
) -> None:
    # The producer's value (which the follower ran on) never became durable.
    async def start(c, producer: str, made: str, attempt: int) -> str:
        follower = job_id(f"follow-unstored-{attempt}")
        await start_follower(c, follower, made, shared.b, shared.b, [producer, 9], 10)
        return follower

    async def check(b, done: dict, producer: str, follower: str) -> None:
        assert done["outcome"] == "failed-soft", done
        assert done.get("unmet") is True  # queued again by the coordinator, uncounted
        assert producer in done["cause"]
        # ...and it stored nothing of what it made from it.
        with pytest.raises(RemoteError):
            await read_object(b, f"{follower}/result")

    assert await ran_ahead_of_a_refused_producer(shared, fresh_compute, "never stored", start, check), (
        "the follower never ran on its producer's value before the producer ended")


async def test_follower_failing_on_a_value_never_stored_ends_unmet_not_failed(
    shared: Shared, fresh_compute: Proc
) -> None:
    # Its call raised on the value, but that value was never durable: the
    # failure is not the job's to keep (a rerun reads the real input).
    async def start(c, producer: str, made: str, attempt: int) -> str:
        follower = job_id(f"follow-raise-{attempt}")
        raiser = JobSpec(call="weft.actors.builtins:fail", refs={"message": made}, outputs=["result"])
        await c.call("start", {
            "job": follower, "spec": raiser.to_wire(), "inputs": {"message": shared.b},
            "outputs": {"result": shared.b}, "after": {"message": [producer, 9]}, "token": 10,
        })
        return follower

    async def check(b, done: dict, producer: str, follower: str) -> None:
        assert done["outcome"] == "failed-soft" and done.get("unmet") is True, done

    assert await ran_ahead_of_a_refused_producer(shared, fresh_compute, "raise on me", start, check), (
        "the follower never ran on its producer's value before the producer ended")


NOOP = JobSpec(call="weft.actors.builtins:noop", outputs=["result"]).to_wire()  # returns b""
EMPTY = [None, 0, b""]


async def test_an_empty_callable_output_is_stored_nowhere_and_its_follower_takes_it(
    shared: Shared, fresh_compute: Proc
) -> None:
    producer, follower = job_id("prod-empty"), job_id("follow-empty")
    made = f"{producer}/result"
    with trio.fail_after(30):
        async with peer(shared.b) as b, peer(fresh_compute.endpoint) as c:
            sleepers = await fill_slots(c, shared.b)
            await start_task(c, producer, NOOP, outputs={"result": shared.b}, token=13)
            r = await start_follower(c, follower, made, shared.b, shared.b, [producer, 13], 14)
            assert r["state"] == "pending"
            done = await wait_done(c, follower)
            prod = await wait_done(c, producer)
            for slow in sleepers:
                await wait_done(c, slow)
            assert prod["outcome"] == "success", prod
            # Written nowhere: the done says so, and storage never got it.
            assert prod["stored"] == {"result": EMPTY}
            with pytest.raises(RemoteError):
                await read_object(b, made)
            assert done["outcome"] == "success", done
            assert await read_object(b, f"{follower}/result") == b"!"


async def test_a_callable_with_nothing_to_store_reports_no_storing_step(shared: Shared, fresh_compute: Proc) -> None:
    # A no-op's output is held by the coordinator: nothing is written, its
    # `done` follows at once, so it reports no `storing` step (an event and
    # a parse less per task). A callable with bytes to store still does.
    empty, full = job_id("noop-steps"), job_id("hello-steps")
    hello = JobSpec(call="weft.actors.builtins:hello", outputs=["result"]).to_wire()
    with trio.fail_after(30):
        async with peer(shared.b) as b, peer(fresh_compute.endpoint) as c:
            since = (await c.call("info", {}))["next"]
            await start_task(c, empty, NOOP, outputs={"result": shared.b}, token=17)
            assert await wait_done_by_events(c, empty, since) == ["pending", "running", "done"]
            done = await wait_done(c, empty)
            assert done["outcome"] == "success" and done["stored"] == {"result": EMPTY}, done
            since = (await c.call("info", {}))["next"]
            await start_task(c, full, hello, outputs={"result": shared.b}, token=18)
            assert await wait_done_by_events(c, full, since) == ["pending", "running", "storing", "done"]
            assert await read_object(b, f"{full}/result") == b"hello from weft: hello, world\n"
            assert (await c.call("info", {}))["busy"] == 0  # both gave their slot back


async def test_a_follower_started_after_its_producer_ended_empty_takes_the_empty_bytes(
    shared: Shared, fresh_compute: Proc
) -> None:
    # A no-op ends before its follower's start arrives; its output is on no
    # storage node, so reading it there would find it missing (unmet, a
    # needless second start from the coordinator).
    producer, follower = job_id("prod-empty-gone"), job_id("follow-empty-late")
    with trio.fail_after(30):
        async with peer(shared.b) as b, peer(fresh_compute.endpoint) as c:
            await start_task(c, producer, NOOP, outputs={"result": shared.b}, token=15)
            prod = await wait_done(c, producer)
            assert prod["outcome"] == "success" and prod["stored"] == {"result": EMPTY}, prod
            await start_follower(c, follower, f"{producer}/result", shared.b, shared.b, [producer, 15], 16)
            done = await wait_done(c, follower)
            assert done["outcome"] == "success" and not done.get("unmet"), done
            assert await read_object(b, f"{follower}/result") == b"!"


async def test_follower_of_a_command_reads_its_output_from_storage(shared: Shared, fresh_compute: Proc) -> None:
    producer, follower = job_id("prod-cmd"), job_id("follow-cmd")
    cmd = JobSpec(command=[PY, "-c", "import time; time.sleep(0.3); print('from a command')"], outputs=["stdout"])
    with trio.fail_after(30):
        async with peer(shared.b) as b, peer(fresh_compute.endpoint) as c:
            await start_task(c, producer, cmd.to_wire(), outputs={"stdout": shared.b}, token=5)
            since = (await c.call("info", {}))["next"]
            await start_follower(c, follower, f"{producer}/stdout", shared.b, shared.b, [producer, 5], 6)
            # Its input is read from storage: that is a `fetching` step.
            assert await wait_done_by_events(c, follower, since) == ["pending", "fetching", "running", "storing", "done"]
            done = await wait_done(c, follower)
            assert done["outcome"] == "success", done
            assert await read_object(b, f"{follower}/result") == b"from a command\n!"


async def test_follower_whose_producer_is_not_here_and_not_made_ends_unmet(
    shared: Shared, fresh_compute: Proc
) -> None:
    # The producer ran elsewhere (or its start has not arrived): storage does
    # not have the input, which is news of a missing input, not a failure.
    follower = job_id("follow-orphan")
    with trio.fail_after(30):
        async with peer(fresh_compute.endpoint) as c:
            elsewhere = job_id("elsewhere")
            await start_follower(c, follower, f"{elsewhere}/result", shared.b, shared.b, [elsewhere, 1], 2)
            done = await wait_done(c, follower)
    assert done["outcome"] == "failed-soft"
    assert done.get("unmet") is True
    assert "not made yet" in done["cause"]


async def test_after_naming_no_input_is_refused(shared: Shared, fresh_compute: Proc) -> None:
    with trio.fail_after(20):
        async with peer(fresh_compute.endpoint) as c:
            r = await c.call("start_many", {"tasks": [{
                "job": job_id("bad-after"), "spec": concat_spec(a=f"{job_id('p')}/result"),
                "inputs": {"a": shared.b}, "outputs": {"result": shared.b},
                "after": {"b": [job_id("p"), 1]},
            }]})
    err = r["tasks"][0]["error"]
    assert err["code"] == "bad-request"
    assert "'b'" in err["message"] and "not an input" in err["message"]


async def in_line(c, n: int) -> None:
    """Wait (bounded) until `n` tasks wait for room on the node."""
    for _ in range(200):
        if (await c.call("info", {}))["waiting"] >= n:
            return
        await trio.sleep(0.01)
    raise AssertionError(f"{n} tasks never waited for room")


async def _queued_behind_a_producer(shared: Shared, compute: Proc, tag: str, priority: int) -> tuple[dict, list[dict]]:
    """Both slots busy; then a producer, three queued sleepers of `priority`
    (0.4, 0.8 and 0.4 s, so no two of them free a slot in the same instant:
    two tasks given slots microseconds apart stamp their starts in whatever
    order trio wakes them), and the producer's follower. Its follower's
    summary, the sleepers'."""
    producer, follower = job_id(f"prod-{tag}"), job_id(f"follow-{tag}")
    prod_spec = JobSpec(call="weft.actors.builtins:echo", inputs={"x": tag}, outputs=["result"])
    specs = [JobSpec(call="weft.actors.builtins:sleep", inputs={"seconds": s}, outputs=["result"],
                     priority=priority) for s in ("0.4", "0.8", "0.4")]
    others = [job_id(f"queued-{tag}") for _ in range(3)]
    with trio.fail_after(30):
        async with peer(compute.endpoint) as c:
            sleepers = await fill_slots(c, shared.b)
            # Each in line before the next starts (trio does not run new
            # tasks in the order they were started).
            await start_task(c, producer, prod_spec.to_wire(), outputs={"result": shared.b}, token=5)
            await in_line(c, 1)
            for n, (job, spec) in enumerate(zip(others, specs, strict=True), 2):
                await start_task(c, job, spec.to_wire(), outputs={"result": shared.b}, token=1)
                await in_line(c, n)
            await start_follower(c, follower, f"{producer}/result", shared.b, shared.b, [producer, 5], 6)
            done = await wait_done(c, follower)
            ends = [await wait_done(c, job) for job in others]
            for slow in sleepers + [producer]:
                await wait_done(c, slow)
    assert done["outcome"] == "success", done
    return done, ends


async def test_a_follower_whose_input_is_ready_goes_ahead_of_queued_tasks(shared: Shared, fresh_compute: Proc) -> None:
    # Depth first: the producer's slot goes to the next queued task at once
    # (the follower wakes a moment later), but the follower takes the slot
    # that frees after that, before the last queued task; in arrival order it
    # would start after all three.
    done, queued = await _queued_behind_a_producer(shared, fresh_compute, "first", 0)
    assert done["started"] < queued[2]["started"]


async def test_a_follower_does_not_go_ahead_of_a_queued_task_of_higher_priority(
        shared: Shared, fresh_compute: Proc) -> None:
    done, queued = await _queued_behind_a_producer(shared, fresh_compute, "urgent", 5)
    assert done["started"] > max(q["started"] for q in queued)
