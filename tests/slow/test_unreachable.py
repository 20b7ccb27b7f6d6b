"""A task that needs a storage node which just had no connection checks it
with a short ping first, instead of each such task waiting out the 3 s
connect timeout in turn (tasks queued with the old endpoint of a storage
node that came back on a new one did that). Real daemons and sockets."""

from __future__ import annotations

import signal

import trio
from e2e.conftest import Daemons, job_id, peer, start_task, wait_done

from weft.actors.model import JobSpec

from helpers import free_endpoint

SPEC = JobSpec(call="weft.actors.builtins:echo", inputs={"x": "bytes"}, outputs=["result"]).to_wire()


async def _run(compute: object, storage: str) -> dict:
    job = job_id("unreachable")
    await start_task(compute, job, SPEC, outputs={"result": storage}, token=1)
    return await wait_done(compute, job)


async def test_a_task_for_a_storage_node_with_no_connection_fails_soft_on_a_short_probe(daemons: Daemons) -> None:
    compute = daemons.compute("compute-u")
    gone = free_endpoint()  # nothing listens there: a storage node that died
    with trio.fail_after(60):
        async with peer(compute.endpoint) as c:
            first = await _run(c, gone)
            assert first["outcome"] == "failed-soft", first
            assert "'put'" in first["cause"] and "no connection within 3s" in first["cause"], first
            # The next task that needs it probes: a ping, not a put waiting 3 s.
            second = await _run(c, gone)
            assert second["outcome"] == "failed-soft", second
            assert "within 0.5s of a ping" in second["cause"], second
            # Back on that endpoint: tasks write there again (the first may
            # still probe before ZeroMQ has reconnected).
            storage = daemons.start("storage", "storage-u", "--listen", gone)
            outcomes = []
            for _ in range(10):
                done = await _run(c, gone)
                outcomes.append(done["outcome"])
                if done["outcome"] == "success":
                    break
                await trio.sleep(0.5)
            assert outcomes[-1] == "success", outcomes
            # Killed while no call is in flight: the dropped connection alone
            # makes the next task probe, not a put that waits 3 s.
            storage.signal(signal.SIGKILL)
            await trio.sleep(0.5)  # the compute node's socket sees the drop
            third = await _run(c, gone)
            assert third["outcome"] == "failed-soft", third
            assert "within 0.5s of a ping" in third["cause"], third
