"""Jobs cannot touch each other or the cluster (issue 19; docs/security.md, Job isolation).

One local cluster: a coordinator, a storage node and three compute nodes of
one slot (so callables share one worker): one sandboxed as root
(`--isolation namespace`: only the namespace stops the attacks there), one
open (`--isolation none`), and one sandboxed as a user (`--isolation
namespace --run-as weft-testjob`, as deployed). Each attack runs as the same
command on all: it fails on the sandboxed nodes and works on the open one,
so what stops it is the sandbox, not a missing file. Every daemon's data is
under the test's temporary directory, which a job on the open node reads as
the node's own user (root).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from isolation_support import job_user, need_sandbox

from weft.actors.client import Client
from weft.localcluster.cluster import LocalCluster

from helpers import wait_for

TIMEOUT = 30.0


@pytest.fixture(scope="module")
def iso(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalCluster, Client]]:
    need_sandbox()
    user = job_user()
    fns = tmp_path_factory.mktemp("fns")
    (fns / "weft_iso_fns.py").write_text(FNS)
    c = LocalCluster(tmp_path_factory.mktemp("iso"), compute=0, storage=1, slots=1, import_path=[str(fns)])
    try:
        c.start(timeout=TIMEOUT)
        for args in (["--isolation", "namespace"], ["--isolation", "none"],
                     ["--isolation", "namespace", "--run-as", user.pw_name]):
            c.compute_args = args
            c.add_compute(wait=False)
        for p in c.computes:
            p.wait_ready(TIMEOUT)
        c.wait_nodes(3, 1, TIMEOUT)
        with Client(c.endpoint, timeout=10.0, retry_for=10.0) as client:
            yield c, client
    finally:
        c.stop(grace=5.0)


FNS = '''
import json, os

def poison(**_):
    json.dumps = lambda *a, **k: "poisoned"
    os.environ["WEFT_ISO_POISON"] = "1"
    os.chdir("/")
    return "done"

def probe(**_):
    return json.dumps([1]) + "|" + os.environ.get("WEFT_ISO_POISON", "-") + "|" + str(os.getcwd() == "/")
'''

SANDBOXED, OPEN, AS_USER = 0, 1, 2


def node(c: LocalCluster, i: int) -> str:
    return c.node_name("compute", i)


def run(iso: tuple[LocalCluster, Client], on: int, script: str) -> tuple[str, bytes | None]:
    """Run `sh -c script` on one compute node: (its state, its stdout if it succeeded)."""
    c, client = iso
    f = client.submit(["sh", "-c", script, f"on-{on}"], node=node(c, on))
    [st] = client.wait([f], timeout=TIMEOUT)
    return st["state"], f.result(timeout=TIMEOUT) if st["state"] == "succeeded" else None


def both(iso: tuple[LocalCluster, Client], script: str) -> tuple[tuple[str, bytes | None], tuple[str, bytes | None]]:
    """The script on the sandboxed nodes (the state of each, joined: 'failed failed') and on the open one."""
    boxed = [run(iso, on, script) for on in (SANDBOXED, AS_USER)]
    return (" ".join(b[0] for b in boxed), boxed[0][1]), run(iso, OPEN, script)


def test_a_job_cannot_read_the_coordinators_journal(iso: tuple[LocalCluster, Client]) -> None:
    journal = iso[0].data_dir / "coordinator" / "journal.sqlite"
    assert journal.is_file()
    (boxed, _), (state, out) = both(iso, f"head -c 15 {journal}")
    assert boxed == "failed failed"
    assert state == "succeeded" and out == b"SQLite format 3"


def test_a_job_cannot_read_another_jobs_task_directory(iso: tuple[LocalCluster, Client]) -> None:
    c, client = iso
    # The other job keeps its directory (a finished task's is recycled) until the test lets it end.
    other = client.submit(["sh", "-c", "echo other-secret > secret; for i in $(seq 200); do [ -e done ] && exit 0; "
                           "sleep 0.1; done; exit 1", "other"], node=node(c, AS_USER))
    work = c.data_dir / f"compute-{AS_USER}" / "tasks" / other.job / "work"
    try:
        wait_for(lambda: (work / "secret").is_file(), 15, "the other job's secret file")
        boxed, _ = run(iso, SANDBOXED, f"cat {work}/secret")
        state, out = run(iso, OPEN, f"cat {work}/secret")
        assert boxed == "failed"
        assert state == "succeeded" and out == b"other-secret\n"
    finally:
        (work / "done").touch()
    assert client.wait([other], timeout=TIMEOUT)[0]["state"] == "succeeded"


def _object_file(c: LocalCluster, client: Client, tag: str) -> Path:
    """A storage node's file holding the output of a job run for it (big enough not to be kept inline)."""
    f = client.submit(["sh", "-c", f"yes {tag} | head -c 200000", tag])
    content = f.result(timeout=TIMEOUT)
    assert content is not None and content.startswith(f"{tag}\n".encode()) and len(content) == 200000
    files = [p for p in (c.data_dir / "storage-0" / "objects").rglob("*") if p.is_file()
             and p.stat().st_size == len(content) and p.read_bytes() == content]
    assert files, "the output's object file was not found on the storage node"
    return files[0]


