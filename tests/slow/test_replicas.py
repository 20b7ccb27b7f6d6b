"""A slow copy costs a read or a write its latency bound, not the slowness.

Real storage and compute daemons; the slow storage node is either a stand-in
that takes calls and answers none (reads) or a real node under SIGSTOP
(writes). Compute starts with `--slow-after SLOW_AFTER`: the least latency
bound of a storage node it knows little about.
"""

from __future__ import annotations

import signal

import trio
from e2e.conftest import Daemons, job_id, peer, read_object, start_task, wait_done

from weft.actors.model import JobSpec
from weft.actors.storage.client import write_bytes

from helpers import SilentStorage, await_for, free_endpoint

SLOW_AFTER = 0.5
# The call timeout is 10 s: a read or write done within this did not wait it out.
WELL_BEFORE_TIMEOUT = 5.0


def concat_spec(made: str) -> dict:
    return JobSpec(call="weft.actors.builtins:concat", inputs={"z": "!"}, refs={"a": made},
                   outputs=["result"]).to_wire()


async def test_a_read_moves_to_the_next_copy_after_the_latency_bound(daemons: Daemons) -> None:
    store = daemons.storage("storage-a")
    compute = daemons.start("compute", "compute-r", "--slots", "2", "--slow-after", str(SLOW_AFTER))
    made = f"{job_id('hedge-src')}/out"
    silent = SilentStorage(free_endpoint())
    with trio.fail_after(60):
        async with peer(store.endpoint) as a, peer(compute.endpoint) as c, trio.open_nursery() as nursery:
            await write_bytes(a, made, b"the bytes", 1)
            await nursery.start(silent.serve)
            job = job_id("hedge")
            t0 = trio.current_time()
            # The silent copy is listed first, so it is tried first.
            await start_task(c, job, concat_spec(made), inputs={"a": [[silent.endpoint, store.endpoint], made]},
                             outputs={"result": store.endpoint}, token=1)
            done = await wait_done(c, job)
            took = trio.current_time() - t0
            assert done["outcome"] == "success", done
            assert silent.calls >= 1  # it was asked, and never answered
            assert await read_object(a, f"{job}/result") == b"the bytes!"
            # From the other copy after about the bound, not after the call timeout.
            assert SLOW_AFTER <= took < WELL_BEFORE_TIMEOUT, took
            nursery.cancel_scope.cancel()


async def _write_with_one_replica_stopped(daemons: Daemons, *extra: str) -> tuple[dict, str, str, object]:
    """A callable's output to two real storage nodes, the second SIGSTOPped
    for the whole write; (done summary, object, endpoint of the stopped one, it)."""
    a = daemons.storage("storage-a")
    b = daemons.storage("storage-b")
    compute = daemons.start("compute", "compute-w", "--slots", "2", "--slow-after", str(SLOW_AFTER), *extra)
    job = job_id("copies")
    spec = JobSpec(call="weft.actors.builtins:echo", inputs={"x": "replicated bytes"}, outputs=["result"]).to_wire()
    async with peer(a.endpoint) as pa, peer(compute.endpoint) as c:
        # A first write to both: the compute node is connected to both, as
        # in a running cluster (a node it never reached would cost a connect
        # timeout instead, another path), and knows their usual latency.
        warm = job_id("warm")
        await start_task(c, warm, spec, outputs={"result": [a.endpoint, b.endpoint]}, token=1)
        assert (await wait_done(c, warm))["outcome"] == "success"
        b.signal(signal.SIGSTOP)
        try:
            await start_task(c, job, spec, outputs={"result": [a.endpoint, b.endpoint]}, token=1)
            done = await wait_done(c, job, timeout=WELL_BEFORE_TIMEOUT)  # while b is still stopped
        finally:
            b.signal(signal.SIGCONT)
        assert done["outcome"] == "success", done
        assert await read_object(pa, f"{job}/result") == b"replicated bytes"
    return done, f"{job}/result", b.endpoint, b


async def test_by_default_a_write_drops_a_stopped_replica_after_its_bound_and_reports_it(daemons: Daemons) -> None:
    with trio.fail_after(60):
        done, name, stopped, _ = await _write_with_one_replica_stopped(daemons)
    # Done while the replica was still stopped, with that copy reported for repair.
    assert done.get("dropped") == [[name, stopped]], done


async def test_with_min_copies_1_a_write_completes_on_the_first_copy(daemons: Daemons) -> None:
    with trio.fail_after(60):
        done, name, stopped, _ = await _write_with_one_replica_stopped(daemons, "--min-copies", "1")
        # Nothing given up: the stopped replica's write goes on in the
        # background and finishes once the node runs again.
        assert "dropped" not in done, done
        async with peer(stopped) as pb:
            await await_for(lambda: _finished(pb, name), 15, f"{name} finished on the resumed replica")
            assert await read_object(pb, name) == b"replicated bytes"


async def _finished(storage, name: str) -> bool:
    try:
        return (await storage.call("stat", {"name": name}))["state"] == "finished"
    except Exception:
        return False
