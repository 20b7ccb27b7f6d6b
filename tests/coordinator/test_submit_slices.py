"""A big submit is taken in slices (the shell answers other calls between
them) without losing its all-or-nothing check; past the queue bound a
submit is answered busy with a retry hint the client reads."""

from __future__ import annotations

import pytest

from weft.actors.client import retry_hint
from weft.actors.coordinator.graph import CANCELLED, RUNNABLE, WAITING
from weft.actors.coordinator.queue import QueueBound
from weft.actors.model import SpecError
from weft.bus.errors import BusError

from .harness import Cluster, spec


def test_a_big_submit_yields_between_slices_and_links_jobs_listed_after_their_readers() -> None:
    c = Cluster()
    # Each job reads the next one's output: readers come before producers.
    specs = [spec(f"j{i}", f"j{i + 1}") for i in range(2499)] + [spec("j2499")]
    steps = c.state.submitting(specs, chunk=1000)
    pauses = 0
    partly_registered = partly_linked = False
    while True:
        try:
            c.take(next(steps))
        except StopIteration as done:
            results = done.value
            break
        pauses += 1
        assert pauses < 100
        # What another call sees between slices.
        jobs = c.state.graph.jobs
        partly_registered |= 0 < len(jobs) < 2500
        partly_linked |= len(jobs) == 2500 and 0 < c.state.graph.runnable_count + sum(
            1 for j in jobs.values() if j.missing) < 2500
    assert partly_registered and partly_linked
    assert len(results) == 2500
    assert c.job("j2499").state == RUNNABLE and c.job("j0").state == WAITING
    # Demand was counted with every producer known: the last job blocks all.
    assert c.job("j2499").demand == 2499


def test_a_bad_spec_anywhere_refuses_the_whole_submit_before_any_job_is_taken() -> None:
    c = Cluster()
    specs = [spec(f"j{i}") for i in range(2500)] + [spec("bad", "nobody")]
    steps = c.state.submitting(specs, chunk=1000)
    with pytest.raises(SpecError, match="job #2501"):
        for _ in range(100):
            c.take(next(steps))
    assert c.state.graph.jobs == {}


def test_a_job_cancelled_between_slices_stays_cancelled() -> None:
    c = Cluster()
    specs = [spec(f"j{i}") for i in range(2500)]
    steps = c.state.submitting(specs, chunk=1000)
    while "j0" not in c.state.graph.jobs:
        c.take(next(steps))
    c.take(c.state.cancel([c.job("j0")]))
    for _ in range(100):
        try:
            c.take(next(steps))
        except StopIteration:
            break
    assert c.job("j0").state == CANCELLED and c.job("j1").state == RUNNABLE


class _Job:
    def __init__(self, done: bool) -> None:
        self.done = done


def test_past_the_queue_bound_a_submit_is_busy_with_a_retry_hint() -> None:
    now = [0.0]
    bound = QueueBound(10, mono=lambda: now[0])
    jobs = [_Job(False) for _ in range(8)] + [_Job(True) for _ in range(50)]
    bound.admit(2, jobs)
    with pytest.raises(BusError) as e:
        bound.admit(1, jobs + [_Job(False), _Job(False)])
    assert e.value.code == "busy" and retry_hint(e.value.message) == 2.0
    # Once jobs finish, the next count lets it in.
    now[0] += 5
    bound.admit(1, [_Job(True)] * 20)
    with pytest.raises(SpecError, match="more than the coordinator's queue bound of 10"):
        bound.admit(11, [])


class _Counted(list):
    """Jobs that count how many times the bound walks them."""

    walks = 0

    def __iter__(self):  # noqa: ANN204
        self.walks += 1
        return super().__iter__()


def test_the_queue_bound_walks_the_jobs_only_when_its_estimate_says_busy() -> None:
    # A long submit must not walk every queued job every second; the count is
    # taken again only when the jobs accepted since would pass the bound.
    now = [0.0]
    bound = QueueBound(100, mono=lambda: now[0])
    jobs = _Counted([_Job(False) for _ in range(10)])
    for _ in range(40):  # 20 s of submits of 2 jobs: 10 + 80 < 100
        bound.admit(2, jobs)
        now[0] += 0.5
    assert jobs.walks == 1
    # Past the estimate: counted again, and the jobs that ended make room.
    done = _Counted([_Job(True) for _ in range(95)])
    bound.admit(20, done)
    assert done.walks == 1 and bound.unfinished == 20


def test_retry_hint_reads_only_a_well_formed_hint() -> None:
    assert retry_hint("coordinator is busy: ...; retry in 2.5s") == 2.5
    assert retry_hint("compute x is busy (3 calls in progress)") is None
    assert retry_hint("retry in soons") is None


def test_the_collector_paused_for_a_big_submit_is_on_again_after_it_even_on_error() -> None:
    import gc

    from weft.actors.coordinator.submit_ops import _collector_paused

    assert gc.isenabled()
    with _collector_paused():
        assert not gc.isenabled()
        with _collector_paused():  # two big submits at once: on after the last
            pass
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(SpecError), _collector_paused():
        raise SpecError("job #3: bad")
    assert gc.isenabled()
