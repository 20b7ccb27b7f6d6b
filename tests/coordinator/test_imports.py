"""Submit's import check, decided in-process: which modules to ask the
compute nodes about, and when their answers refuse a submit."""

from __future__ import annotations

from weft.actors.coordinator.imports import to_probe, verdict
from weft.actors.coordinator.nodes import set_resources
from weft.actors.model import JobSpec
from weft.protocol.probe import ProbeReply
from weft.protocol.tasks import TaskInventory

from .harness import CONCAT, Cluster, spec

LINE = ("module 'no_such_mod' cannot be imported on any compute node (checked 2 nodes): callables must be "
        "importable by the compute nodes; `weft up` adds the directory it was started from")


def call(fn: str, value: str = "x") -> JobSpec:
    return JobSpec(call=fn, inputs={"v": value}, outputs=["result"])


def test_a_module_no_node_can_import_is_refused_naming_it_and_the_nodes_checked() -> None:
    c = Cluster(computes=2)
    modules, nodes = to_probe([call("no_such_mod:fn"), call(CONCAT)], c.state.computes.values())
    assert modules == ["no_such_mod", "weft.actors.builtins"]
    assert sorted(n.node for n in nodes) == ["compute-0", "compute-1"]
    answers = [(n, ProbeReply(["weft.actors.builtins"], ["no_such_mod"])) for n in nodes]
    assert verdict(modules, answers) == LINE


def test_one_node_that_can_import_it_is_enough() -> None:
    c = Cluster(computes=2)
    modules, nodes = to_probe([call("mine:fn")], c.state.computes.values())
    a, b = nodes
    assert verdict(modules, [(a, ProbeReply([], ["mine"])), (b, ProbeReply(["mine"], []))]) is None


def test_a_known_module_costs_nothing_again() -> None:
    """The steady state of a bench: thousands of jobs of one module, one probe."""
    c = Cluster(computes=2)
    modules, nodes = to_probe([call("mine:fn")], c.state.computes.values())
    verdict(modules, [(n, ProbeReply(["mine"], [])) for n in nodes])
    specs = [call("mine:fn", str(i)) for i in range(1000)] + [call("mine:other")]
    assert to_probe(specs, c.state.computes.values()) == ([], [])


def test_a_restarted_node_is_asked_again() -> None:
    """Answers last one incarnation: the node may come back with other code."""
    c = Cluster(computes=1)
    c.compute().inc = "incarnation-1"  # as its inventory said (the shell sets it)
    modules, nodes = to_probe([call("mine:fn")], c.state.computes.values())
    verdict(modules, [(n, ProbeReply(["mine"], [])) for n in nodes])
    assert to_probe([call("mine:fn")], c.state.computes.values()) == ([], [])
    c.take(c.state.meet("compute", "compute-0", "tcp://compute-0:1", "incarnation-2"))
    ref = c.compute()
    c.take(c.state.compute_inventory(ref, 1, []))
    assert to_probe([call("mine:fn")], c.state.computes.values()) == (["mine"], [ref])


def test_missing_answers_are_not_kept_a_module_installed_later_is_accepted() -> None:
    c = Cluster(computes=1)
    modules, nodes = to_probe([call("later:fn")], c.state.computes.values())
    assert verdict(modules, [(nodes[0], ProbeReply([], ["later"]))]) is not None
    modules, nodes = to_probe([call("later:fn")], c.state.computes.values())
    assert modules == ["later"]
    assert verdict(modules, [(nodes[0], ProbeReply(["later"], []))]) is None


def test_with_no_compute_node_there_is_nothing_to_check_against() -> None:
    c = Cluster(computes=0)
    assert to_probe([call("anything:fn")], c.state.computes.values()) == ([], [])
    # A node met but not ready (its inventory not taken yet) is not asked either.
    c.take(c.state.meet("compute", "compute-new", "tcp://compute-new:1", None))
    assert to_probe([call("anything:fn")], c.state.computes.values()) == ([], [])


def test_a_node_that_did_not_answer_makes_the_check_inconclusive() -> None:
    c = Cluster(computes=2)
    modules, (a, b) = to_probe([call("no_such_mod:fn")], c.state.computes.values())
    assert verdict(modules, [(a, ProbeReply([], ["no_such_mod"])), (b, None)]) is None
    # Nor does a module a node could not look up in time (neither found nor missing).
    assert verdict(modules, [(a, ProbeReply([], ["no_such_mod"])), (b, ProbeReply([], []))]) is None


def test_commands_are_not_checked_and_several_missing_modules_are_all_named() -> None:
    c = Cluster(computes=1)
    assert to_probe([spec("a", command=["echo", "hi"])], c.state.computes.values()) == ([], [])
    modules, [n] = to_probe([call("b_mod:f"), call("a_mod:g")], c.state.computes.values())
    line = verdict(modules, [(n, ProbeReply([], ["a_mod", "b_mod"]))])
    assert line.startswith("modules 'a_mod', 'b_mod' cannot be imported on any compute node (checked 1 node): ")


def test_a_module_a_node_named_in_its_inventory_is_not_asked_about() -> None:
    """A cluster's first submit: its nodes' inventories named what their workers
    import (compute/importable.py), so there is nothing to ask; an older node,
    whose inventory names nothing, is asked as before."""
    c = Cluster(computes=2)
    new, old = c.compute("compute-0"), c.compute("compute-1")
    named = {"tasks": [], "next": 0, "inc": "i-0", "slots": 1, "busy": 0,
             "importable": ["userfns", "weft.bench.workloads"]}
    set_resources(new, TaskInventory.from_wire(named))
    set_resources(old, TaskInventory.from_wire({"tasks": [], "next": 0, "inc": "i-1", "slots": 1, "busy": 0}))
    assert to_probe([call("userfns:shout"), call("weft.bench.workloads:noop")], c.state.computes.values()) == ([], [])
    # A module no inventory names is asked about, of every node (the older one too).
    modules, nodes = to_probe([call("userfns:shout"), call("no_such_mod:fn")], c.state.computes.values())
    assert modules == ["no_such_mod"] and sorted(n.node for n in nodes) == ["compute-0", "compute-1"]
    assert verdict(modules, [(n, ProbeReply([], ["no_such_mod"])) for n in nodes]) == LINE
    # With only the older node live, even the named module is asked about.
    new.ready = False
    assert to_probe([call("userfns:shout")], c.state.computes.values()) == (["userfns"], [old])