def test_a_job_cannot_read_a_storage_nodes_object_file(iso: tuple[LocalCluster, Client]) -> None:
    obj = _object_file(*iso, "stored-secret")
    (boxed, _), (state, out) = both(iso, f"head -n 1 {obj}")
    assert boxed == "failed failed"
    assert state == "succeeded" and out == b"stored-secret\n"


def test_a_job_cannot_write_a_storage_nodes_object_file(iso: tuple[LocalCluster, Client]) -> None:
    obj = _object_file(*iso, "immutable-output")
    for on in (SANDBOXED, AS_USER):
        boxed, _ = run(iso, on, f"echo forged > {obj}")
        assert boxed == "failed" and obj.read_bytes().startswith(b"immutable-output\n")
    state, _ = run(iso, OPEN, f"echo forged > {obj}")
    assert state == "succeeded" and obj.read_bytes() == b"forged\n"


def test_run_as_makes_the_job_that_user_and_the_node_says_so(iso: tuple[LocalCluster, Client]) -> None:
    state, out = run(iso, AS_USER, "id -u")
    assert state == "succeeded" and int(out) == job_user().pw_uid
    assert int(run(iso, OPEN, "id -u")[1]) == 0  # the open node runs jobs as itself (root here)
    views = {n["node"]: n for n in iso[1].nodes()}
    assert views[node(iso[0], AS_USER)]["isolation"]["run_as"] == job_user().pw_name
    assert views[node(iso[0], SANDBOXED)]["isolation"]["mode"] == "namespace"
    assert views[node(iso[0], OPEN)]["isolation"]["mode"] == "none"


def test_a_callable_that_monkeypatches_does_not_change_the_next_job(iso: tuple[LocalCluster, Client]) -> None:
    c, client = iso

    def call(fn: str, on: int) -> bytes | None:
        return client.submit(f"weft_iso_fns:{fn}", node=node(c, on), tag=f"{fn}-{on}").result(timeout=TIMEOUT)

    assert call("poison", SANDBOXED) == b"done"
    assert call("probe", SANDBOXED) == b"[1]|-|False"
    # The open node keeps its warm worker as it was left: the attack works there.
    assert call("poison", OPEN) == b"done"
    assert call("probe", OPEN) == b"poisoned|1|True"


def test_a_sandboxed_job_still_reads_its_inputs_and_its_outputs_are_kept(iso: tuple[LocalCluster, Client]) -> None:
    c, client = iso
    made = client.submit(["sh", "-c", "yes input-line | head -n 3", "made"], node=node(c, OPEN))
    for on in (SANDBOXED, AS_USER):
        f = client.submit(["sh", "-c", "cat $WEFT_INPUTS/x; mkdir -p $WEFT_OUTPUTS/d; echo deep > $WEFT_OUTPUTS/d/f; "
                           "echo 1 > $WEFT_OUTPUTS/o", f"reader-{on}"],
                          outputs=["stdout", "o", "d"], x=made, node=node(c, on))
        [st] = client.wait([f], timeout=TIMEOUT)
        assert st["state"] == "succeeded", st
        assert f.result(timeout=TIMEOUT) == b"input-line\n" * 3
        assert client.get(f"{f.job}/o") == b"1\n"
