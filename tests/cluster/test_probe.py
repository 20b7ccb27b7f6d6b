"""A callable whose module no compute node can import is refused at submit,
against a real cluster: `weft submit --call` as a user runs it."""

from __future__ import annotations

import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from observe.conftest import free_ports

from weft.localcluster.cluster import LocalCluster

from .conftest import Weft

HINT = ("callables must be importable by the compute nodes; `weft up` adds the directory it was started from")


def ok(p) -> str:
    assert p.returncode == 0, f"exit {p.returncode}: {p.stderr.strip()}"
    return p.stdout


@pytest.fixture
def started_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
               make_cluster: Callable[..., LocalCluster]) -> tuple[Path, Weft]:
    """A cluster started from a directory of the user's own code (as `weft up`
    in a project), and the `weft` command pointed at it (run from elsewhere)."""
    work = tmp_path / "project"
    work.mkdir()
    (work / "userfns.py").write_text("def shout(v):\n    return v.upper()\n")
    monkeypatch.chdir(work)
    cluster = make_cluster(compute=2, storage=1, slots=1)
    return work, Weft(cluster.endpoint)


def test_submit_of_a_module_no_compute_node_can_import_fails_at_once(started_in: tuple[Path, Weft]) -> None:
    work, weft = started_in
    p = weft("submit", "--call", "no_such_mod:fn")
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    assert p.stderr.strip().splitlines() == [
        f"weft: error: module 'no_such_mod' cannot be imported on any compute node (checked 2 nodes): {HINT}"
    ]
    assert p.stdout == ""
    # Nothing was accepted: the coordinator knows no job.
    assert "no_such_mod" not in ok(weft("status", "--json"))

    # A module of the directory the nodes were started from is accepted and runs.
    out = ok(weft("submit", "--call", "userfns:shout", "-i", "v=quiet please", "--wait"))
    assert out == "QUIET PLEASE"
    # So are the builtins.
    assert ok(weft("submit", "--call", "weft.actors.builtins:concat", "-i", "a=x", "-i", "b=y", "--wait")) == "xy"

    # A module installed after a refusal is accepted: only what a node can
    # import is remembered, never what it cannot.
    assert weft("submit", "--call", "later_mod:f", "-i", "v=too").returncode == 2
    (work / "later_mod.py").write_text("def f(v):\n    return 'later ' + v\n")
    assert ok(weft("submit", "--call", "later_mod:f", "-i", "v=too", "--wait")) == "later too"


def probes_answered(cluster: LocalCluster) -> int:
    """`probe` calls the compute nodes took, from their metrics (weft_rpc_op_calls_total)."""
    total = 0
    for i in range(len(cluster.computes)):
        with urllib.request.urlopen(f"http://{cluster.metrics_addr('compute', i)}/metrics", timeout=10) as r:
            text = r.read().decode()
        total += sum(int(float(line.rsplit(" ", 1)[1])) for line in text.splitlines()
                     if line.startswith('weft_rpc_op_calls_total{op="probe"}'))
    return total


def test_a_first_submit_of_a_module_the_nodes_named_asks_no_node(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_cluster: Callable[..., LocalCluster]
) -> None:
    """A cluster's first submits of the user's module and of weft's builtins are
    taken from what the compute nodes' inventories named (compute/importable.py),
    with no `probe` on the first task's path; a module written after the nodes
    started is still asked about, and found."""
    work = tmp_path / "project"
    work.mkdir()
    (work / "userfns.py").write_text("def shout(v):\n    return v.upper()\n")
    monkeypatch.chdir(work)
    cluster = make_cluster(compute=2, storage=1, slots=1, metrics=f"127.0.0.1:{free_ports(4)}")
    weft = Weft(cluster.endpoint)
    assert ok(weft("submit", "--call", "userfns:shout", "-i", "v=first", "--wait")) == "FIRST"
    assert ok(weft("submit", "--call", "weft.actors.builtins:concat", "-i", "a=x", "-i", "b=y", "--wait")) == "xy"
    assert probes_answered(cluster) == 0
    (work / "new_mod.py").write_text("def f(v):\n    return 'new ' + v\n")
    assert ok(weft("submit", "--call", "new_mod:f", "-i", "v=one", "--wait")) == "new one"
    assert probes_answered(cluster) >= 1  # (the count counts)
