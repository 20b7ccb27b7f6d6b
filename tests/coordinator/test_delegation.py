"""Delegation: a job hands an output to a new job; the waiters and the
dependents move to the delegate. Follow-ahead is off in these tests (the
harness default), so nothing can start a dependent early and hide a waiter
that did not move."""

from __future__ import annotations

from weft.actors.coordinator.effects import Waiter
from weft.actors.coordinator.graph import FAILED, RUNNABLE, SUCCEEDED, WAITING
from weft.actors.model import JobSpec

from .harness import CONCAT, Cluster, out, sends, spec, woken


def delegation(name: str) -> dict:
    return {"job": spec(name).to_wire(), "stream": "result"}


def test_delegation_moves_dependents_to_the_delegate() -> None:
    c = Cluster()
    c.submit(spec("a"), spec("dep", "a"))
    c.started()
    c.ends("a", delegation=delegation("b"))
    assert c.job("a").state == SUCCEEDED and c.job("a").delegate == "b"
    assert c.job("b").parent == "a"
    assert c.job("dep").state == WAITING
    assert c.started() == ["b"]  # dep must not start before b made the output
    assert c.job("dep").state == WAITING
    c.ends("b")
    assert c.job("dep").state == RUNNABLE
    [d] = c.round()
    assert d.items[0][1].inputs["in0"][1] == out("b")  # reads the delegate's output


def test_delegation_moves_waiters_to_the_delegate() -> None:
    c = Cluster()
    c.submit(spec("a"))
    w = c.state.watch([c.job("a")], Waiter())
    c.started()
    effects = c.ends("a", delegation=delegation("b"))
    assert woken(effects) == []
    assert "b" in c.state.watchers
    c.started()
    assert woken(c.ends("b")) == [w]


def test_a_chain_of_delegations_ends_at_the_last_job() -> None:
    c = Cluster()
    c.submit(spec("a"), spec("dep", "a"))
    w = c.state.watch([c.job("a")], Waiter())
    c.started()
    c.ends("a", delegation=delegation("b"))
    c.started()
    c.ends("b", delegation=delegation("c"))
    c.started()
    assert woken(c.ends("c", delegation=delegation("d"))) == []
    assert c.job("dep").state == WAITING
    assert c.state.final(c.job("a")).id == "d"
    assert c.started() == ["d"]
    assert woken(c.ends("d")) == [w]
    assert c.job("dep").state == RUNNABLE
    assert c.graph.resolve(out("a")).name == out("d")


def test_the_delegate_writes_where_the_delegated_object_lives() -> None:
    c = Cluster(storages=3)
    c.submit(spec("a"))
    c.started()
    placement = c.job("a").placement
    effects = c.ends("a", delegation=delegation("b"))
    assert c.job("b").placement == placement
    [mark] = sends(effects, "delegate")
    assert mark.endpoint == f"tcp://{placement[0]}:1"
    assert mark.body.to_wire() == {"name": out("a"), "target": out("b"), "token": c.job("a").token,
                                   "epoch": c.state.epoch}


def test_an_invalid_delegation_fails_the_job() -> None:
    c = Cluster()
    c.submit(spec("a"))
    c.started()
    c.ends("a", delegation={"job": spec("b").to_wire(), "stream": "nope"})
    assert c.job("a").state == "failed" and "invalid delegation" in c.job("a").cause


def test_a_delegation_must_hand_over_an_output_the_job_has() -> None:
    """Judged with the protocol's Delegation: `output` must be one of the
    delegating job's outputs, and a job with several must name it."""
    c = Cluster(slots=2)
    two = JobSpec(call=CONCAT, name="two", inputs={"v": "2"}, outputs=["x", "y"])
    c.submit(spec("a"), two, spec("dep", "a"))
    c.round()
    c.ends("a", delegation={**delegation("b"), "output": "elsewhere"})
    a = c.job("a")
    assert a.state == FAILED and a.cause.startswith("invalid delegation: delegated output 'elsewhere'"), a.cause
    assert c.job("dep").state == FAILED and "b" not in c.graph.jobs  # no delegate was made
    c.ends("two", delegation=delegation("c"))
    assert c.job("two").state == FAILED and "must say which one" in c.job("two").cause
