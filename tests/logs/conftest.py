"""A real local cluster for following jobs (one compute node, one storage node),
started from a directory holding the tests' own callables, and the `weft`
command pointed at it. Fixtures of tests/cluster are reused from there."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster.conftest import Weft, make_cluster, running_cluster  # noqa: F401

from weft.localcluster.cluster import LocalCluster

# The callable reports progress, then waits (bounded) for a file the test makes.
USERFNS = '''
import os, sys, time
import weft

def noisy_fail(word):
    print("callable says", word)
    print("callable warns", file=sys.stderr)
    raise RuntimeError("nope")

def report_then_wait(flag):
    weft.progress(30, "callable at work")
    for _ in range(1200):
        if os.path.exists(flag):
            break
        time.sleep(0.05)
    return b"done"
'''


@pytest.fixture(scope="module")
def code_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("userfns")
    (d / "follow_fns.py").write_text(USERFNS)
    return d


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, code_dir: Path) -> Iterator[LocalCluster]:
    with running_cluster(tmp_path_factory.mktemp("logs-cluster"), compute=1, storage=1, slots=3,
                         import_path=[code_dir]) as c:
        yield c


@pytest.fixture(scope="module")
def weft(cluster: LocalCluster) -> Weft:
    return Weft(cluster.endpoint)
