"""The test bed fixture: one bed of hosts per session, removed at the end whatever happened.

Tests skip with the reason when this machine cannot make one (not root, no
network namespaces, no sshd); with WEFT_TESTBED_REQUIRED=1 (.ci/run) they fail
instead, so CI cannot pass by skipping them. WEFT_TESTBED_HOSTS: how many (5).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from .bed import TestBed, Unavailable


@pytest.fixture(scope="session")
def bed() -> Iterator[TestBed]:
    b = TestBed(int(os.environ.get("WEFT_TESTBED_HOSTS", "5")))
    try:
        b.up()
    except Unavailable as e:
        if os.environ.get("WEFT_TESTBED_REQUIRED") == "1":
            pytest.fail(f"test bed unavailable: {e}")
        pytest.skip(f"test bed unavailable: {e}")
    try:
        yield b
    finally:
        b.down()
