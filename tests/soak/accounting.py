"""What the soak's numbers mean, as pure functions of what the run recorded.

Kept apart from the cluster so tests/soak/test_accounting.py can show each
rule failing on hand-written data (no real fault has to misbehave for the
check itself to be checked). All times are Unix seconds: the jobs stamp
their starts with `date` / `time.time()`, the coordinator its `finished`.
"""

from __future__ import annotations

from dataclasses import dataclass

# A job counts as in flight during a fault from the strike until this long
# after the fault ended: the heartbeat timeout (2 s by default, 5 s when this
# was written) for the cluster to notice a lost or silent node, plus slack
# for a loaded 2-core machine.
DETECT = 8.0
# An execution that began this long before the strike may still have been
# running at it (the longest job sleeps 1.5 s; hashing and startup add some).
RUN_SLACK = 3.0
# A status poll that saw the job running this long before the strike counts:
# the poll before the strike is at most one poll interval old.
POLL_SLACK = 1.0
# A job holding a slot at the strike but still reading its inputs writes its
# run-log line later: up to one storage latency bound (1.5 s, a read stuck on
# a paused copy moves to the next) after the strike.
EXEC_SLACK = 1.5
# ... and one whose run began longer than this before the strike is not in it
# any more: a soak job runs at most 1.5 s plus its reads and writes, so such a
# run died with an earlier fault, and the job at the strike is its rerun, not
# yet executing (one such job, run 46 s before, was judged executing).
EXEC_BEFORE = 5.0
# Executions one fault may cost a job: the interrupted attempt's rerun, and one
# more for an attempt refused around the same outage.
RUNS_PER_FAULT = 2


@dataclass
class Window:
    """One fault: from its strike to its end (restart ready, SIGCONT, space freed)."""

    name: str
    strike: float
    end: float
    # A compute node that was paused (or restarted on its task log) may start
    # an attempt the coordinator had given up on: storage refuses its writes,
    # but the job has run once more, possibly after its rerun succeeded.
    compute: bool = False

    def hit(self, t: float, before: float) -> bool:
        return self.strike - before <= t <= self.end + DETECT


def finish_gaps(finished: list[float], start: float) -> list[tuple[float, float]]:
    """Consecutive (previous finish, next finish) pairs, from the submit on."""
    times = [start, *sorted(t for t in finished if t >= start)]
    return list(zip(times, times[1:], strict=False))


def longest_stall(gaps: list[tuple[float, float]], lo: float, hi: float) -> float:
    """The longest interval with no job finishing that overlaps [lo, hi],
    counted from `lo` at the earliest: a fault's stall starts at its strike."""
    return max((b - max(a, lo) for a, b in gaps if b > lo and a < hi), default=0.0)


def baseline_stall(gaps: list[tuple[float, float]], windows: list[tuple[float, float]]) -> float:
    """The longest interval with no job finishing that overlaps no fault: the
    stall the machine itself causes, to read the per-fault stalls against."""
    return max((b - a for a, b in gaps if not any(b > lo and a < hi for lo, hi in windows)), default=0.0)


def rerun_verdicts(
    starts: dict[str, list[float]],
    seen_running: dict[str, list[float]],
    first_done: dict[str, float],
    windows: list[Window],
) -> tuple[int, dict[str, int], list[str]]:
    """(executions beyond one per job, extra executions per fault, reruns no fault explains).

    `starts`: job -> its executions' start times (the run log); `seen_running`:
    job -> times a status poll saw it running; `first_done`: job -> when a poll
    first saw it succeeded. A job may run more than once only if it was in
    flight during a fault (seen running, or an execution began, between the
    strike and DETECT after the fault's end), at most RUNS_PER_FAULT more
    times per such fault, and never after it had succeeded.
    """
    extra, per_fault, bad = 0, {w.name: 0 for w in windows}, []
    for job, ts in starts.items():
        ts = sorted(ts)
        if len(ts) < 2:
            continue
        extra += len(ts) - 1
        for t in ts[1:]:
            # A rerun belongs to the latest fault that struck before it began.
            owner = [w for w in windows if w.strike <= t]
            if owner:
                per_fault[owner[-1].name] += 1
        hits = [w for w in windows
                if any(w.hit(t, POLL_SLACK) for t in seen_running.get(job, []))
                or any(w.hit(t, RUN_SLACK) for t in ts)]
        if not hits:
            bad.append(f"job {job} ran {len(ts)} times but was in flight during no fault")
        elif len(ts) > 1 + RUNS_PER_FAULT * len(hits):
            bad.append(f"job {job} ran {len(ts)} times, in flight during {len(hits)} fault(s): "
                       + ", ".join(w.name for w in hits))
        done = first_done.get(job)
        late = [t for t in ts if done is not None and t > done
                and not any(w.compute and w.hit(t, 0.0) for w in windows)]
        if late:
            bad.append(f"job {job} ran again {late[0] - done:.1f}s after it had succeeded, outside every compute fault")
    return extra, per_fault, bad


def attempt_verdicts(attempts: dict[str, int], runs: dict[str, int]) -> tuple[list[str], list[str]]:
    """(jobs shown with more attempts than executions, succeeded jobs shown with 0 attempts).

    `attempts`: the coordinator's count for each succeeded job; `runs`: how many
    times the job started running (its run log lines)."""
    above = [f"job {j}: {a} attempts, {runs.get(j, 0)} executions"
             for j, a in attempts.items() if a > runs.get(j, 0)]
    zero = [f"job {j}: 0 attempts, {runs.get(j, 0)} executions" for j, a in attempts.items() if a == 0]
    return above, zero


def executing_recovery(in_flight: set[str], starts: dict[str, list[float]], first_done: dict[str, float],
                       strike: float) -> tuple[int, float | None]:
    """(jobs executing at the strike, strike until all of them succeeded, or None).

    `in_flight` are the jobs a status poll showed running at the strike, which
    includes tasks queued on a compute node behind others (prefetched); of
    those, the ones whose execution began from EXEC_BEFORE before the strike
    to EXEC_SLACK after it were executing (or reading their inputs, which comes before the run-log line).
    Their recovery is what a fault costs the jobs it caught; the queued ones
    add their node's queue on top.
    """
    executing = [j for j in in_flight if any(strike - EXEC_BEFORE <= t <= strike + EXEC_SLACK for t in starts.get(j, ()))]
    if any(j not in first_done for j in executing):
        return len(executing), None
    return len(executing), max((first_done[j] - strike for j in executing), default=0.0)
