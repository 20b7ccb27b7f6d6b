"""The coordinator's job graph on its own: no sockets, no disk, no clock games.

Jobs are named (`JobSpec(name=...)`), so a job's id is its name and its one
output is `<name>/result`.
"""

from __future__ import annotations

import pytest

from weft.actors.coordinator.graph import (
    CANCELLED,
    FAILED,
    RUNNABLE,
    RUNNING,
    SUCCEEDED,
    WAITING,
    Graph,
    Job,
)
from weft.actors.model import JobSpec, SpecError


def out(job: str) -> str:
    return f"{job}/result"


def spec(name: str, *deps: str, priority: int = 0, outputs: tuple[str, ...] = ("result",)) -> JobSpec:
    """A callable job reading the main output of each of `deps`."""
    return JobSpec(
        call="weft.actors.builtins:concat",
        name=name,
        refs={f"in{i}": out(d) for i, d in enumerate(deps)},
        inputs={"v": name},
        outputs=list(outputs),
        priority=priority,
    )


def add(g: Graph, name: str, *deps: str, priority: int = 0) -> Job:
    """Register a job the way the coordinator does on submit."""
    s = spec(name, *deps, priority=priority)
    g.check_inputs(s)
    job = g.add_job(s.job_id(), s)
    assert g.link_inputs(job) == []
    return job


def run(g: Graph, job: Job) -> None:
    """The scheduler took it (as if popped): what `_schedule_round` does."""
    assert job.state == RUNNABLE
    g.runnable_count -= 1
    job.state = RUNNING
    job.attempts += 1


def finish(g: Graph, job: Job) -> list[Job]:
    """The job succeeded and storage reported its output finished."""
    g.succeed(job)
    return g.object_finished(out(job.id), "storage-0", 1)


def drain(g: Graph) -> list[str]:
    order = []
    while (job := g.pop_runnable()) is not None:
        order.append(job.id)
    return order


# -- waiting and runnable ---------------------------------------------------------------

def test_job_without_inputs_is_runnable_at_once() -> None:
    g = Graph()
    a = add(g, "a")
    assert a.state == RUNNABLE
    assert a.missing == 0
    assert g.runnable_count == 1
    assert g.pop_runnable() is a
    assert g.runnable_count == 0
    assert g.pop_runnable() is None


def test_job_waits_until_every_input_is_finished() -> None:
    g = Graph()
    a, b = add(g, "a"), add(g, "b")
    c = add(g, "c", "a", "b")
    assert c.state == WAITING and c.missing == 2
    run(g, a)
    assert finish(g, a) == []
    assert c.state == WAITING and c.missing == 1
    run(g, b)
    assert finish(g, b) == [c]
    assert c.state == RUNNABLE
    assert c.missing == 0


def test_job_reading_one_object_twice_waits_for_it_once() -> None:
    g = Graph()
    a = add(g, "a")
    s = JobSpec(call="weft.actors.builtins:concat", name="twice", refs={"x": out("a"), "y": out("a")}, outputs=["result"])
    twice = g.add_job("twice", s)
    g.link_inputs(twice)
    assert twice.state == WAITING
    run(g, a)
    assert finish(g, a) == [twice]
    assert twice.state == RUNNABLE


def test_input_already_finished_does_not_block() -> None:
    g = Graph()
    a = add(g, "a")
    run(g, a)
    finish(g, a)
    b = add(g, "b", "a")
    assert b.state == RUNNABLE
    assert a.demand == 0  # a finished job is not in demand


def test_check_inputs_names_the_problem() -> None:
    g = Graph()
    add(g, "a")
    with pytest.raises(SpecError, match="no job produces 'ghost/result'"):
        g.check_inputs(spec("b", "ghost"))
    bad = JobSpec(call="m:f", refs={"x": "a/nope"}, outputs=["result"])
    with pytest.raises(SpecError, match="job 'a' has no output 'nope'"):
        g.check_inputs(bad)
    # Outputs of jobs submitted in the same call are allowed.
    g.check_inputs(spec("c", "later"), pending={out("later")})


