"""A finished job's view in a `wait` answer, as a row.

A client that asks (`Wait.rows`) gets, for a job that finished with nothing
to tell beyond its times (no cause, code, detail, delegation, stderr tail or
deadline), a list of the view's values instead of the view: the coordinator
builds no dict and packs no keys for each of the thousands of jobs one
`wait` answers (the views were 9 % of the dispatch bench's interval,
docs/performance.md). `view` rebuilds the very view `Job.summary` makes
(same keys, same order, same values), so `weft wait --json` prints the same.

Row: [job, state, priority, demand, submitted, output names, attempts, name,
owner, outcome, started, finished]; the answer's `now` is the coordinator's
clock that `waited` and `ran` are measured with. The coordinator's side is
`wait_row` in actors/coordinator/views.py.
"""

from __future__ import annotations

from typing import Any

from .fields import bad

ROW_LEN = 12


def view(op: str, row: Any, now: float) -> dict[str, Any]:
    """The job view `row` stands for; a malformed row is one bad-request naming it."""
    if type(row) is not list or len(row) != ROW_LEN:
        bad(op, "jobs", f"holds a row that is not a list of {ROW_LEN} values")
    job, state, priority, demand, submitted, outputs, attempts, name, owner, outcome, started, finished = row
    if type(job) is not str or type(state) is not str or type(outputs) is not list:
        bad(op, "jobs", "holds a row whose job, state or outputs are not strings")
    try:
        d: dict[str, Any] = {"job": job, "state": state, "priority": priority, "demand": demand,
                             "submitted": submitted, "outputs": [f"{job}/{o}" for o in outputs],
                             "attempts": attempts}
        if name is not None:
            d["name"] = name
        if owner is not None:
            d["owner"] = owner
        if outcome is not None:
            d["outcome"] = outcome
        if started is not None:
            d["started"] = started
        if finished is not None:
            d["finished"] = finished
        # (As Job.summary computes them, from the same numbers.)
        d["waited"] = round(max(0.0, (started or now) - submitted), 6)
        if started is not None:
            d["ran"] = round(max(0.0, (finished or now) - started), 6)
    except TypeError:
        bad(op, "jobs", f"holds a row of job {job!r} whose times are not numbers")
    return d
