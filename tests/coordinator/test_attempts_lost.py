"""Attempts charged when a compute node is lost are settled by what the node
says when it is back, whenever it says it: a task it still held queued (a
follower waiting on its producer, a prefetched job) and that ended without
taking a slot was no attempt; a task it still held under the same token is
the same attempt going on, not a second one. (The chaos soak's check: no job
shows more attempts than it ran, nor 0 after it ran.)"""

from __future__ import annotations

from weft.actors.coordinator import attempts
from weft.actors.coordinator.effects import Dispatch
from weft.actors.coordinator.graph import RUNNING, SUCCEEDED
from weft.protocol.enums import Outcome, TaskState
from weft.protocol.tasks import TaskReport

from .harness import Cluster, spec


def shown(c: Cluster, name: str) -> int:
    return c.job(name).summary()["attempts"]


def _pair_followed() -> tuple[Cluster, dict[str, int]]:
    """p0 and its consumer c0 (following, not started) on compute-0, then compute-0 lost."""
    c = Cluster(computes=2, slots=1, follow_ahead=1)
    c.submit(spec("p0"), spec("c0", "p0"), spec("other"))
    assert c.started()[:2] == ["p0", "c0"]
    assert c.job("c0").ahead and c.job("c0").node == c.job("p0").node == "compute-0"
    tokens = {j: c.job(j).token for j in ("p0", "c0")}
    c.take(c.state.node_lost("compute", "compute-0"))
    c.ends("other")  # compute-1's slot is free again
    return c, tokens


def _run_again(c: Cluster) -> None:
    """While compute-0 is away: p0 runs again on compute-1, and c0 starts there."""
    for _ in range(5):
        if c.job("c0").state == RUNNING and not c.job("c0").ahead:
            break
        c.round()
        if c.job("p0").state == RUNNING:
            c.ends("p0")
    assert c.job("c0").node == "compute-1" and c.job("c0").state == RUNNING and not c.job("c0").ahead
    assert c.job("p0").state == SUCCEEDED and c.job("p0").ran_on == "compute-1"


def _still_held(tokens: dict[str, int]) -> list[TaskReport]:
    """compute-0's inventory once back: p0 running, c0 following (no slot taken)."""
    return [TaskReport("p0", TaskState.RUNNING, tokens["p0"], started=1.0),
            TaskReport("c0", TaskState.PENDING, tokens["c0"])]


def test_a_follower_queued_on_a_paused_node_that_ends_after_its_return_is_given_back_its_attempt() -> None:
    c, tokens = _pair_followed()
    _run_again(c)
    # compute-0 was only paused: back, it still holds p0 (running) and c0
    # (following, no slot taken); both end later, c0 unmet, never started.
    back = _still_held(tokens)
    c.add_compute("compute-0", 1, back)
    c.task_news("compute-0",
                TaskReport("p0", TaskState.DONE, tokens["p0"], Outcome.FAILED_SOFT, cause="token is stale", started=1.0),
                TaskReport("c0", TaskState.DONE, tokens["c0"], Outcome.FAILED_SOFT, cause="input not made", unmet=True))
    c.ends("c0")
    assert c.job("c0").state == SUCCEEDED
    assert shown(c, "p0") == 2  # it ran on both nodes
    assert shown(c, "c0") == 1  # it ran once: its charge on compute-0 was given back
    assert [a["outcome"] for a in attempts.views(c.job("c0"))] == ["success"]
    assert c.state.charged == {}


def test_a_task_the_returning_node_still_holds_under_the_same_token_is_the_same_attempt() -> None:
    c, tokens = _pair_followed()
    # Back before anything started them again: both are adopted, and run there.
    back = _still_held(tokens)
    c.add_compute("compute-0", 1, back)
    assert c.job("p0").token == tokens["p0"] and c.job("c0").token == tokens["c0"]
    c.ends("p0")
    c.ends("c0")
    for name in ("c0", "p0"):
        assert c.job(name).state == SUCCEEDED
        assert shown(c, name) == 1, name
        assert [a["outcome"] for a in attempts.views(c.job(name))] == ["success"], name
    assert c.state.stats["soft_failures"] == 0 and c.state.charged == {}


def test_a_task_that_took_a_slot_after_the_node_came_back_stays_counted() -> None:
    c, tokens = _pair_followed()
    _run_again(c)
    back = _still_held(tokens)
    c.add_compute("compute-0", 1, back)
    # c0's stale task then took a slot there and ran (its end has a start).
    c.task_news("compute-0",
                TaskReport("c0", TaskState.DONE, tokens["c0"], Outcome.FAILED_SOFT, cause="token is stale", started=2.0))
    assert c.state.charged == {}
    c.ends("c0")
    assert shown(c, "c0") == 2


def test_a_start_the_lost_node_had_not_acked_but_ran_once_back_is_an_attempt() -> None:
    # The start was on its way when the node stopped (paused): not acked, so
    # not counted at the loss; it took it once resumed and is adopted.
    c = Cluster(computes=1)
    c.submit(spec("a"))
    [d] = [e for e in c.take(c.state.schedule_round()) if isinstance(e, Dispatch)]
    tokens = c.state.attempt_tokens(d)
    c.state.start_messages(d, tokens, {}, {})
    c.take(c.state.node_lost("compute", "compute-0"))
    assert shown(c, "a") == 0
    c.add_compute("compute-0", 1, [TaskReport("a", TaskState.RUNNING, tokens["a"], started=1.0)])
    c.ends("a")
    assert c.job("a").state == SUCCEEDED and shown(c, "a") == 1
    assert c.state.charged == {}
