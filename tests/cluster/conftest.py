"""Real local clusters for the coordinator tests: every node is a subprocess.

`cluster` is shared by the tests of one module (coordinator, 2 compute nodes
of 2 slots, 2 storage nodes); tests sharing it use job names and inputs of
their own so their job ids never collide. `make_cluster` starts a cluster of
another shape for one test. Every cluster is stopped when its scope ends,
whatever happened.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest

from weft.actors.client import Client
from weft.localcluster.cluster import LocalCluster

from helpers import wait_for  # noqa: F401  (re-exported to the cluster tests)

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 30.0
CLI_TIMEOUT = 60.0


@contextmanager
def running_cluster(data_dir: Path, **kw: Any) -> Iterator[LocalCluster]:
    cluster = LocalCluster(data_dir, **kw)
    cluster.start(timeout=START_TIMEOUT)  # stops what it started if it fails
    try:
        yield cluster
    finally:
        cluster.stop(grace=5.0)


@pytest.fixture
def make_cluster(tmp_path: Path) -> Iterator[Callable[..., LocalCluster]]:
    """`make_cluster(compute=1, storage=1, slots=1)`: a cluster just for this test."""
    with ExitStack() as stack:
        n = 0

        def make(**kw: Any) -> LocalCluster:
            nonlocal n
            n += 1
            return stack.enter_context(running_cluster(tmp_path / f"cluster-{n}", **kw))

        yield make


def weft_argv() -> list[str]:
    exe = shutil.which("weft")
    return [exe] if exe else [sys.executable, "-m", "weft"]


class Weft:
    """Runs the `weft` command against one coordinator, as a user would."""

    def __init__(self, endpoint: str | None) -> None:
        self.env = dict(os.environ)
        self.env.pop("WEFT_COORDINATOR", None)
        if endpoint is not None:
            self.env["WEFT_COORDINATOR"] = endpoint

    def __call__(self, *args: str, timeout: float = CLI_TIMEOUT, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        t0 = time.monotonic()
        p = subprocess.run(
            [*weft_argv(), *args], capture_output=True, text=True, cwd=REPO,
            env={**self.env, **(env or {})}, timeout=timeout, stdin=subprocess.DEVNULL,
        )
        p.elapsed = time.monotonic() - t0  # type: ignore[attr-defined]
        return p


def cluster_fixtures(name: str, **kw: Any) -> tuple[Any, Any, Any]:
    """A test module's `cluster`, `client` and `weft` fixtures: one local
    cluster of this shape (LocalCluster's arguments) for the whole module.
    `cluster, client, weft = cluster_fixtures("name", compute=1, ...)`."""

    @pytest.fixture(scope="module")
    def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
        with running_cluster(tmp_path_factory.mktemp(name), **kw) as c:
            yield c

    @pytest.fixture(scope="module")
    def client(cluster: LocalCluster) -> Iterator[Client]:
        with Client(cluster.endpoint, timeout=10.0, retry_for=10.0) as c:
            yield c

    @pytest.fixture(scope="module")
    def weft(cluster: LocalCluster) -> Weft:
        return Weft(cluster.endpoint)

    return cluster, client, weft


cluster, client, weft = cluster_fixtures("cluster", compute=2, storage=2, slots=2)


