"""Fixtures for the gray-failure tests: daemons of one test, stopped (and
resumed first, if a test left one SIGSTOPped) when it ends."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e.conftest import Daemons


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[Daemons]:
    d = Daemons(tmp_path / "daemons")
    try:
        yield d
    finally:
        for p in d.procs:
            p.signal(signal.SIGCONT)  # a stopped node would ignore SIGTERM until its grace ran out
        d.stop_all()