# -- demand -------------------------------------------------------------------------------

def test_demand_counts_through_a_chain() -> None:
    g = Graph()
    a = add(g, "a")
    b = add(g, "b", "a")
    c = add(g, "c", "b")
    d = add(g, "d", "c")
    # Every unfinished job transitively blocked on a job counts once.
    assert (a.demand, b.demand, c.demand, d.demand) == (3, 2, 1, 0)


def test_demand_counts_a_diamond_join_once() -> None:
    g = Graph()
    a = add(g, "a")
    b = add(g, "b", "a")
    c = add(g, "c", "a")
    d = add(g, "d", "b", "c")
    assert a.demand == 3  # b, c and d; d is not counted twice
    assert (b.demand, c.demand, d.demand) == (1, 1, 0)


def test_demand_stops_at_finished_jobs() -> None:
    g = Graph()
    a = add(g, "a")
    b = add(g, "b", "a")
    assert a.demand == 1
    run(g, a)
    finish(g, a)
    c = add(g, "c", "b")
    assert b.demand == 1
    assert a.demand == 1  # unchanged: c does not wait on a's finished output
    assert c.demand == 0


# -- runnable order -------------------------------------------------------------------------

def test_runnable_order_is_demand_then_priority_then_age() -> None:
    g = Graph()
    add(g, "old")  # no demand, no priority: last
    add(g, "urgent", priority=5)  # priority beats age
    add(g, "needed")  # demand 2
    add(g, "needed_urgent", priority=1)  # demand 2 and priority 1
    add(g, "young")  # same as "old", submitted later
    for dep in ("n1", "n2"):
        add(g, dep, "needed")
    for dep in ("u1", "u2"):
        add(g, dep, "needed_urgent")
    assert drain(g) == ["needed_urgent", "needed", "urgent", "old", "young"]
    assert g.runnable_count == 0


def test_demand_added_after_a_job_became_runnable_reorders_the_queue() -> None:
    g = Graph()
    add(g, "x")
    y = add(g, "y")
    assert y.demand == 0
    for i in range(3):
        add(g, f"dep{i}", "y")
    assert y.demand == 3
    # y was queued first with demand 0, then again with each new demand.
    order = drain(g)
    assert order == ["y", "x"]  # each job leaves the queue once: stale entries are skipped
    assert g.runnable_count == 0


def test_stale_entries_of_jobs_that_left_the_queue_are_skipped() -> None:
    g = Graph()
    a = add(g, "a")
    b = add(g, "b")
    add(g, "c")
    add(g, "a_dep", "a")
    add(g, "b_dep", "b")
    assert g.runnable_count == 3
    # a is cancelled while runnable; b was adopted as running elsewhere.
    g.fail(a, "cancelled by user", outcome="cancelled", state=CANCELLED)
    assert g.runnable_count == 2
    b.state = RUNNING
    g.runnable_count -= 1  # what the coordinator does when it adopts a task
    assert drain(g) == ["c"]
    assert g.runnable_count == 0


def test_requeued_job_runs_again_once() -> None:
    g = Graph()
    a = add(g, "a")
    add(g, "dep", "a")
    assert g.pop_runnable() is a
    a.state = RUNNING
    g.requeue(a, "compute node lost")
    assert a.state == RUNNABLE
    assert a.cause == "compute node lost"
    assert g.runnable_count == 1
    assert drain(g) == ["a"]
    assert g.runnable_count == 0


def test_deferred_job_goes_back_to_the_queue() -> None:
    g = Graph()
    a = add(g, "a")
    assert g.pop_runnable() is a
    g.make_runnable(a)  # the scheduler could not place it this round
    assert g.runnable_count == 1
    assert g.pop_runnable() is a
    assert g.pop_runnable() is None


