"""Durations and times for typer options: `weft.actors.durations` for option values.

Options that take seconds are declared as strings and parsed here, so
`--time-limit 30m` and `--timeout 2h` work and a bad value is one line
naming the option and the value.
"""

from __future__ import annotations

from weft.actors.durations import DurationError, parse_duration, parse_time

from .common import fail


def duration(value: str | None, flag: str) -> float | None:
    """Seconds of an option's value (None stays None); a bad value ends the command."""
    if value is None:
        return None
    try:
        return parse_duration(value, flag)
    except DurationError as e:
        fail(str(e))


def point_in_time(value: str | None, flag: str) -> float | None:
    if value is None:
        return None
    try:
        return parse_time(value, flag)
    except DurationError as e:
        fail(str(e))
