"""Durations and points in time as people write them, for the CLI and flow files.

Durations: a plain number of seconds (`90`, `1.5`) or a number with a unit
(`90s`, `30m`, `2h`, `7d`). Points in time: ISO 8601 (`2026-12-05T10:00`,
`2026-12-05T10:00:00+01:00`; no zone means UTC) or relative to now (`+30m`).

It lives under actors/ (not cli/) because actors/flow.py reads flow files
with it and imports only go down; `weft.cli.durations` adapts it to typer.
Errors are DurationError (a SpecError: one line naming the bad value).
"""

from __future__ import annotations

import math
import re
import time
from datetime import UTC, datetime

from .names import SpecError

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION_RE = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)([smhd]?)")
_HELP = "expected seconds or a number with s, m, h or d (90, 90s, 30m, 2h, 7d)"


class DurationError(SpecError):
    pass


def parse_duration(value: object, what: str = "duration") -> float:
    """Seconds in `value` (str, int or float); DurationError names `what` and the value."""
    if isinstance(value, bool):
        raise DurationError(f"invalid {what} {value!r}: {_HELP}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        m = _DURATION_RE.fullmatch(value.strip().lower())
        if m is None:
            raise DurationError(f"invalid {what} {value!r}: {_HELP}")
        seconds = float(m.group(1)) * _UNITS[m.group(2) or "s"]
    else:
        raise DurationError(f"invalid {what} {value!r}: {_HELP}")
    if not (seconds >= 0 and math.isfinite(seconds)):  # also NaN
        raise DurationError(f"invalid {what} {value!r}: {_HELP}")
    return seconds


def parse_time(value: object, what: str = "time", *, now: float | None = None) -> float:
    """A point in time as a Unix timestamp: ISO 8601 or `+DURATION` from `now`."""
    if not isinstance(value, str) or not value.strip():
        raise DurationError(f"invalid {what} {value!r}: expected ISO 8601 (2026-12-05T10:00) or +DURATION (+30m)")
    text = value.strip()
    if text.startswith("+"):
        try:
            delta = parse_duration(text[1:], what)
        except DurationError:
            raise DurationError(f"invalid {what} {value!r}: after '+' {_HELP}") from None
        return (time.time() if now is None else now) + delta
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError:
        raise DurationError(
            f"invalid {what} {value!r}: expected ISO 8601 (2026-12-05T10:00) or +DURATION (+30m)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()
