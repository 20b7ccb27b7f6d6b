"""Submitting: new jobs, and what a resubmit of a known job answers."""

from __future__ import annotations

import pytest

from weft.actors.coordinator.graph import FAILED, RUNNABLE, WAITING
from weft.actors.model import JobSpec, SpecError

from .harness import CONCAT, Cluster, spec


def test_resubmitting_a_finished_job_answers_cached_and_runs_nothing() -> None:
    c = Cluster()
    c.submit(spec("a"))
    c.run("a")
    [s] = c.submit(spec("a"))
    assert (s.cached, s.joined, s.differs) == (True, False, [])
    assert c.started() == [] and c.job("a").attempts == 1


def test_resubmitting_a_queued_job_joins_it_and_names_settings_it_did_not_get() -> None:
    c = Cluster()
    c.submit(spec("a", timeout=10))
    [s] = c.submit(spec("a", timeout=99, priority=2))
    assert (s.cached, s.joined) == (False, True)
    assert s.differs == ["priority", "time_limit"]
    assert c.job("a").spec.timeout == 10  # the existing job is not changed by a join
    assert c.job("a").priority == 2  # but it is as urgent as its most urgent submit


def test_resubmitting_a_running_job_joins_it() -> None:
    c = Cluster()
    c.submit(spec("a"))
    c.started()
    [s] = c.submit(spec("a"))
    assert (s.cached, s.joined, s.differs) == (False, True, [])


def test_a_named_resubmit_with_other_work_is_refused() -> None:
    # (It used to join the job and be told `differs: inputs`; names and
    # versions, issue 16: refused unless replaced. More in test_names.py.)
    c = Cluster()
    c.submit(spec("a", value="one"))
    with pytest.raises(SpecError, match="job name 'a' is taken by a with different inputs"):
        c.submit(spec("a", value="two"))


def test_resubmitting_a_failed_job_runs_it_again() -> None:
    c = Cluster()
    c.submit(spec("a"))
    c.started()
    c.ends("a", "failed-hard", cause="boom")
    [s] = c.submit(spec("a"))
    assert (s.cached, s.joined) == (False, False)
    a = c.job("a")
    assert a.state == RUNNABLE and a.cause is None and a.attempts == 0
    assert c.started() == ["a"]


def test_a_submit_reading_an_unknown_object_is_refused_naming_the_job() -> None:
    c = Cluster()
    with pytest.raises(SpecError, match=r"job #2: input 'in0': no job produces 'nope/result'"):
        c.submit(spec("ok"), spec("bad", "nope"))
    assert c.graph.jobs == {}  # nothing of the call was accepted


def test_a_job_may_read_a_job_listed_after_it_in_the_same_submit() -> None:
    c = Cluster()
    c.submit(spec("b", "a"), spec("a"))
    assert c.job("b").state == WAITING
    assert c.started() == ["a"]


def test_identity_ignores_priority_and_timeout() -> None:
    s1 = JobSpec(call=CONCAT, inputs={"v": "x"}, outputs=["result"], priority=1, timeout=5)
    s2 = JobSpec(call=CONCAT, inputs={"v": "x"}, outputs=["result"], priority=7)
    c = Cluster()
    c.submit(s1)
    [s] = c.submit(s2)
    assert s.job.id == s1.job_id() and s.joined and s.differs == ["priority", "time_limit"]


def test_a_new_job_is_journalled_as_new() -> None:
    c = Cluster()
    c.submit(spec("a"))
    writes = [e for e in c.effects if type(e).__name__ == "JournalWrite"]
    assert [j.id for w in writes for j in w.new] == ["a"]
    assert c.job("a").state != FAILED


def test_queued_jobs_share_what_their_specs_hold_alike() -> None:
    # Memory per queued job (docs/performance.md): specs decoded one by one
    # each hold their own callable name and output list; the graph keeps one.
    c = Cluster(computes=0)
    decoded = [JobSpec.from_wire(JobSpec(call="m:f", inputs={"x": str(i)}, outputs=["result"]).to_wire())
               for i in range(3)]
    assert decoded[0].call is not decoded[1].call or decoded[0].outputs is not decoded[1].outputs
    ids = [r.job.id for r in c.submit(*decoded)]
    jobs = [c.job(j) for j in ids]
    assert all(j.spec.call is jobs[0].spec.call and j.spec.outputs is jobs[0].spec.outputs for j in jobs)
    assert [j.spec.inputs for j in jobs] == [{"x": "0"}, {"x": "1"}, {"x": "2"}]
    assert all(f"{j.id}/result" in c.graph.objects for j in jobs)


def test_queued_and_succeeded_jobs_make_no_dict_for_their_rare_fields() -> None:
    # A Job's rarely-set fields (cause, code, detail, ...) live in a __dict__
    # made only when one is set (records.py): 80 bytes a job at 1M queued.
    # (vars() makes an empty one to look at; one never set stays empty.)
    c = Cluster(computes=1)
    c.submit(spec("ran"), spec("queued"))
    c.round()
    c.ends("ran")
    assert c.job("ran").state == "succeeded" and c.job("ran").code is None
    assert vars(c.job("ran")) == {} and vars(c.job("queued")) == {}
    c.job("queued").cause = "a reason"  # a rare field set: kept, and read back
    assert c.job("queued").cause == "a reason" and c.job("ran").cause is None
