"""A storage node pre-sizes its metadata's write-ahead log once it serves
(meta.py's prime_wal, moved off the path to ready), and a cluster's new
databases leave no temporary file behind (runtime/sqlitenew.py)."""

from __future__ import annotations

from weft.actors.storage.meta import WAL_PAGES

from .conftest import cluster_fixtures, wait_for

PRESIZED = (WAL_PAGES - 56) * 4096  # ~WAL_PAGES frames: far more than startup writes

cluster, client, weft = cluster_fixtures("storage-wal", compute=1, storage=1, slots=1)


def test_a_started_storage_node_presizes_its_log_and_serves(cluster, weft) -> None:
    wal = cluster.data_dir / "storage-0" / "meta.sqlite-wal"
    wait_for(lambda: wal.exists() and wal.stat().st_size >= PRESIZED, 20, "the storage WAL pre-sized")
    done = weft("submit", "--wait", "--call", "weft.bench.workloads:noop")
    assert done.returncode == 0, done.stderr
    for d in ("coordinator", "storage-0"):
        names = sorted(p.name for p in (cluster.data_dir / d).iterdir())
        assert not [n for n in names if ".new" in n], names
    assert (cluster.data_dir / "coordinator" / "journal.sqlite").exists()
    assert (cluster.data_dir / "storage-0" / "meta.sqlite").exists()