# -- failure ----------------------------------------------------------------------------------

def test_hard_failure_fails_dependents_transitively_with_causes() -> None:
    g = Graph()
    a = add(g, "a")
    other = add(g, "other")
    b = add(g, "b", "a")
    c = add(g, "c", "b")
    d = add(g, "d", "b", "other")
    run(g, a)
    failed = g.fail(a, "RuntimeError: boom")
    assert {j.id for j in failed} == {"a", "b", "c", "d"}
    assert a.state == FAILED and a.outcome == "failed-hard" and a.cause == "RuntimeError: boom"
    assert b.state == FAILED
    # The root is named by what it runs (or its flow name) beside its id.
    assert b.cause == "input a/result: job a (weft.actors.builtins:concat) failed: RuntimeError: boom"
    # c names the job it waited on and the root failure once: no nested chain.
    assert c.cause == ("input b/result: job b failed, because job a (weft.actors.builtins:concat) failed: "
                       "RuntimeError: boom")
    assert d.cause.startswith("input b/result: job b failed, because job a ")
    assert all(j.cause.count("input ") == 1 and j.cause.count("boom") == 1 for j in (b, c, d))
    # Unrelated work is untouched.
    assert other.state == RUNNABLE
    assert drain(g) == ["other"]
    assert g.runnable_count == 0


def test_failing_a_runnable_job_keeps_the_runnable_count() -> None:
    g = Graph()
    a = add(g, "a")
    add(g, "b")
    assert g.runnable_count == 2
    g.fail(a, "nope")
    assert g.runnable_count == 1
    assert g.fail(a, "again") == []  # a finished job does not fail twice
    assert g.runnable_count == 1


def test_cancelled_job_fails_its_dependents() -> None:
    g = Graph()
    a = add(g, "a")
    b = add(g, "b", "a")
    g.fail(a, "cancelled by user", outcome="cancelled", state=CANCELLED)
    assert a.state == CANCELLED and a.outcome == "cancelled"
    assert b.state == FAILED and b.outcome == "failed-hard"
    assert b.cause == "input a/result: job a (weft.actors.builtins:concat) cancelled: cancelled by user"


def test_job_submitted_after_its_input_failed_fails_at_once() -> None:
    g = Graph()
    a = add(g, "a")
    g.fail(a, "exit code 3")
    s = spec("late", "a")
    late = g.add_job("late", s)
    assert g.link_inputs(late) == [late]
    assert late.state == FAILED
    assert late.cause == "input a/result: job a (weft.actors.builtins:concat) failed: exit code 3"
    # One after a dependent of a: the root named once, as in a cascade.
    b = g.add_job("b", spec("b", "a"))
    assert g.link_inputs(b) == [b]
    later = g.add_job("later", spec("later", "b"))
    assert g.link_inputs(later) == [later]
    assert later.cause == ("input b/result: job b failed, because job a (weft.actors.builtins:concat) failed: "
                           "exit code 3")


def test_success_then_failure_of_another_input() -> None:
    g = Graph()
    a, b = add(g, "a"), add(g, "b")
    c = add(g, "c", "a", "b")
    run(g, a)
    finish(g, a)
    run(g, b)
    g.fail(b, "boom")
    assert c.state == FAILED
    assert "job b (weft.actors.builtins:concat) failed" in c.cause
    # A late "finished" for another input of a failed job changes nothing.
    assert g.object_finished(out("b"), "storage-0") == []
    assert c.state == FAILED


# -- delegation -------------------------------------------------------------------------------

def test_delegation_moves_waiters_to_the_new_job() -> None:
    g = Graph()
    a = add(g, "a")
    w = add(g, "w", "a")
    run(g, a)
    a1 = add(g, "a1")
    assert g.delegate(out("a"), out("a1")) == []
    g.succeed(a)
    assert w.state == WAITING  # a succeeded, but its output is a1's
    assert g.resolve(out("a")) is g.objects[out("a1")]
    run(g, a1)
    assert finish(g, a1) == [w]
    assert w.state == RUNNABLE


