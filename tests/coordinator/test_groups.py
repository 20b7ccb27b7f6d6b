"""Groups (labels), pausing (the cluster or a group) and ordering (`after`,
`after_groups`) in the coordinator state."""

from __future__ import annotations

import pytest

from weft.actors.coordinator.control import PAUSES
from weft.actors.coordinator.graph import CANCELLED, FAILED, RUNNABLE, SUCCEEDED, WAITING
from weft.actors.coordinator.journal import Journal
from weft.actors.coordinator.replay import replay
from weft.actors.coordinator.state import CoordinatorState
from weft.actors.model import JobSpec, SpecError

from .harness import CONCAT, Clock, Cluster, spec


def grouped(name: str, *groups: str, after: tuple[str, ...] = (), after_groups: tuple[str, ...] = ()) -> JobSpec:
    s = spec(name)
    s.groups = list(groups)
    s.after = list(after)
    s.after_groups = list(after_groups)
    return s


# -- groups --------------------------------------------------------------------------------
def test_groups_count_their_members_by_state() -> None:
    c = Cluster(slots=1)
    c.submit(grouped("a", "g"), grouped("b", "g", "h"), grouped("c"))
    c.run("a")
    assert c.state.groups() == {"g": {"succeeded": 1, "runnable": 1}, "h": {"runnable": 1}}
    assert [j.id for j in c.state.group_members("g")] == ["a", "b"]


def test_cancelling_a_group_cancels_every_member_and_their_dependents() -> None:
    c = Cluster(slots=1)
    c.submit(grouped("a", "g"), grouped("b", "g"), spec("r", "a"), grouped("o"))
    assert c.started() == ["a"]  # (r needs it: most demand)
    c.take(c.state.cancel(c.state.group_members("g")))
    assert c.job("b").state == CANCELLED and c.job("b").cause == "cancelled by user"
    assert c.job("r").state == CANCELLED and c.job("r").cause == "job a was cancelled"
    assert c.job("a").state == "cancelling" and c.job("o").state == RUNNABLE


# -- pausing -------------------------------------------------------------------------------
def test_a_paused_cluster_starts_nothing_until_resumed_and_takes_submits() -> None:
    c = Cluster(slots=2)
    c.submit(spec("a"))
    c.started()
    c.take(c.state.pause(None))
    c.submit(spec("b"))
    assert c.started() == [] and c.job("b").state == RUNNABLE
    c.ends("a")  # running jobs go on
    assert c.job("a").state == SUCCEEDED and c.started() == []
    assert c.state.pause_view() == {"cluster": c.clock.wall()}
    c.take(c.state.resume(None))
    assert c.started() == ["b"] and c.state.pause_view() == {}


def test_a_paused_group_holds_only_its_jobs() -> None:
    c = Cluster(slots=4)
    c.submit(grouped("a", "g"), grouped("b", "h"), grouped("c", "g", "h"))
    c.take(c.state.pause("g"))
    assert c.started() == ["b"]
    assert c.job("a").state == WAITING and c.job("c").state == WAITING
    assert c.state.pause_view() == {"groups": {"g": c.clock.wall()}}
    c.take(c.state.pause("h"))
    c.take(c.state.resume("g"))
    assert c.started() == ["a"]  # c is in h too, which is still paused
    c.take(c.state.resume("h"))
    assert c.started() == ["c"]


def test_a_held_job_can_be_cancelled() -> None:
    c = Cluster()
    c.submit(grouped("a", "g"))
    c.take(c.state.pause("g"))
    c.started()
    c.take(c.state.cancel([c.job("a")]))
    c.take(c.state.resume("g"))
    assert c.job("a").state == CANCELLED and c.started() == [] and c.graph.runnable_count == 0


def test_pauses_survive_a_restart(tmp_path) -> None:
    path = tmp_path / "j.sqlite"
    journal = Journal(path)
    c = Cluster(journal=journal)
    c.take(c.state.pause("g"))
    c.take(c.state.pause(None))
    journal.stage_meta(PAUSES, dict(c.state.pauses))  # as the shell does after each pause
    c.submit(grouped("a", "g"))
    journal.close()
    journal = Journal(path)
    clock = Clock()
    state = CoordinatorState(epoch=2, wall=clock.wall, mono=clock.mono)
    replay(journal, state)
    assert state.pause_view() == {"cluster": 1000.0, "groups": {"g": 1000.0}}
    c2 = Cluster(state=state, clock=clock, journal=journal)
    clock.advance(5)
    assert c2.started() == []
    c2.take(state.resume(None))
    assert c2.started() == []  # g still paused
    c2.take(state.resume("g"))
    assert c2.started() == ["a"]
    journal.close()


