"""The journal's write-ahead log is copied into its database by the
checkpointer's thread, never by a commit (a submit's answer waits for its
commit: checkpointer.py); and what was committed is all there after a close
and a reopen, the log gone."""

from __future__ import annotations

import os
from pathlib import Path

from weft.actors.coordinator.graph import Graph
from weft.actors.coordinator.journal import Journal
from weft.actors.model import JobSpec

from helpers import wait_for


def _stage(journal: Journal, graph: Graph, tag: str, n: int) -> None:
    # ~3 KB a row: 3,000 rows are ~2,300 log pages, past SQLite's own
    # checkpoint mark (1,000 pages), so a commit left to SQLite would copy them.
    for i in range(n):
        journal.stage_new(graph.add_job(f"{tag}-{i}", JobSpec(call="weft.bench.workloads:noop",
                                                              inputs={"x": f"{i}-" + "v" * 3000})))


def test_a_commit_leaves_the_checkpoint_to_the_checkpointer(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    journal = Journal(path)
    try:
        graph = Graph()
        empty = os.path.getsize(path)
        with journal._checkpoints.lock:  # its thread held off: only a commit could checkpoint now
            _stage(journal, graph, "a", 3000)
            assert journal.commit() == 3000
            assert os.path.getsize(f"{path}-wal") > 4 << 20
            assert os.path.getsize(path) == empty, "the commit copied the log into the database"
        # Let go, the thread copies the log in: the database holds the rows.
        wait_for(lambda: os.path.getsize(path) > 4 << 20, 30, "the checkpointer's copy")
    finally:
        journal.close()
    reopened = Journal(path)
    try:
        assert len(list(reopened.replay())) == 3000
    finally:
        reopened.close()
    assert not os.path.exists(f"{path}-wal")


def test_rows_committed_while_checkpoints_run_all_come_back(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    journal = Journal(path)
    graph = Graph()
    for r in range(8):  # bounded: 8 commits, the checkpointer copying between them
        _stage(journal, graph, f"r{r}", 500)
        assert journal.commit() == 500
    wait_for(lambda: journal._checkpoints.done > 0, 30, "a checkpoint")
    journal.close()
    reopened = Journal(path)
    try:
        ids = {row[0] for row in reopened.replay()}
    finally:
        reopened.close()
    assert len(ids) == 4000 and all(f"r{r}-{i}" in ids for r in range(8) for i in (0, 499))
