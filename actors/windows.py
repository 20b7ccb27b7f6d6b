"""Time windows: when a job may start.

A rule is `DAYS`, `HH:MM-HH:MM`, or both (`Mon-Fri 18:00-08:00`); DAYS is a
day (`Mon`), a range (`Mon-Fri`, `Fri-Mon` wraps) or a comma list of those
(`Mon,Wed,Sat-Sun`). A time range that ends before it starts runs over
midnight and belongs to the day it starts on: `Fri 18:00-08:00` is Friday
evening to Saturday 08:00. `HH:MM-HH:MM` with equal ends is the whole day.

A job may start at a moment that is inside at least one `allow` rule (when
it has any) and inside no `deny` rule. Times are the coordinator's local
time (`now`'s timezone). Pure functions, no clock: the coordinator passes
`now`, so every rule is tested with fixed times.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from .names import SpecError

_FULL = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_TIME = re.compile(r"([01]?[0-9]|2[0-3]):([0-5][0-9])")
_HELP = "expected DAYS, HH:MM-HH:MM or both (Mon-Fri 18:00-08:00, Sat-Sun, 22:00-06:00)"
# No allowed moment within this many days: the rules never allow a start.
HORIZON_DAYS = 8


@dataclass(frozen=True, slots=True)
class Rule:
    allow: bool
    days: frozenset[int]  # weekday numbers, Monday 0
    start: time | None = None  # None: the whole day
    end: time | None = None

    def covers(self, t: datetime) -> bool:
        wd = t.weekday()
        if self.start is None:
            return wd in self.days
        now = t.time().replace(tzinfo=None)
        if self.start < self.end:
            return wd in self.days and self.start <= now < self.end
        if self.start == self.end:
            return wd in self.days
        # Over midnight: the evening of a listed day, or the morning after one.
        return (wd in self.days and now >= self.start) or ((wd - 1) % 7 in self.days and now < self.end)


def _day(text: str, rule: str, what: str) -> int:
    key = text.strip().lower()
    for i, name in enumerate(_FULL):
        if len(key) >= 3 and name.startswith(key):
            return i
    raise SpecError(f"invalid {what} {rule!r}: unknown day {text.strip()!r} (Mon, Tue, ... Sun)")


def _days(text: str, rule: str, what: str) -> frozenset[int]:
    out: set[int] = set()
    for part in text.split(","):
        first, sep, last = part.partition("-")
        a = _day(first, rule, what)
        b = _day(last, rule, what) if sep else a
        out.update((a + i) % 7 for i in range((b - a) % 7 + 1))
    return frozenset(out)


def _clock(text: str, rule: str, what: str) -> time:
    m = _TIME.fullmatch(text.strip())
    if m is None:
        raise SpecError(f"invalid {what} {rule!r}: {text.strip()!r} is not a time HH:MM (00:00 to 23:59)")
    return time(int(m.group(1)), int(m.group(2)))


def parse_rule(text: str, what: str = "time window", *, allow: bool = True) -> Rule:
    """One rule; SpecError names `what` (the option) and the text."""
    if not isinstance(text, str) or not text.split():
        raise SpecError(f"invalid {what} {text!r}: {_HELP}")
    parts = text.split()
    if len(parts) > 2:
        raise SpecError(f"invalid {what} {text!r}: {_HELP}")
    days: frozenset[int] | None = None
    start = end = None
    for p in parts:
        if ":" in p:
            if start is not None:
                raise SpecError(f"invalid {what} {text!r}: {_HELP}")
            a, sep, b = p.partition("-")
            if not sep:
                raise SpecError(f"invalid {what} {text!r}: a time range is HH:MM-HH:MM")
            start, end = _clock(a, text, what), _clock(b, text, what)
        else:
            if days is not None or start is not None:
                raise SpecError(f"invalid {what} {text!r}: {_HELP}")
            days = _days(p, text, what)
    return Rule(allow, days if days is not None else frozenset(range(7)), start, end)


def parse_rules(windows: Sequence[Sequence[str]]) -> list[Rule]:
    """[["allow" | "deny", RULE], ...] (a spec's `windows`) as rules."""
    return [parse_rule(text, f"--{kind}", allow=kind == "allow") for kind, text in windows]


def allowed(rules: Sequence[Rule], t: datetime) -> bool:
    allows = [r for r in rules if r.allow]
    if allows and not any(r.covers(t) for r in allows):
        return False
    return not any(r.covers(t) for r in rules if not r.allow)


def next_allowed(rules: Sequence[Rule], now: datetime) -> datetime | None:
    """The first moment from `now` on at which the rules allow a start
    (`now` itself if they allow it now), or None if none within a week.

    Whether a start is allowed changes only at a rule's edge (midnight, a
    range's start or end), so only those moments are tried."""
    if allowed(rules, now):
        return now
    edges = {time(0, 0)}
    for r in rules:
        if r.start is not None:
            edges.update((r.start, r.end))
    day0 = now.date()
    for d in range(HORIZON_DAYS + 1):
        date = day0 + timedelta(days=d)
        for edge in sorted(edges):
            t = datetime.combine(date, edge, tzinfo=now.tzinfo)
            if t > now and allowed(rules, t):
                return t
    return None