# -- ordering ----------------------------------------------------------------------------
def test_after_waits_for_the_job_to_succeed_without_reading_it() -> None:
    c = Cluster(slots=2)
    c.submit(spec("a"), grouped("b", after=("a",)))
    assert c.started() == ["a"]
    b = c.job("b")
    assert b.state == WAITING and b.missing == 1
    c.ends("a")
    assert c.started() == ["b"]


def test_after_a_failed_or_cancelled_job_fails_or_is_cancelled() -> None:
    c = Cluster(slots=2)
    c.submit(spec("a"), grouped("b", after=("a",)), spec("x"), grouped("y", after=("x",)))
    c.started()
    c.ends("a", "failed-hard", cause="exit code 1")
    assert c.job("b").state == FAILED and c.job("b").cause == "after job a (weft.actors.builtins:concat) failed: exit code 1"
    c.take(c.state.cancel([c.job("x")]))
    assert c.job("y").state == CANCELLED and c.job("y").cause == "job x was cancelled"
    c.submit(grouped("z", after=("a",)))  # after a job that already failed
    assert c.job("z").state == FAILED


def test_after_an_unknown_job_is_refused() -> None:
    c = Cluster()
    with pytest.raises(SpecError, match="after 'nope': no such job"):
        c.submit(grouped("b", after=("nope",)))
    assert "b" not in c.graph.jobs


def delegation(name: str) -> dict:
    return {"job": spec(name).to_wire(), "stream": "result"}


def test_after_a_delegator_waits_until_the_delegated_chain_is_made() -> None:
    c = Cluster(slots=2)
    c.submit(spec("a"), grouped("b", after=("a",)))
    assert c.started() == ["a"]
    c.ends("a", delegation=delegation("d"))
    assert c.job("a").state == SUCCEEDED
    # a succeeded by handing its output to d: b waits for d (and what d hands on).
    assert c.job("b").state == WAITING
    assert c.started() == ["d"]
    c.ends("d", delegation=delegation("e"))
    assert c.job("b").state == WAITING
    assert c.started() == ["e"]
    c.ends("e")
    assert c.started() == ["b"]
    # Ordered after a delegator that already succeeded, its chain unmade: the same.
    c.submit(spec("f"))
    c.started()
    c.ends("f", delegation=delegation("g"))
    c.submit(grouped("h", after=("f",)))
    assert c.job("h").state == WAITING and c.job("h").missing == 1
    assert c.started() == ["g"]
    c.ends("g")
    assert c.started() == ["h"]


def test_after_a_delegator_still_waits_for_its_delegate_after_a_restart(tmp_path) -> None:
    path = tmp_path / "j.sqlite"
    journal = Journal(path)
    c = Cluster(journal=journal, slots=2)
    c.submit(spec("a"), grouped("b", after=("a",)))
    c.started()
    c.ends("a", delegation=delegation("d"))
    assert c.job("b").state == WAITING
    journal.close()
    journal = Journal(path)
    clock = Clock()
    state = CoordinatorState(epoch=2, wall=clock.wall, mono=clock.mono)
    replay(journal, state)
    c2 = Cluster(state=state, clock=clock, journal=journal)
    clock.advance(5)
    assert c2.job("a").state == SUCCEEDED and c2.job("b").state == WAITING
    assert c2.started() == ["d"]
    c2.ends("d")
    assert c2.started() == ["b"]
    journal.close()


def test_after_a_delegator_whose_delegate_fails_fails_naming_it() -> None:
    c = Cluster(slots=2)
    c.submit(spec("a"), grouped("b", after=("a",)))
    c.started()
    c.ends("a", delegation=delegation("d"))
    c.started()
    c.ends("d", "failed-hard", cause="exit code 2")
    b = c.job("b")
    assert b.state == FAILED and b.code == "input-failed" and b.detail == "d", (b.cause, b.code)
    # Submitted after the delegate failed: fails at once, naming it.
    c.submit(grouped("late", after=("a",)))
    late = c.job("late")
    assert late.state == FAILED and late.cause == (
        f"after job a ({CONCAT}), delegated to job d ({CONCAT}) failed: exit code 2"), late.cause


