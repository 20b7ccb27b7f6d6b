"""A task's failure reason travels as its report's `code` field, never inside
the human `cause`: real compute and storage daemons, as the coordinator sees them."""

from __future__ import annotations

import trio

from weft.actors.model import JobSpec

from .conftest import Shared, job_id, peer, start_task, wait_done


async def test_a_storage_refusal_fails_the_task_soft_with_its_code_beside_the_cause(shared: Shared) -> None:
    job = job_id("late")
    with trio.fail_after(30):
        async with peer(shared.b) as b, peer(shared.c) as c:
            # A newer attempt owns the output: this (older) one is refused.
            await b.call("create", {"name": f"{job}/stdout", "token": 10})
            await start_task(c, job, JobSpec(command=["echo", "late"], outputs=["stdout"]).to_wire(),
                             outputs={"stdout": shared.b}, token=5)
            r = await wait_done(c, job)
    assert r["outcome"] == "failed-soft", r
    assert r["code"] == "fenced", r
    assert "'stdout'" in r["cause"] and "stale" in r["cause"], r
    assert "fenced" not in r["cause"] and not r["cause"].rstrip().endswith("]"), r["cause"]


async def test_a_command_that_does_not_exist_fails_hard_with_its_code_beside_the_cause(shared: Shared) -> None:
    job = job_id("nocmd")
    with trio.fail_after(30):
        async with peer(shared.c) as c:
            await start_task(c, job, JobSpec(command=["weft-e2e-no-such-command"]).to_wire())
            r = await wait_done(c, job)
    assert r["outcome"] == "failed-hard", r
    assert r["code"] == "command-not-found", r
    assert "weft-e2e-no-such-command" in r["cause"] and "command-not-found" not in r["cause"], r["cause"]
