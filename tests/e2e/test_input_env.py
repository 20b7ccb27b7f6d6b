"""Immediate inputs reach a command as `WEFT_INPUT_<NAME>` on a real compute
node, with the name's '-' and '.' turned into '_' (actors/compute/runner.py)."""

from __future__ import annotations

import trio

from weft.actors.model import JobSpec

from .conftest import Shared, job_id, peer, read_object, start_task, wait_done


async def test_an_input_name_with_a_dash_or_a_dot_becomes_an_underscore(shared: Shared) -> None:
    job = job_id("env-dash")
    spec = JobSpec(command=["sh", "-c", 'echo "$WEFT_INPUT_A_B"; echo "$WEFT_INPUT_X_Y_Z"'],
                   inputs={"a-b": "dash value", "x.y-z": "dot and dash"}, outputs=["stdout"]).to_wire()
    with trio.fail_after(60):
        async with peer(shared.c) as c, peer(shared.a) as a:
            await start_task(c, job, spec, outputs={"stdout": shared.a}, token=1)
            done = await wait_done(c, job)
            assert done["outcome"] == "success", done
            assert await read_object(a, f"{job}/stdout") == b"dash value\ndot and dash\n"
