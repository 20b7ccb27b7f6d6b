"""Child jobs and recurring jobs in the coordinator state: names under the
parent, the root carried down a tree, the spawn limit counting retries,
decommissioning; instances each period, a period skipped while the last
instance runs, deletion."""

from __future__ import annotations

import pytest

from weft.actors.coordinator.spawn import SpawnRefused
from weft.actors.model import JobSpec, SpecError

from .harness import Cluster, spec


def child(name: str | None, parent: str, value: str = "x") -> JobSpec:
    s = spec(name or "tmp", value=value)
    s.name, s.spawned_by = name, parent
    s.root = "someone-else"  # a client cannot say whose tree it joins
    return s


def test_children_are_named_under_their_parent_and_carry_the_root() -> None:
    c = Cluster(slots=2)
    c.submit(spec("p"))
    c.round()
    [a] = c.submit(child("a", "p"))
    assert a.job.id == "p.a" and a.job.spec.root == "p" and a.job.spec.spawned_by == "p"
    [g] = c.submit(child("g", "p.a"))
    assert g.job.id == "p.a.g" and g.job.spec.root == "p"
    [h] = c.submit(child(None, "p", value="hash"))
    assert h.job.id.startswith("p.j")
    # The same child again (a retried parent) joins the one made before.
    [again] = c.submit(child("a", "p"))
    assert again.job is a.job and again.joined
    with pytest.raises(SpecError, match="parent job 'nobody' is unknown"):
        c.submit(child("z", "nobody"))


def test_the_spawn_limit_counts_every_try_and_refuses_the_whole_submit() -> None:
    c = Cluster(slots=2)
    root = spec("r")
    root.max_spawns = 3
    c.submit(root)
    c.submit(child("a", "r"))
    c.job("r.a").attempts = 2  # tried twice: a retry counts
    with pytest.raises(SpawnRefused) as e:
        c.submit(child("b", "r"), child("c", "r", value="c"))
    assert e.value.code == "spawn-limit" and "2 spawned, 2 more refused" in str(e.value)
    assert "r.b" not in c.state.graph.jobs  # nothing taken
    c.submit(child("b", "r"))


def test_decommissioning_cancels_the_queued_and_refuses_new_children() -> None:
    c = Cluster(slots=1)
    c.submit(spec("r"))
    c.round()  # r runs
    c.submit(child("a", "r"), child("b", "r", value="b"))
    c.take(c.state.decommission(c.job("r")))
    assert c.job("r").state == "running"
    assert c.job("r.a").state == "cancelled" and c.job("r.b").state == "cancelled"
    with pytest.raises(SpawnRefused) as e:
        c.submit(child("c", "r"))
    assert e.value.code == "decommissioned"


def test_recurring_instances_skip_a_period_while_the_last_runs() -> None:
    c = Cluster(slots=1)
    s = spec("tick")
    c.state.define_recurring("tick", s, 60.0)
    changed, effects = c.state.recurring_due()
    c.take(effects)
    assert changed and c.started() == ["tick.1"]
    c.clock.advance(30)
    assert c.state.recurring_due() == (False, [])
    c.clock.advance(30)  # the next period, tick.1 still running: skipped
    changed, _ = c.state.recurring_due()
    assert changed and c.state.recurring["tick"]["skipped"] == 1 and "tick.2" not in c.state.graph.jobs
    c.ends("tick.1")
    c.clock.advance(60)
    c.take(c.state.recurring_due()[1])
    assert c.started() == ["tick.2"]
    c.state.delete_recurring("tick")
    c.clock.advance(600)
    assert c.state.recurring_due() == (False, [])
    with pytest.raises(SpecError, match="no recurring job 'tick'"):
        c.state.delete_recurring("tick")
    # Defined again: instances count on after the earlier ones.
    c.state.define_recurring("tick", spec("tick"), 60.0)
    c.take(c.state.recurring_due()[1])
    assert "tick.3" in c.state.graph.jobs
    with pytest.raises(SpecError, match="at least 10s"):
        c.state.define_recurring("fast", spec("fast"), 1.0)
