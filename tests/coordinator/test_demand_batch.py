"""Demand counted for a whole submit at once (demand.py) is the demand the
walk per job gave: the order "most-needed first" does not change."""

from __future__ import annotations

import random
from pathlib import Path

from weft.actors.coordinator.graph import RUNNABLE
from weft.actors.coordinator.journal import Journal

from .harness import Cluster, spec
from .test_replay import restart


def test_a_chain_of_2000_submitted_at_once_has_the_demand_of_one_walk_per_job() -> None:
    c = Cluster()
    n = 2000
    # Readers first in half of it: the batch is not in dependency order.
    specs = [spec("j0")] + [spec(f"j{i}", f"j{i - 1}") for i in range(1, n)]
    specs = specs[:1000] + specs[1000:][::-1]
    steps = c.state.submitting(specs, chunk=700)  # slices: flushed between them
    for _ in range(100):
        try:
            c.take(next(steps))
        except StopIteration:
            break
    # Job k blocks every job after it.
    assert [c.job(f"j{k}").demand for k in range(n)] == [n - 1 - k for k in range(n)]
    assert c.job("j0").state == RUNNABLE


def _dag(rng: random.Random, prefix: str, n: int, before: list[str]) -> list:
    specs = []
    names = list(before)
    for i in range(n):
        k = rng.choice([0, 1, 1, 1, 2, 3])
        deps = rng.sample(names, min(k, len(names)))
        name = f"{prefix}{i}"
        specs.append(spec(name, *deps))
        names.append(name)
    return specs


def test_a_dag_submitted_at_once_has_the_demand_it_had_submitted_job_by_job() -> None:
    rng = random.Random(21)
    first = _dag(rng, "a", 60, [])
    second = _dag(rng, "b", 300, [s.name for s in first])
    rng.shuffle(second)  # some readers before their producers
    batched, one_by_one = Cluster(), Cluster()
    for c in (batched, one_by_one):
        c.submit(*first)
        # Some earlier jobs done (their outputs finished): walks stop there.
        for _ in range(5):
            for name in c.started():
                c.ends(name)
    assert any(j.done for j in batched.graph.jobs.values())
    batched.submit(*second)
    by_name = {s.name: s for s in second}
    # Job by job, each after its producers, as the walk per job counted them.
    done: set[str] = {s.name for s in first}
    while len(done) < len(first) + len(second):
        for s in second:
            if s.name not in done and all(r.split("/")[0] in done for r in s.refs.values()):
                one_by_one.submit(by_name[s.name])
                done.add(s.name)
    want = {j: one_by_one.job(j).demand for j in one_by_one.graph.jobs}
    got = {j: batched.job(j).demand for j in batched.graph.jobs}
    assert got == want
    assert sum(want.values()) > len(second)  # shared ancestors: not a forest


def test_a_restarted_coordinator_counts_the_demand_it_had(tmp_path: Path) -> None:
    rng = random.Random(7)
    path = tmp_path / "journal.sqlite"
    c = Cluster(journal=Journal(path))
    c.submit(*[spec("c0")] + [spec(f"c{i}", f"c{i - 1}") for i in range(1, 400)])
    c.submit(*_dag(rng, "d", 200, ["c5", "c50", "c200"]))
    for name in c.started():  # c0 and the roots of the DAG
        c.ends(name)
    assert c.job("c0").done
    before = {j: c.job(j).demand for j in c.graph.jobs if not c.job(j).done}
    assert before["c1"] > 398 and before["c399"] == 0
    c2 = restart(path, c)
    # Replay relinks every unfinished job at once; each counts as it did.
    assert {j: c2.job(j).demand for j in before} == before
