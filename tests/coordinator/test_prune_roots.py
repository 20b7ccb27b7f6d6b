"""What `weft prune` keeps, in-process (prune.roots): the content objects a
kept job reads, its exit action's flow names and a recurring job's spec
names; and the directory outputs whose files it must read to keep."""

from __future__ import annotations

import trio

from weft.actors.coordinator import prune
from weft.actors.model import JobSpec
from weft.actors.trees import content_object

from .harness import Cluster, spec

A, B, C, D = (content_object(c * 64) for c in "abcd")


def test_roots_are_what_kept_jobs_recurring_jobs_and_exit_flows_name() -> None:
    c = Cluster()
    c.object_finished(A)  # (a put: on storage, made by no job)
    reader = JobSpec(command=["cat"], refs={"src": A}, outputs=["stdout"])
    flow = {"submit": {"jobs": {"cleanup": {"command": ["sh"], "inputs": {"tool": "@" + B.split("/")[0]}}}}}
    failing = JobSpec(command=["false"], outputs=["stdout"], on_exit={"1": flow})
    builder = JobSpec(command=["make"], outputs=["stdout", "build"], dirs=["build"])
    c.submit(spec("plain"))
    c.state.submit([reader, failing, builder])
    c.state.define_recurring("nightly", JobSpec(command=["sh"], refs={"x": C}, outputs=["stdout"]), 3600.0)

    content, dirs, running_dirs, newest = trio.run(prune.roots, c.state)
    assert content == {A, B, C}  # not D: nothing names it
    assert dirs == {f"{builder.job_id()}/build"}
    assert running_dirs == float("inf")  # nothing with directory outputs runs

    # What was submitted after it, at once (the prune's last look before deleting).
    c.object_finished(D)
    c.state.submit([JobSpec(command=["cat"], refs={"late": D}, outputs=["stdout"])])
    assert prune.roots_since(c.state, newest)[0] == {C, D}  # (recurring jobs: always)
