"""Submission control (unit files, child jobs, try-submit, events, windows)
on real local clusters: one small cluster per test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cluster.conftest import Weft, running_cluster

from weft.actors.client import Client
from weft.localcluster.cluster import LocalCluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with running_cluster(tmp_path_factory.mktemp("cluster"), compute=1, storage=1, slots=2) as c:
        yield c


@pytest.fixture(scope="module")
def client(cluster: LocalCluster) -> Iterator[Client]:
    with Client(cluster.endpoint, timeout=10.0, retry_for=10.0) as c:
        yield c


@pytest.fixture(scope="module")
def weft(cluster: LocalCluster) -> Weft:
    return Weft(cluster.endpoint)
