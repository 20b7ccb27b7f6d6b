"""`weft nodes` on a real cluster: what a storage node holds shows as it changes,
not only as it was when the node joined."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from weft.actors.resources import show_size

from .conftest import Weft, cluster_fixtures
from helpers import wait_for

# A heartbeat timeout of 0.9 s pings every 0.3 s, so storage use is asked about every 1.2 s.
cluster, client, weft = cluster_fixtures("nodes-view", compute=1, storage=1, slots=1,
                                         coordinator_args=["--heartbeat-timeout", "0.9"])

BIG = 6 << 20


def _storage(weft: Weft) -> dict:
    p = weft("nodes", "--json")
    assert p.returncode == 0, p.stderr
    (node,) = [n for n in json.loads(p.stdout)["nodes"] if n["role"] == "storage"]
    return node


def test_a_storage_nodes_bytes_and_objects_follow_what_it_holds(weft: Weft, tmp_path: Path) -> None:
    before = _storage(weft)
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(BIG))
    p = weft("put", str(big))
    assert p.returncode == 0, p.stderr

    after = wait_for(lambda: (n := _storage(weft))["bytes"] >= before["bytes"] + BIG and n,
                     15.0, "the storage node's bytes to count the 6 MiB put")
    assert after["objects"] >= before["objects"] + 1
    assert after["free"] > 0

    table = weft("nodes")
    assert table.returncode == 0, table.stderr
    header, *rows = table.stdout.splitlines()
    assert "used" in header.split() and "free" in header.split()
    (row,) = [r for r in rows if r.startswith("storage")]
    # Its used and free columns: the bytes it holds and its disk's free space.
    assert re.search(rf"\s{re.escape(show_size(after['bytes']))}\s", row), row
