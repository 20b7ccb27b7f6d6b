"""A storage node paused (SIGSTOP) for PAUSE seconds, with `--replicas 2`,
while a stream of small jobs runs: the rest of the cluster keeps finishing
jobs, and every job succeeds with the right bytes.

Before issue 15 no job anywhere finished for the whole pause: reads of an
input whose first copy was on the paused node, and writes waiting for its
replica, held every slot until it ran again (the 10 s call timeout is longer
than the pause). Now a read moves to the other copy and a write drops that
replica after its latency bound (~1.5 s), and the coordinator loses the node
after its 2 s heartbeat timeout and places nothing more there.
"""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import pytest
from faults.conftest import storage_copies
from faults.dag import make_dag

from weft.actors.client import Client
from weft.localcluster.cluster import LocalCluster

PAUSE = 8.0
# The longest time without a job finishing anywhere while the node is paused:
# about one latency bound (1.5 s) plus the work in flight, never the pause.
MAX_GAP = 3.5
# Nor does one job take longer, from its dispatch to its end: a read that
# moves to the other copy and a write that drops the replica there cost a
# bound each (~3 s); a job held by the paused node until it ran again
# takes most of the pause.
MAX_RUN = 6.0
BATCH = 8  # jobs per submit of the stream
EVERY = 0.25  # seconds between submits
LEAD = 3.0  # stream before the pause


# Six daemons and ~400 jobs on a fixed 12 s timeline (the pause must outlast
# the heartbeat timeout and the latency bound by enough to tell a stall from
# none): `slow`, run by .ci/run's slow step.
@pytest.mark.slow
def test_a_paused_storage_node_does_not_stall_the_cluster(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path / "cluster", compute=3, storage=3, slots=2, log_level="info",
                           coordinator_args=["--replicas", "2"])
    cluster.start(timeout=30)
    victim = cluster.storages[0]
    dags = []
    try:
        with Client(cluster.endpoint, timeout=10, retry_for=10) as client:
            stop = threading.Event()
            futures: list = []

            def stream() -> None:
                # Small jobs reading 0-3 earlier ones (files and stdout of
                # up to 1.5 MiB), submitted steadily until told to stop.
                for i in range(int((LEAD + PAUSE + 2) / EVERY)):
                    if stop.is_set():
                        return
                    dag = make_dag(1000 + i, BATCH, max_sleep=0.02)
                    dags.append(dag)
                    futures.extend(client.submit_specs(dag.specs))
                    time.sleep(EVERY)

            submitter = threading.Thread(target=stream, daemon=True)
            submitter.start()
            time.sleep(LEAD)
            paused_at = time.time()
            victim.signal(signal.SIGSTOP)
            try:
                time.sleep(PAUSE)
            finally:
                victim.signal(signal.SIGCONT)
            resumed_at = time.time()
            time.sleep(1.0)  # jobs keep coming past the pause
            stop.set()
            submitter.join(30)
            statuses = client.wait(futures, timeout=180)
            assert all(s["state"] == "succeeded" for s in statuses), [s for s in statuses if s["state"] != "succeeded"][:3]
            expected = {}
            for dag in dags:
                for i in range(len(dag)):
                    assert client.get(dag.output(i)) == dag.expected[i], dag.output(i)
                    expected[dag.output(i)] = dag.expected[i]
            # Every copy on every node is right too, the resumed node's
            # included (it went on with the writes it had been sent).
            copies = storage_copies([p.endpoint for p in cluster.storages])
            wrong = [(ep, name) for ep, objs in copies.items() for name, info in objs.items()
                     if info["state"] == "finished" and name in expected and info["data"] != expected[name]]
            assert not wrong, wrong[:5]
    finally:
        for p in cluster.procs:
            p.signal(signal.SIGCONT)
        cluster.stop(grace=5)
    finished = sorted(s["finished"] for s in statuses)
    # Jobs were still coming when the node resumed, so every moment of the
    # pause had work to do: a gap means the cluster stood still.
    assert finished[-1] > resumed_at, "the stream ended before the pause did"
    marks = [paused_at, *(f for f in finished if paused_at < f < resumed_at), resumed_at]
    gaps = [b - a for a, b in zip(marks, marks[1:], strict=False)]
    assert max(gaps) < MAX_GAP, f"no job finished for {max(gaps):.1f}s while storage-0 was paused"
    # Nor did any one job wait out the pause (a write held up by its replica
    # there, a read of the copy there): each costs a latency bound at most.
    ran = {s["job"]: s["finished"] - s["started"] for s in statuses if s.get("started") is not None}
    held = [j for j, t in ran.items() if t > MAX_RUN]
    assert not held, f"{len(held)} jobs ran longer than {MAX_RUN}s, up to {max(ran.values()):.1f}s"
