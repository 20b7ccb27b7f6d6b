"""Resources a job asks for and a compute node offers: CPUs and memory.

Memory is accounted in chunks of 32 MiB: a node of 512 MiB has 16, a job of
100 MiB takes 4. A job that asks for no memory is packed as `tiny` (one
chunk) but not limited. Sizes are written `512M`, `4G`, `1.5GiB` or a plain
number of bytes; size classes name common requests.

Also the checks of a job spec's placement fields (model.py calls
`check_placement`), kept here so the spec module stays small.
"""

from __future__ import annotations

import math
import re
from typing import Any

from .names import SpecError

CHUNK = 32 << 20
SIZE_CLASSES = {"tiny": 32 << 20, "small": 128 << 20, "medium": 256 << 20, "large": 1 << 30}
JOB_CLASSES = ("batch", "workorder")
MAX_CPUS = 4096
MAX_MEMORY = 1 << 50  # a petabyte: anything larger is a typo

_SIZE_RE = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([kmgt]?)(?:i?b)?")
_UNIT = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_SIZE_HELP = "expected bytes or a number with K, M, G or T (512M, 4G, 1.5GiB)"


def parse_size(value: object, what: str = "memory") -> int:
    """Bytes in `value` ("512M", "4G", 1048576); SpecError names `what` and the value."""
    if isinstance(value, int) and not isinstance(value, bool):
        n = float(value)
    elif isinstance(value, str) and (m := _SIZE_RE.fullmatch(value.strip().lower())):
        n = float(m.group(1)) * _UNIT[m.group(2)]
    else:
        raise SpecError(f"invalid {what} {value!r}: {_SIZE_HELP}")
    if not math.isfinite(n) or n <= 0 or n > MAX_MEMORY:
        raise SpecError(f"invalid {what} {value!r}: must be more than 0 and at most 1P")
    return int(n)


def size_class(name: str) -> int:
    """Bytes of a size class; SpecError listing the classes otherwise."""
    try:
        return SIZE_CLASSES[name]
    except KeyError:
        raise SpecError(f"invalid size {name!r}: expected one of {', '.join(SIZE_CLASSES)}") from None


def chunks(memory: int | None) -> int:
    """Chunks a request takes (None, no request: one, as `tiny`)."""
    return 1 if memory is None else max(1, -(-memory // CHUNK))


def show_size(n: int) -> str:
    """512 MiB, 4 GiB, 1.5 GiB: how sizes are shown to people."""
    for unit, shift in (("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            v = n / (1 << shift)
            return f"{v:.0f} {unit}" if v == int(v) or v >= 100 else f"{v:.1f} {unit}"
    return f"{n} B"


def _name(value: Any, what: str) -> None:
    if value is not None and (type(value) is not str or not value or len(value) > 253 or "\0" in value):
        raise SpecError(f"invalid {what} {value!r}: expected a host name or node id")


def check_placement(spec: Any) -> None:
    """Check the resource, host, class and deadline fields of a JobSpec."""
    c = spec.cpus
    if not isinstance(c, int) or isinstance(c, bool) or not 1 <= c <= MAX_CPUS:
        raise SpecError(f"cpus {c!r}: expected a whole number from 1 to {MAX_CPUS}")
    m = spec.memory
    if m is not None and (not isinstance(m, int) or isinstance(m, bool) or not 0 < m <= MAX_MEMORY):
        raise SpecError(f"memory {m!r}: expected a number of bytes from 1 to 2**50")
    _name(spec.host, "host")
    _name(spec.prefer_host, "preferred host")
    _name(spec.node, "node")
    if spec.job_class not in JOB_CLASSES:
        raise SpecError(f"class {spec.job_class!r}: expected one of {', '.join(JOB_CLASSES)}")
    d = spec.deadline
    if d is not None and (not isinstance(d, int | float) or isinstance(d, bool) or not math.isfinite(d)):
        raise SpecError(f"deadline {d!r}: expected a point in time (seconds since the epoch)")


def placement_fields(*, cpus: int | None = None, memory: int | str | None = None, size: str | None = None,
                     host: str | None = None, prefer_host: str | None = None, node: str | None = None,
                     job_class: str | None = None, deadline: float | str | None = None) -> dict[str, Any]:
    """JobSpec fields from what a user gives (the CLI and the client): sizes
    as text, a size class, `host="local"` (this machine), a deadline as
    seconds since the epoch or text (ISO 8601, `+30m`). SpecError if bad."""
    import socket

    from .durations import parse_time

    out: dict[str, Any] = {}
    if memory is not None and size is not None:
        raise SpecError("give memory or a size class, not both")
    if memory is not None:
        out["memory"] = parse_size(memory)
    elif size is not None:
        out["memory"] = size_class(size)
    if cpus is not None:
        out["cpus"] = cpus
    if host is not None:
        out["host"] = socket.gethostname() if host == "local" else host
    if prefer_host is not None:
        out["prefer_host"] = socket.gethostname() if prefer_host == "local" else prefer_host
    if node is not None:
        out["node"] = node
    if job_class is not None:
        out["job_class"] = job_class
    if deadline is not None:
        out["deadline"] = parse_time(deadline, "deadline") if isinstance(deadline, str) else deadline
    return out