def test_delegation_chain_of_three() -> None:
    g = Graph()
    a = add(g, "a")
    w = add(g, "w", "a")
    prev = a
    for name in ("a1", "a2", "a3"):
        run(g, prev)
        nxt = add(g, name)
        g.delegate(out(prev.id), out(name))
        g.succeed(prev)
        assert w.state == WAITING
        prev = nxt
    assert g.resolve(out("a")).name == out("a3")
    assert g.resolve(out("a1")).name == out("a3")
    # A reader that joins now waits on a3 directly.
    late = add(g, "late", "a")
    assert late.state == WAITING
    run(g, prev)
    assert set(finish(g, prev)) == {w, late}


def test_delegation_to_a_finished_object_releases_waiters_at_once() -> None:
    g = Graph()
    done = add(g, "done")
    run(g, done)
    finish(g, done)
    a = add(g, "a")
    w = add(g, "w", "a")
    run(g, a)
    assert g.delegate(out("a"), out("done")) == [w]
    assert w.state == RUNNABLE


def test_failure_of_a_delegate_fails_the_moved_waiters() -> None:
    g = Graph()
    a = add(g, "a")
    w = add(g, "w", "a")
    run(g, a)
    a1 = add(g, "a1")
    g.delegate(out("a"), out("a1"))
    g.succeed(a)
    run(g, a1)
    failed = g.fail(a1, "exit code 1")
    assert w in failed
    assert w.state == FAILED
    assert "job a1 (weft.actors.builtins:concat) failed" in w.cause


def test_counts() -> None:
    g = Graph()
    a = add(g, "a")
    add(g, "b", "a")
    add(g, "c")
    run(g, a)
    g.succeed(a)
    assert a.state == SUCCEEDED
    assert g.counts() == {SUCCEEDED: 1, WAITING: 1, RUNNABLE: 1}


def test_losing_the_last_copy_of_a_finished_object_marks_it_lost() -> None:
    g = Graph()
    a = add(g, "a")
    run(g, a)
    finish(g, a)
    g.object_finished(out("a"), "storage-1", 1)
    obj = g.objects[out("a")]
    assert not g.copy_gone(obj, "storage-0", lost_at=5.0)  # a replica is left
    assert obj.state == "finished"
    assert g.copy_gone(obj, "storage-1", lost_at=5.0)
    assert obj.state == "lost" and obj.lost_at == 5.0


def test_deleting_the_last_copy_on_purpose_makes_it_unknown_not_lost() -> None:
    g = Graph()
    a = add(g, "a")
    run(g, a)
    finish(g, a)
    obj = g.objects[out("a")]
    assert not g.copy_gone(obj, "storage-0", lost_at=None)
    assert obj.state == "unknown"


def test_storage_news_never_unfinishes_an_object() -> None:
    g = Graph()
    a = add(g, "a")
    run(g, a)
    finish(g, a)
    obj = g.objects[out("a")]
    g.object_reported(obj, "partial")
    g.forget_state(obj)
    assert obj.state == "finished"


def test_adopting_a_runnable_job_takes_it_off_the_queue() -> None:
    g = Graph()
    a = add(g, "a")
    g.adopt(a, "compute-1", 7)
    assert (a.state, a.node, a.token, a.ran_on) == (RUNNING, "compute-1", 7, "compute-1")
    assert g.runnable_count == 0 and g.pop_runnable() is None


def test_failing_the_waiters_of_an_object_nobody_can_make() -> None:
    g = Graph()
    a = add(g, "a")
    w = add(g, "w", "a")
    g.fail_waiters(g.objects[out("a")], "gone for good")
    assert w.state == FAILED and w.cause == "gone for good"
    assert a.state == RUNNABLE
