"""One real local cluster per module with metrics (--metrics) and the dashboard (--http) on."""

from __future__ import annotations

import random
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster.conftest import running_cluster

from weft.actors.client import Client
from weft.localcluster.cluster import LocalCluster


def free_ports(n: int) -> int:
    """The first of `n` consecutive TCP ports on 127.0.0.1 that nothing listens on now."""
    for _ in range(50):
        base = random.randrange(20000, 60000)
        try:
            for p in range(base, base + n):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
        except OSError:
            continue
        return base
    raise AssertionError(f"no {n} consecutive free ports in 50 tries")


def http_get(url: str, headers: dict[str, str] | None = None, timeout: float = 10.0) -> tuple[int, str]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """coordinator, 1 storage, 1 compute of 2 slots; metrics on BASE..BASE+2, dashboard on BASE+3."""
    base = free_ports(4)
    with running_cluster(tmp_path_factory.mktemp("observed"), compute=1, storage=1, slots=2,
                         metrics=f"127.0.0.1:{base}",
                         coordinator_args=["--http", f"127.0.0.1:{base + 3}"]) as c:
        c.http = f"http://127.0.0.1:{base + 3}"  # type: ignore[attr-defined]
        yield c


@pytest.fixture(scope="module")
def client(observed: LocalCluster) -> Iterator[Client]:
    with Client(observed.endpoint, timeout=10.0, retry_for=10.0) as c:
        yield c


@pytest.fixture
def artifacts(request: pytest.FixtureRequest) -> Path:
    d = Path(request.config.rootpath) / "build" / "artifacts"
    d.mkdir(parents=True, exist_ok=True)
    return d
