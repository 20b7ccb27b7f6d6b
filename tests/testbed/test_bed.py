"""The test bed itself: hosts reach each other over the bridge and nothing else; a cut is a cut."""

from __future__ import annotations

import subprocess

import pytest

from .bed import BRIDGE, SUBNET, TestBed
from helpers import wait_for

pytestmark = pytest.mark.testbed

PROBE = ("import socket, sys\n"
         "s = socket.socket(); s.settimeout(2)\n"
         "try:\n    s.connect((sys.argv[1], int(sys.argv[2]))); print('open')\n"
         "except OSError as e:\n    print(type(e).__name__, e.errno)\n")


def probe(bed: TestBed, host: str, addr: str, port: int) -> str:
    p = subprocess.run(bed.argv(bed[host], ["python3", "-c", PROBE, addr, str(port)]),
                       capture_output=True, text=True, timeout=30)
    return p.stdout.strip()


def test_hosts_reach_each_other_and_nothing_beyond_the_bridge(bed: TestBed) -> None:
    for h in bed.hosts:
        routes = subprocess.run(bed.argv(h, ["ip", "-4", "route"]), capture_output=True, text=True,
                                timeout=30).stdout.splitlines()
        assert [r.split()[0] for r in routes] == [f"{SUBNET}.0/24"], routes  # no default route
    assert probe(bed, "h1", bed["h2"].addr, 22) == "open"  # h2's sshd, across the bridge
    assert probe(bed, "h1", "192.0.2.1", 22).startswith("OSError 101")  # ENETUNREACH: no way out
    # This side routes the bed's subnet to the bridge and nothing else through it.
    via = subprocess.run(["ip", "-4", "route", "show", "dev", BRIDGE], capture_output=True, text=True,
                         timeout=30).stdout.splitlines()
    assert [r.split()[0] for r in via] == [f"{SUBNET}.0/24"], via


def test_a_cut_host_is_unreachable_until_reconnected(bed: TestBed) -> None:
    h2 = bed["h2"]
    bed.cut(h2)
    try:
        assert probe(bed, "h1", h2.addr, 22) != "open"
    finally:
        bed.reconnect(h2)
    wait_for(lambda: probe(bed, "h1", h2.addr, 22) == "open", 15, "h2 reachable again")
