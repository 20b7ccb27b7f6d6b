"""The soak's rules on hand-written data (no cluster; runs in the default suite).

No real fault has to misbehave for these rules to be shown failing: each
case here is a run log or a finish sequence that breaks one rule.
"""

from __future__ import annotations

from .accounting import (
    DETECT,
    Window,
    attempt_verdicts,
    baseline_stall,
    executing_recovery,
    finish_gaps,
    longest_stall,
    rerun_verdicts,
)

KILL = Window("compute kill", 1000.0, 1003.0, compute=True)
PAUSE = Window("storage pause", 1030.0, 1038.0)


def test_a_job_running_at_a_fault_may_run_again() -> None:
    extra, per, bad = rerun_verdicts({"a": [999.5, 1006.0]}, {"a": [999.8]}, {"a": 1007.0}, [KILL, PAUSE])
    assert (extra, per, bad) == (1, {"compute kill": 1, "storage pause": 0}, [])


def test_a_job_seen_running_only_by_a_poll_during_the_fault_may_run_again() -> None:
    # Its execution began 5 s before the strike (a long input read), a poll saw it mid-fault.
    assert rerun_verdicts({"a": [995.0, 1010.0]}, {"a": [1001.0]}, {}, [KILL])[2] == []


def test_a_rerun_no_fault_explains_is_reported() -> None:
    # Ran at 1015 and 1020: 12 s after the kill ended, 10 s before the pause.
    bad = rerun_verdicts({"b": [1015.0, 1020.0]}, {"b": [1016.0]}, {}, [KILL, PAUSE])[2]
    assert len(bad) == 1 and "in flight during no fault" in bad[0]
    # The same job running within DETECT of the kill's end is explained.
    assert rerun_verdicts({"b": [1003.0 + DETECT - 1, 1020.0]}, {}, {}, [KILL, PAUSE])[2] == []


def test_too_many_runs_for_the_faults_and_a_run_after_success_are_reported() -> None:
    bad = rerun_verdicts({"c": [999.0, 1004.0, 1005.0, 1006.0]}, {}, {}, [KILL])[2]
    assert len(bad) == 1 and "ran 4 times, in flight during 1 fault" in bad[0]
    # After success: only a stale attempt on a compute node a fault struck.
    assert rerun_verdicts({"d": [999.0, 1005.0]}, {}, {"d": 1001.0}, [KILL])[2] == []
    bad = rerun_verdicts({"d": [1029.0, 1033.0]}, {}, {"d": 1031.0}, [KILL, PAUSE])[2]
    assert len(bad) == 1 and "after it had succeeded" in bad[0]


def test_stalls_are_the_longest_finish_gaps_overlapping_each_fault() -> None:
    finished = [1001.0, 1002.0, 1031.0, 1039.5, 1040.0, 1050.0]
    gaps = finish_gaps(finished, start=995.0)
    assert gaps[0] == (995.0, 1001.0)
    assert longest_stall(gaps, PAUSE.strike, PAUSE.end) == 8.5  # 1031 -> 1039.5
    assert longest_stall(gaps, KILL.strike, KILL.end) == 29.0  # 1002 -> 1031 began within the kill
    # A gap that began before the strike counts from the strike.
    assert longest_stall(gaps, 1020.0, 1025.0) == 11.0  # 1020 -> 1031
    assert baseline_stall(gaps, [(1000.0, 1001.5), (1030.0, 1038.0)]) == 10.0  # 1040 -> 1050


def test_attempts_above_runs_and_zero_attempts_are_reported() -> None:
    above, zero = attempt_verdicts({"a": 1, "b": 2, "c": 0, "d": 2}, {"a": 1, "b": 1, "c": 1, "d": 2})
    assert above == ["job b: 2 attempts, 1 executions"]
    assert zero == ["job c: 0 attempts, 1 executions"]


def test_only_jobs_whose_execution_had_begun_count_as_executing_at_the_strike() -> None:
    starts = {"ran": [1029.0], "queued": [1036.0], "twice": [1020.0, 1029.5], "reading": [1031.2]}
    done = {"ran": 1032.0, "queued": 1040.0, "twice": 1034.5, "reading": 1033.0}
    assert executing_recovery({"ran", "queued", "twice", "reading"}, starts, done, PAUSE.strike) == (3, 4.5)
    # A run long before the strike died with an earlier fault: its job, in
    # flight at the strike, is the rerun, not yet executing.
    starts_old = {**starts, "rerun": [990.0, 1037.5]}
    done_old = {**done, "rerun": 1039.0}
    assert executing_recovery({"ran", "queued", "twice", "reading", "rerun"}, starts_old, done_old,
                              PAUSE.strike) == (3, 4.5)
    # One that never succeeded: no recovery to report.
    assert executing_recovery({"ran", "lost"}, {"lost": [1029.0]}, done, PAUSE.strike) == (1, None)
