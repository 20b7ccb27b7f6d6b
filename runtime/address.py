"""Which address a node announces, and which one its beacon listener binds.

A node listening on a wildcard (tcp://0.0.0.0:PORT) is reachable on every
interface, but "0.0.0.0" means nothing to another host, and 127.0.0.1 (what
ZeroMQ's wildcard resolves to here) only to this one. So it announces the
address of the interface that routes to the peer it talks to: the static
coordinator, or the beacon's broadcast address. `--advertise` overrides.
"""

from __future__ import annotations

import socket

_WILDCARDS = {"0.0.0.0", "*", "", "::", "[::]"}
_LIMITED_BROADCAST = "255.255.255.255"


def _host_port(endpoint: str) -> tuple[str, str] | None:
    if not endpoint.startswith("tcp://") or ":" not in endpoint[6:]:
        return None
    host, port = endpoint[6:].rsplit(":", 1)
    return host, port


def route_address(toward: str) -> str:
    """This host's address on the route to host `toward` (no packet is sent); 127.0.0.1 if none."""
    hp = _host_port(toward)
    host = hp[0] if hp else toward
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            # Connecting a UDP socket only picks the route; broadcast needs the option.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            s.connect((host, int(hp[1]) if hp else 9))
            return s.getsockname()[0]
    except (OSError, ValueError):
        return "127.0.0.1"


def advertised(listen: str, bound: str, advertise: str | None, toward: str | None) -> str:
    """The endpoint a node announces: `advertise`, else `bound` unless `listen` is a wildcard."""
    if advertise:
        return advertise
    lhp, bhp = _host_port(listen), _host_port(bound)
    if lhp is None or bhp is None or lhp[0] not in _WILDCARDS:
        return bound
    return f"tcp://{route_address(toward or '127.0.0.1')}:{bhp[1]}"


def beacon_bind(beacon_addr: str) -> str:
    """Where a beacon listener binds: the directed broadcast address itself.

    On Linux a UDP socket bound to a broadcast address receives the
    broadcasts to it alone, so a cluster beaconing on loopback
    (127.255.255.255) is not heard on the LAN and the other way round. The
    limited broadcast (255.255.255.255) has no subnet, and a socket bound to
    a unicast address hears no broadcast: then every interface.
    """
    return "0.0.0.0" if beacon_addr == _LIMITED_BROADCAST else beacon_addr
