"""A retry whose output storage node is paused is placed elsewhere in
moments, not held for the whole pause.

A retry's outputs are created on their storage nodes (`create_many`, with
`replace`) before its start goes out. That call used the 10 s default
timeout, so a storage node paused (SIGSTOP) just before it held the retry
for the whole pause; the chaos soak's storage pause caught one such job
(8.7 s against its 6.5 s bound). Now the call is bounded by two heartbeat
intervals, after which the job (no attempt spent) is placed afresh, away
from the node that stopped answering.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from weft.actors.client import Client
from weft.localcluster.cluster import LocalCluster
from weft.protocol.jobs import JobSpec

PAUSE = 10.0
# The retry waits RETRY_DELAY after the first attempt fails; the node is
# paused PAUSE_LEAD before that, so it is not yet "slow" (quiet for two
# heartbeat intervals, 2 s here) when the retry is placed: the creates go to it.
RETRY_DELAY = 3.0
PAUSE_LEAD = 0.7
# From the pause to the retry's success: the rest of the back-off, one
# create bound (2 s), 0.25 s, the run. Held for the pause it takes 10 s.
DONE_WITHIN = 7.0


@pytest.mark.slow
def test_a_retry_is_not_held_by_a_paused_storage_node(tmp_path: Path) -> None:
    marker = tmp_path / "ran-once"
    # A heartbeat timeout longer than the pause: the node is slow, never
    # lost, so only the bounded creates can move the job.
    cluster = LocalCluster(tmp_path / "cluster", compute=1, storage=3, slots=1, log_level="info",
                           coordinator_args=["--replicas", "2", "--heartbeat-timeout", "30"])
    cluster.start(timeout=30)
    paused = cluster.storages[0]
    try:
        with Client(cluster.endpoint, timeout=10, retry_for=10) as client:
            # storage-2 drained: the job's outputs go to storage-0 and -1 (kept by its retry).
            client.drain("storage-2")
            script = f"if [ -e {marker} ]; then echo second; else touch {marker}; exit 3; fi"
            (future,) = client.submit_specs([JobSpec(command=["sh", "-c", script], outputs=["stdout"],
                                                     retries=1, retry_delay=RETRY_DELAY)])
            job = future.job
            deadline = time.monotonic() + 30
            st: dict = {}
            while time.monotonic() < deadline:
                (st,) = client.status([job])
                if st["state"] == "waiting" and marker.exists():
                    break
                time.sleep(0.02)
            failed_at = time.monotonic()
            assert st["state"] == "waiting", f"the first attempt did not fail and back off: {st}"
            client.drain("storage-2", undo=True)  # somewhere to place the retry away from the paused node
            time.sleep(max(0.0, failed_at + RETRY_DELAY - PAUSE_LEAD - time.monotonic()))
            paused.signal(signal.SIGSTOP)
            paused_at = time.monotonic()
            (st,) = client.wait([future], timeout=PAUSE - 1)
            took = time.monotonic() - paused_at
            assert st["state"] == "succeeded", f"the retry did not succeed during the pause: {st}"
            assert took <= DONE_WITHIN, f"the retry took {took:.1f}s from the pause (bound {DONE_WITHIN}s)"
            assert future.result(timeout=10).strip() == b"second"
            assert st["attempts"] == 2, "the start never sent is no attempt"
    finally:
        paused.signal(signal.SIGCONT)
        cluster.stop()
