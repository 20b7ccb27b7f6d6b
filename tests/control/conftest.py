"""The job-control tests run on the cluster tests' real local clusters; this
one is started from a directory holding the tests' own callables."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cluster.conftest import client, make_cluster, running_cluster, weft  # noqa: F401  (fixtures)

from weft.localcluster.cluster import LocalCluster

# A callable that handles SIGTERM (noting it in a file) and goes on: only a
# SIGKILL ends it. Bounded: it gives up after 60 s.
USERFNS = '''
import os, signal, time

def stubborn(pidfile, termfile):
    def on_term(signum, frame):
        print("got SIGTERM: cleaning up", flush=True)
        with open(termfile, "w") as f:
            f.write("got SIGTERM")
    signal.signal(signal.SIGTERM, on_term)
    with open(pidfile, "w") as f:
        f.write(str(os.getpid()))
    print("working", flush=True)
    for _ in range(1200):
        time.sleep(0.05)
    return b"too late"
'''


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    code = tmp_path_factory.mktemp("control-fns")
    (code / "control_fns.py").write_text(USERFNS)
    with running_cluster(tmp_path_factory.mktemp("cluster"), compute=2, storage=2, slots=2,
                         import_path=[code]) as c:
        yield c
