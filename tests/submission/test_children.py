"""Child jobs on a real cluster: jobs submitted from inside a running job
(`weft submit` there, no options) form a tree under its root, the root's
spawn limit refuses one more, and decommissioning the root cancels what is
queued while what runs finishes."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import pytest
from cluster.conftest import Weft, wait_for

from weft.actors.client import Client
from weft.actors.model import JobSpec
from weft.bus.errors import BusError

WEFT = f"{shlex.quote(sys.executable)} -m weft"


def ok(p) -> str:
    assert p.returncode == 0, f"exit {p.returncode}: {p.stderr.strip()}"
    return p.stdout


def test_children_form_a_tree_and_the_spawn_limit_refuses_one_more(weft: Weft, client: Client) -> None:
    script = (f"{WEFT} submit --name a -- echo a && {WEFT} submit -- echo b && "
              f"{WEFT} submit --name c -- echo c 2>&1; echo rc=$?")
    ok(weft("submit", "--name", "tree1", "--max-spawns", "2", "--", "sh", "-c", script))
    st = client.wait(["tree1"], timeout=60)[0]
    assert st["state"] == "succeeded", st
    out = client.get("tree1/stdout").decode()
    assert "spawn-limit: root tree1 may spawn 2 jobs" in out and "rc=2" in out, out
    tree = json.loads(ok(weft("status", "--tree", "tree1", "--json")))
    ids = [j["job"] for j in tree["jobs"]]
    assert ids[0] == "tree1" and "tree1.a" in ids and len(ids) == 3, ids
    assert all(j["spawned_by"] == "tree1" for j in tree["jobs"][1:])
    assert tree["spawned"] == 2 and tree["max_spawns"] == 2
    assert client.wait(ids[1:], timeout=30)[0]["state"] == "succeeded"
    assert client.get("tree1.a/stdout") == b"a\n"
    text = ok(weft("status", "--tree", "tree1")).splitlines()
    assert text[0] == "tree1  succeeded" and "  tree1.a  succeeded" in text


def test_decommission_cancels_the_queued_and_lets_the_running_finish(weft: Weft, client: Client,
                                                                    tmp_path: Path) -> None:
    go = tmp_path / "go"
    hold = f"while [ ! -f {shlex.quote(str(go))} ]; do sleep 0.05; done"
    # The root and its first child take both slots; the second child queues.
    script = (f"{WEFT} submit --name busy -- sh -c {shlex.quote(hold + '; echo done')} && "
              f"{WEFT} submit --name later -- echo later && {hold}")
    ok(weft("submit", "--name", "tree2", "--", "sh", "-c", script))
    wait_for(lambda: {s["job"]: s["state"] for s in client.status(["tree2.busy", "tree2.later"])}
             == {"tree2.busy": "running", "tree2.later": "runnable"}
             if len(client.call("tree", {"root": "tree2"})["jobs"]) == 3 else None,
             30, "a running child and a queued one")
    r = json.loads(ok(weft("decommission", "tree2", "--json")))
    assert r["cancelled"] == ["tree2.later"]
    assert client.status(["tree2.later"])[0]["state"] == "cancelled"
    # No job may join the tree any more.
    with pytest.raises(BusError) as e:
        client.submit_specs([JobSpec(command=["true"], spawned_by="tree2")])
    assert e.value.code == "decommissioned"
    go.touch()
    assert [s["state"] for s in client.wait(["tree2", "tree2.busy"], timeout=30)] == ["succeeded", "succeeded"]
    assert client.get("tree2.busy/stdout") == b"done\n"


def test_a_callable_submits_children_under_its_own_job(client: Client) -> None:
    roots = [client.submit("callable_children:spawn_child", x=f"root-{i}") for i in range(2)]
    for root in roots:  # two calls in a row on warm workers: each sees its own job
        child, seen = root.result(timeout=60).decode().split()
        assert seen == root.job
        assert client.wait([child], timeout=30)[0]["state"] == "succeeded"
        tree = client.call("tree", {"root": root.job})["jobs"]
        assert [j["job"] for j in tree] == [root.job, child]
        assert tree[1]["spawned_by"] == root.job
        assert client.get(f"{child}/result").startswith(b"child of root-")
