"""Storage and compute daemons end to end, the tests that break one: storage
killed while a task writes to it, storage restarted on its data dir, SIGTERM
on a compute node mid-command. Each starts the daemons it breaks (`daemons`).
(Jobs run on healthy daemons: test_storage_compute.py; 200 MiB in bounded
memory: test_storage_compute_big.py.)
"""

from __future__ import annotations

import os
import random
import signal
import sys
from pathlib import Path

import pytest
import trio

from weft.actors.model import JobSpec
from weft.bus.errors import BusError

from .conftest import (
    Daemons,
    Shared,
    job_id,
    peer,
    process_gone,
    read_object,
    start_task,
    stat_state,
    wait_done,
    wait_for,
)

PY = sys.executable
MiB = 1 << 20


# -- 4. storage killed while a task writes to it ---------------------------------------------

SLOW_WRITER = r"""
import os, sys, time
with open(os.environ["WEFT_INPUT_PIDFILE"], "w") as f:
    f.write(str(os.getpid()))
chunk = b"w" * 65536
out = sys.stdout.buffer
for _ in range(800):  # 50 MiB, slowly
    out.write(chunk)
    out.flush()
    time.sleep(0.005)
"""


async def test_storage_killed_during_output_fails_task_soft(
    shared: Shared, daemons: Daemons, tmp_path: Path
) -> None:
    st = daemons.storage("storage-victim")
    job = job_id("slow")
    name = f"{job}/stdout"
    pidfile = tmp_path / "writer.pid"
    spec = JobSpec(command=[PY, "-c", SLOW_WRITER], inputs={"PIDFILE": str(pidfile)}, outputs=["stdout"])
    with trio.fail_after(60):
        async with peer(shared.c) as c:
            async with peer(st.endpoint) as s:
                await s.call("create", {"name": name})
                await start_task(c, job, spec.to_wire(), outputs={"stdout": st.endpoint})

                async def some_written() -> bool:
                    return (await s.call("stat", {"name": name}))["size"] >= 3 * MiB

                await wait_for(some_written, 20, what="3 MiB of the output on storage")
            assert (await c.call("result", {"job": job}))["state"] == "running"
            os.kill(st.pid, signal.SIGKILL)
            await trio.to_thread.run_sync(st.popen.wait, 10)
            r = await wait_done(c, job, timeout=40)
    assert r["outcome"] == "failed-soft", r
    assert "storage" in r["cause"] and "stdout" in r["cause"], r["cause"]
    assert process_gone(int(pidfile.read_text())), "the writer outlived its task"


# -- 5. storage restarted on the same data dir --------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
async def test_storage_restart_serves_finished_objects_byte_identical(
    daemons: Daemons, sig: signal.Signals
) -> None:
    rnd = random.Random(5)
    objects = {
        "keep/empty": b"",
        "keep/small": b"hello\n",
        "keep/inline": rnd.randbytes(60_000),
        "keep/file": rnd.randbytes(200_000),
        "keep/big": rnd.randbytes(3 * MiB + 123),
    }
    st = daemons.storage("storage-restart")
    with trio.fail_after(60):
        async with peer(st.endpoint, timeout=30) as s:
            for name, data in objects.items():
                if len(data) <= MiB:
                    info = await s.call("put", {"name": name, "data": data})
                else:  # the way compute streams a large output
                    await s.call("create", {"name": name, "token": 7})
                    for off in range(0, len(data), MiB):
                        chunk = data[off : off + MiB]
                        await s.call("populate", {"name": name, "data": chunk, "token": 7, "offset": off})
                    info = await s.call("finish", {"name": name, "token": 7, "size": len(data)})
                assert (info["state"], info["size"]) == ("finished", len(data))
            await s.call("create", {"name": "keep/never-written"})
            await s.call("create", {"name": "keep/half"})
            await s.call("populate", {"name": "keep/half", "data": b"partial"})
            listed = {o["name"]: o for o in (await s.call("list", {}))["objects"]}

        if sig == signal.SIGTERM:
            assert await trio.to_thread.run_sync(st.stop) == 0
        else:
            os.kill(st.pid, signal.SIGKILL)
            await trio.to_thread.run_sync(st.popen.wait, 10)
            st.stop()  # closes its log
        st2 = await trio.to_thread.run_sync(
            lambda: daemons.storage("storage-restart", data_dir=st.data_dir)
        )

        async with peer(st2.endpoint, timeout=30) as s:
            relisted = {o["name"]: o for o in (await s.call("list", {}))["objects"]}
            for name, data in objects.items():
                assert relisted[name] == listed[name]
                assert await read_object(s, name) == data, name
            for name in ("keep/never-written", "keep/half"):
                if sig == signal.SIGKILL and name not in relisted:
                    continue  # a create not yet flushed when killed is as if never made
                assert relisted[name]["state"] != "finished"
                with pytest.raises(BusError, match="not finished"):
                    await read_object(s, name)


