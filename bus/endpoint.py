"""What a connectable ZeroMQ endpoint looks like.

Endpoints arrive from the wire (hello posts, beacons, start calls); checking
them where they arrive makes a typo fail the message that carried it instead
of a task or a node record much later.
"""

from __future__ import annotations

import re
from typing import Any

from .errors import BusError

_ENDPOINT = re.compile(r"tcp://(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+):([0-9]{1,5})|ipc://[^\x00]+|inproc://[^\x00]+")


def is_connectable(endpoint: Any) -> bool:
    m = _ENDPOINT.fullmatch(endpoint) if isinstance(endpoint, str) else None
    return m is not None and (m.group(1) is None or 0 < int(m.group(1)) < 65536)


def check_endpoint(endpoint: Any, what: str = "endpoint") -> str:
    """`endpoint` if a peer could connect to it, else a bad-request error."""
    if not is_connectable(endpoint):
        raise BusError(f"{what} {endpoint!r} is not a connectable endpoint (tcp://HOST:PORT, ipc://PATH)",
                       code="bad-request")
    return endpoint
