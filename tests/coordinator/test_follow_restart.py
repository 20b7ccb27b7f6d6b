"""A compute node restarted in place keeps its followers: the jobs started
ahead on it, still waiting there for their producer, take their slot when
the producer succeeds, as they would had it not restarted."""

from __future__ import annotations

from weft.actors.coordinator.graph import RUNNING, WAITING
from weft.protocol.enums import TaskState
from weft.protocol.tasks import TaskReport

from .harness import Cluster, spec


def restart(c: Cluster) -> None:
    """compute-0 restarts on its endpoint (a new incarnation) and its
    inventory names the producer running and the follower still pending."""
    a, b = c.job("a"), c.job("b")
    c.compute().inc = "incarnation-1"
    c.take(c.state.meet("compute", "compute-0", "tcp://compute-0:1", "incarnation-2"))
    c.take(c.state.compute_inventory(c.compute(), 1, [
        TaskReport("a", TaskState.RUNNING, a.token, started=a.started),
        TaskReport("b", TaskState.PENDING, b.token),
    ]))


def test_a_follower_on_a_node_restarted_in_place_takes_its_slot_when_its_producer_succeeds() -> None:
    c = Cluster(follow_ahead=1)
    c.submit(spec("a"), spec("b", "a"))
    assert c.started() == ["a", "b"]
    restart(c)
    b = c.job("b")
    # Still waiting there: holding no slot, counted in the node's follow window.
    assert b.ahead and b.shown_state == WAITING
    assert "b" not in c.compute().running and c.compute().following == {"b": "a"}
    c.clock.advance(5)
    c.ends("a")
    assert b.state == RUNNING and not b.ahead and b.shown_state == RUNNING
    assert b.started == c.clock.t
    assert "b" in c.compute().running and c.compute().following == {}
    assert b.summary()["attempts"] == 1