# -- 9. SIGTERM on a compute node stops the command's whole process group -----------------

LONG_RUNNER = r"""
import os, signal, subprocess, time
child = subprocess.Popen(["sleep", "60"])  # same process group as this command
if os.environ["WEFT_INPUT_STUBBORN"] == "1":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
path = os.environ["WEFT_INPUT_PIDFILE"]
with open(path + ".tmp", "w") as f:
    f.write("%d %d" % (os.getpid(), child.pid))
os.rename(path + ".tmp", path)
print("started", flush=True)
time.sleep(60)
"""


@pytest.mark.parametrize("stubborn", [False, True], ids=["plain", "ignores-sigterm"])
async def test_sigterm_on_compute_stops_the_command_and_leaves_output_unfinished(
    shared: Shared, daemons: Daemons, tmp_path: Path, stubborn: bool
) -> None:
    cp = daemons.compute("compute-term", slots=1)
    job = job_id("long")
    name = f"{job}/stdout"
    pidfile = tmp_path / "pids"
    spec = JobSpec(
        command=[PY, "-c", LONG_RUNNER],
        inputs={"PIDFILE": str(pidfile), "STUBBORN": "1" if stubborn else "0"},
        outputs=["stdout"],
    )
    with trio.fail_after(60):
        async with peer(shared.b) as b:
            await b.call("create", {"name": name})
            async with peer(cp.endpoint) as c:
                await start_task(c, job, spec.to_wire(), outputs={"stdout": shared.b})
                await wait_for(pidfile.exists, 20, what="the command to start")
                assert (await c.call("result", {"job": job}))["state"] == "running"
            pids = [int(p) for p in pidfile.read_text().split()]
            assert not any(process_gone(p) for p in pids)

            t0 = trio.current_time()
            rc = await trio.to_thread.run_sync(cp.stop)  # SIGTERM; SIGKILL after 10 s
            took = trio.current_time() - t0
            alive = [p for p in pids if not process_gone(p)]
            state = await stat_state(b, name)

            # Started again on its data dir, the node reports the task interrupted.
            cp2 = await trio.to_thread.run_sync(
                lambda: daemons.compute("compute-term", slots=1, data_dir=cp.data_dir)
            )
            async with peer(cp2.endpoint) as c:
                after = await c.call("result", {"job": job})
    assert rc == 0, f"compute exited with {rc} after {took:.1f}s"
    assert alive == [], f"processes of the command outlived the compute node: {alive}"
    assert state in ("empty", "partial"), f"output reported {state} though the task never finished"
    assert took < 8
    assert (after["state"], after["outcome"]) == ("done", "failed-soft"), after
    if "shutting down" in after["cause"]:
        # It ended within the shutdown (a command slower to die outlasts the
        # task log and reads "restarted" instead) and says why as a field too.
        assert after.get("code") == "shutting-down", after
