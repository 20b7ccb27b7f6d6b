"""An input with several copies: a storage node that failed the compute node
is tried last for a while, so each read does not pay for it again."""

from __future__ import annotations

import trio

from weft.actors.model import JobSpec
from weft.actors.storage.client import write_bytes
from weft.localcluster.cluster import Proc

from .conftest import Shared, job_id, peer, start_task, wait_done
from helpers import SilentStorage, await_for, free_endpoint


async def test_a_copy_that_failed_is_tried_last(shared: Shared, fresh_compute: Proc) -> None:
    made = f"{job_id('copies-src')}/out"
    spec = JobSpec(call="weft.actors.builtins:concat", inputs={"z": "!"}, refs={"a": made}, outputs=["result"]).to_wire()
    flaky = SilentStorage(free_endpoint())
    with trio.fail_after(60):
        async with peer(shared.a) as a, peer(fresh_compute.endpoint) as c, trio.open_nursery() as nursery:
            await write_bytes(a, made, b"the bytes", 1)
            await nursery.start(flaky.serve)
            # The first read goes to the flaky copy, which takes the call and dies.
            first = job_id("copies-1")
            await start_task(c, first, spec, inputs={"a": [[flaky.endpoint, shared.a], made]},
                             outputs={"result": shared.a}, token=1)
            await wait_for_calls(flaky, 1)
            flaky.vanish()
            done = await wait_done(c, first)
            assert done["outcome"] == "success", done  # from the other copy

            # It is back on the same endpoint, still answering nothing: a
            # read that tried it first would hang there until its timeout.
            flaky = SilentStorage(flaky.endpoint)
            nursery.start_soon(flaky.serve)
            second = job_id("copies-2")
            await start_task(c, second, spec, inputs={"a": [[flaky.endpoint, shared.a], made]},
                             outputs={"result": shared.a}, token=1)
            done = await wait_done(c, second)
            assert done["outcome"] == "success", done
            assert flaky.calls == 0
            flaky.vanish()


async def wait_for_calls(flaky: SilentStorage, n: int) -> None:
    await await_for(lambda: flaky.calls >= n, 10, f"{n} calls to the flaky copy")
