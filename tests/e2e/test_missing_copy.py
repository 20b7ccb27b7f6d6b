"""An input listed on a storage node that does not have it (a copy a
write dropped when its node restarted mid-write), or has it unfinished (a
replica the write dropped as too slow), is read from the input's
next copy, as one on an unreachable node is; the task fails soft only when
no copy has it. Real storage and compute daemons (the session's shared ones)."""

from __future__ import annotations

import trio

from weft.actors.model import JobSpec
from weft.actors.storage.client import write_bytes

from .conftest import PY, Shared, job_id, peer, read_object, start_task, wait_done

CAT = "import os, sys; sys.stdout.buffer.write(open(os.path.join(os.environ['WEFT_INPUTS'], 'a'), 'rb').read())"


def _concat_reading(made: str) -> dict:
    """A callable's spec whose input `a` is the object `made` (+ "!")."""
    return JobSpec(call="weft.actors.builtins:concat", inputs={"z": "!"}, refs={"a": made},
                   outputs=["result"]).to_wire()


async def test_an_input_missing_from_its_first_copy_is_read_from_the_next(shared: Shared) -> None:
    made = f"{job_id('missing-src')}/out"
    call = _concat_reading(made)
    command = JobSpec(command=[PY, "-c", CAT], refs={"a": made}, outputs=["stdout"]).to_wire()
    with trio.fail_after(60):
        async with peer(shared.a) as a, peer(shared.c) as c:
            await write_bytes(a, made, b"the bytes", 1)  # on A only: B lacks it
            in_memory, to_file = job_id("missing-call"), job_id("missing-cmd")
            await start_task(c, in_memory, call, inputs={"a": [[shared.b, shared.a], made]},
                             outputs={"result": shared.a}, token=1)
            await start_task(c, to_file, command, inputs={"a": [[shared.b, shared.a], made]},
                             outputs={"stdout": shared.a}, token=1)
            done = await wait_done(c, in_memory), await wait_done(c, to_file)
            assert [d["outcome"] for d in done] == ["success", "success"], done
            assert await read_object(a, f"{in_memory}/result") == b"the bytes!"
            assert await read_object(a, f"{to_file}/stdout") == b"the bytes"


async def test_an_input_no_copy_has_fails_the_task_soft_naming_it(shared: Shared) -> None:
    made = f"{job_id('nowhere')}/out"
    spec = _concat_reading(made)
    job = job_id("nowhere-call")
    with trio.fail_after(60):
        async with peer(shared.c) as c:
            await start_task(c, job, spec, inputs={"a": [[shared.b, shared.a], made]},
                             outputs={"result": shared.a}, token=1)
            done = await wait_done(c, job)
    assert done["outcome"] == "failed-soft", done
    assert done["code"] == "missing", done
    assert f"input 'a' ({made})" in done["cause"], done["cause"]


async def test_an_input_unfinished_on_its_first_copy_is_read_from_the_next(shared: Shared) -> None:
    made = f"{job_id('unfinished-src')}/out"
    spec = _concat_reading(made)
    job = job_id("unfinished-call")
    with trio.fail_after(60):
        async with peer(shared.a) as a, peer(shared.b) as b, peer(shared.c) as c:
            await write_bytes(a, made, b"the bytes", 1)
            await b.call("create", {"name": made, "token": 1})  # a replica the write gave up on
            await start_task(c, job, spec, inputs={"a": [[shared.b, shared.a], made]},
                             outputs={"result": shared.a}, token=1)
            done = await wait_done(c, job)
            assert done["outcome"] == "success", done
            assert await read_object(a, f"{job}/result") == b"the bytes!"
