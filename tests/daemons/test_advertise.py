"""Multi-host addresses, on 127.0.0.0/8 only: a daemon on a wildcard registers where it is reachable."""

from __future__ import annotations

import json
from pathlib import Path

from .conftest import Daemons, clean_env, free_port, wait_for, weft


def _nodes(coordinator: str) -> list[dict]:
    p = weft("nodes", "--json", env=clean_env(WEFT_COORDINATOR=coordinator))
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)["nodes"]


def test_a_daemon_on_0_0_0_0_registers_at_its_advertised_address(tmp_path: Path, daemons: Daemons) -> None:
    coordinator = f"tcp://127.0.0.1:{free_port()}"
    c = daemons.start("coordinator", "--listen", coordinator, "--data-dir", str(tmp_path / "c"), "--no-beacon")
    daemons.ready_line(c)
    port = free_port("127.0.0.2")
    advertised = f"tcp://127.0.0.2:{port}"
    s = daemons.start("storage", "--listen", f"tcp://0.0.0.0:{port}", "--advertise", advertised,
                      "--data-dir", str(tmp_path / "s"), "--node-id", "adv-storage", "--no-beacon", "--insecure",
                      "--coordinator", coordinator)
    assert daemons.ready_line(s).strip().endswith(f"listening on {advertised}")
    # Without --advertise: the address on the route to the coordinator, never 0.0.0.0.
    k = daemons.start("compute", "--listen", "tcp://0.0.0.0:0", "--data-dir", str(tmp_path / "k"),
                      "--node-id", "wild-compute", "--no-beacon", "--coordinator", coordinator, "--slots", "1",
                      "--insecure")
    daemons.ready_line(k)

    def registered() -> dict[str, dict] | None:
        nodes = {n["node"]: n for n in _nodes(coordinator)}
        # ready: the coordinator reached each one (it takes their inventory) at that endpoint.
        return nodes if all(nodes.get(n, {}).get("ready") for n in ("adv-storage", "wild-compute")) else None

    nodes = wait_for(registered, 20, "both nodes registered and ready")
    assert nodes["adv-storage"]["endpoint"] == advertised
    assert nodes["wild-compute"]["endpoint"].startswith("tcp://127.0.0.1:")
    # And a job goes through both: the coordinator, compute and storage talk at those addresses.
    p = weft("submit", "--wait", "--", "sh", "-c", "echo across", env=clean_env(WEFT_COORDINATOR=coordinator))
    assert p.returncode == 0, p.stderr
