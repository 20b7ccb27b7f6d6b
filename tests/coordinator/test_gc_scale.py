"""Garbage collection at scale, in-process: 100,000 finished jobs past their
retention (their end times set in the journal: no waiting) and 1,000 young
ones. After a collection the coordinator's live job records are the young
ones, its Python heap (tracemalloc: what Python holds live, not RSS, which a
daemon keeps on purpose) gives back what the old ones took, every one of
their objects is listed for deletion on the storage node holding it, and
the journal file shrinks once compacted. The figures are printed
(`pytest -s`); docs/gc.md has them. The end-to-end part (real daemons,
storage checked) is tests/gc_cluster/."""

from __future__ import annotations

import gc as pygc
import time
import tracemalloc
from pathlib import Path

import pytest

from weft.actors.coordinator import gc
from weft.actors.coordinator.graph import SUCCEEDED, Graph
from weft.actors.coordinator.journal import Journal
from weft.actors.coordinator.replay import replay
from weft.actors.coordinator.state import CoordinatorState
from weft.actors.model import JobSpec
from weft.protocol.enums import Outcome

from .harness import CONCAT, Clock, Cluster

pytestmark = pytest.mark.slow

OLD = 100_000
YOUNG = 1_000
KEEP = 7 * 86400.0


def _journal_of(path: Path, now: float) -> Journal:
    """A journal holding OLD jobs that ended 8 days before `now` and YOUNG that ended an hour before."""
    journal = Journal(path)
    g = Graph()
    for i in range(OLD + YOUNG):
        spec = JobSpec(call=CONCAT, inputs={"x": f"input {i}", "y": "z" * 40}, outputs=["result"])
        ended = now - (8 * 86400.0 if i < OLD else 3600.0)
        job = g.add_job(spec.job_id(), spec, now=ended - 1)
        job.state, job.outcome, job.finished, job.attempts = SUCCEEDED, Outcome.SUCCESS, ended, 1
        journal.stage_new(job)
    journal.commit()
    return journal


def test_a_hundred_thousand_old_jobs_are_forgotten(tmp_path: Path) -> None:
    clock = Clock()
    clock.t = time.time()
    journal = _journal_of(tmp_path / "journal.sqlite", clock.t)
    pygc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        state = CoordinatorState(wall=clock.wall, mono=clock.mono)
        replay(journal, state)
        Cluster(state=state, clock=clock, computes=0)  # (storage-0 met)
        g = state.graph
        # Storage announced every output (as its inventory would after a restart).
        for job in list(g.jobs.values()):
            g.object_finished(f"{job.id}/result", "storage-0", 100)
        outputs = {f"{jid}/result" for jid in list(g.jobs)[:OLD]}
        assert len(g.jobs) == OLD + YOUNG
        pygc.collect()
        loaded = tracemalloc.get_traced_memory()[0]

        t0 = time.perf_counter()
        jobs, kept = gc.collectable(g, clock.wall(), KEEP)
        f = gc.forget(state, jobs)
        took = time.perf_counter() - t0
        forgotten, listed = f.jobs, f.objects
        del jobs, f
        pygc.collect()
        after = tracemalloc.get_traced_memory()[0]
        assert len(forgotten) == OLD and kept == YOUNG
        # The coordinator's own count of live job records: what is retained.
        assert len(g.jobs) == YOUNG and len(g.objects) == YOUNG
        # Every output of theirs (and each log) is to be deleted where it is.
        assert set(listed) == {"storage-0"}
        names = set(listed["storage-0"])
        assert outputs <= names and len(names) == 2 * OLD
        del listed, names, outputs
        pygc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    held, left = loaded - base, after - base
    print(f"\nheap: {held / 2**20:.1f} MiB for {OLD + YOUNG} jobs -> {left / 2**20:.1f} MiB for {YOUNG} "
          f"(forgetting took {took:.2f}s)")
    # What the old jobs took is given back: at most a tenth of it is left.
    assert left < held / 10

    before = journal.size()
    journal.stage_forget(forgotten)
    journal.commit()
    seconds = journal.compact()
    shrunk = journal.size()
    rows = journal._db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]
    print(f"journal: {before / 2**20:.1f} MiB -> {shrunk / 2**20:.2f} MiB, compacted in {seconds:.2f}s "
          f"({rows} rows left)")
    assert rows == YOUNG
    assert shrunk < before / 10
