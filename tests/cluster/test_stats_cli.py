"""`weft stats --json` counts what happened, as a user reads it after running jobs.

(The module cluster of test_cli_flow.py has seen other tests' jobs; this one
gets a cluster of its own, so every number is known.)
"""

from __future__ import annotations

import json
import re

from .conftest import Weft


def stats(weft: Weft) -> dict:
    p = weft("stats", "--json")
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def submit(weft: Weft, *args: str) -> str:
    p = weft("submit", *args)
    assert p.returncode == 0, p.stderr
    job = p.stdout.strip()
    assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", job), job
    return job


def test_stats_count_the_jobs_that_ran(make_cluster) -> None:
    cluster = make_cluster(compute=1, storage=1, slots=2)
    weft = Weft(cluster.endpoint)
    before = stats(weft)
    assert (before["computes"], before["storages"], before["slots"]) == (1, 1, 2)
    assert before["jobs"] == {} and before["dispatched"] == 0 and before["succeeded"] == 0

    good = [submit(weft, "--", "sh", "-c", f"echo stats-{i}") for i in range(2)]
    bad = submit(weft, "--", "sh", "-c", "exit 3")
    for job in [*good, bad]:
        weft("wait", job, "--timeout", "60")
    after = stats(weft)
    assert after["jobs"] == {"succeeded": 2, "failed": 1}, after
    assert (after["succeeded"], after["failed"], after["dispatched"]) == (2, 1, 3), after
    assert (after["soft_failures"], after["delegations"]) == (0, 0), after
    # Nothing is left to run or running.
    assert (after["runnable"], after["busy"]) == (0, 0), after
    assert (after["computes"], after["storages"], after["slots"]) == (1, 1, 2)
    assert after["objects"] >= 3  # every job's stdout
    assert after["uptime"] >= before["uptime"]