def test_a_delegate_ordered_after_the_jobs_waiting_for_it_fails_them_as_a_cycle() -> None:
    """A delegate's spec is made at run time: a cycle through it is caught
    when the delegator ends, not left waiting for good."""
    c = Cluster(slots=2)
    c.submit(spec("a"), grouped("b", after=("a",)))
    c.started()
    c.ends("a", delegation={"job": grouped("d", after=("b",)).to_wire(), "stream": "result"})
    b, d = c.job("b"), c.job("d")
    assert b.state == FAILED and b.cause == (
        f"after job a ({CONCAT}): the job it delegated to, d, waits for this one (a cycle)"), b.cause
    assert d.state == FAILED and d.cause.startswith("after job b ") and "(a cycle)" in d.cause, d.cause
    assert c.started() == []


def test_after_cycles_are_refused_naming_the_cycle() -> None:
    c = Cluster(slots=2)
    with pytest.raises(SpecError, match=r"^--after cycle: p -> q -> p \("):
        c.submit(grouped("p", after=("q",)), grouped("q", after=("p",)))
    with pytest.raises(SpecError, match=r"^--after cycle: x -> y -> z -> x "):
        c.submit(grouped("w"), grouped("x", after=("y", "w")), grouped("y", after=("z",)),
                 grouped("z", after=("x",)))
    with pytest.raises(SpecError, match=r"^--after cycle: s -> s "):
        c.submit(grouped("s", after=("s",)))
    assert not c.graph.jobs  # nothing of a refused submit was taken
    # A diamond is no cycle.
    c.submit(grouped("top"), grouped("l", after=("top",)), grouped("r", after=("top",)),
             grouped("bottom", after=("l", "r")))
    assert c.job("bottom").state == WAITING


def test_after_across_submits_cannot_close_a_cycle() -> None:
    """A job already waiting cannot be made to wait on a job submitted later:
    the name of one that exists is its identity, order included."""
    c = Cluster(slots=2)
    c.submit(spec("p"))
    c.started()
    c.submit(grouped("q", after=("p",)))
    with pytest.raises(SpecError, match="job name 'p' is taken by p with different order"):
        c.submit(grouped("p", after=("q",)))
    [again], effects = c.state.submit([grouped("p", after=("q",))], replace=True)  # version 2, after q
    c.take(effects)
    assert again.job.id == "p@2" and again.job.state == WAITING
    c.ends("p")
    assert c.started() == ["q"]
    c.ends("q")
    assert c.started() == ["p@2"]


def test_a_named_job_after_a_group_submitted_again_is_the_same_job() -> None:
    c = Cluster(slots=2)
    c.submit(grouped("m", "g"))
    [first] = c.submit(grouped("n", after_groups=("g",)))
    [again] = c.submit(grouped("n", after_groups=("g",)))
    assert again.job is first.job and again.joined
    with pytest.raises(SpecError, match="taken by n with different order"):
        c.submit(grouped("n", after_groups=("other",)))


def test_after_group_waits_for_the_members_known_at_submit() -> None:
    c = Cluster(slots=4)
    c.submit(grouped("a1", "g"), grouped("a2", "g"))
    c.submit(grouped("w", after_groups=("g",)))
    w = c.job("w")
    assert sorted(w.spec.after) == ["a1", "a2"] and w.missing == 2
    c.submit(grouped("late", "g"))  # not a member w waits on
    assert sorted(c.started()) == ["a1", "a2", "late"]
    c.ends("a1")
    assert w.state == WAITING
    c.ends("a2")
    assert w.state == RUNNABLE
    with pytest.raises(SpecError, match="after group 'none'"):
        c.submit(grouped("v", after_groups=("none",)))


def test_held_jobs_and_held_back_nodes_are_apart() -> None:
    # (A paused group's jobs once shared a name with retry.py's held-back
    # compute nodes: the scheduler's next_due then crashed the coordinator.)
    c = Cluster()
    c.submit(grouped("a", "g"))
    c.take(c.state.pause("g"))
    assert c.started() == []
    c.state.hold(c.compute(), "busy", busy=True)
    assert c.state.next_due() is not None
    c.take(c.state.resume("g"))
    c.clock.advance(10)
    c.take(c.state.release_due())
    assert c.started() == ["a"]
