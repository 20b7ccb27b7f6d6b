"""Time windows: the pure rule (next_allowed) with fixed times, and the
coordinator keeping a job waiting, with its next start in its status, until
its window opens."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from weft.actors.model import JobSpec, SpecError
from weft.actors.windows import next_allowed, parse_rule, parse_rules

from .harness import Cluster, spec

# 2026-12-05 is a Saturday.
SAT_10 = datetime(2026, 12, 5, 10, 0, tzinfo=UTC)
NIGHTS = [["allow", "Mon-Fri 18:00-08:00"], ["deny", "Sat-Sun"]]


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """December `day` 2026, UTC."""
    return datetime(2026, 12, day, hour, minute, tzinfo=UTC)


def test_weeknights_from_a_saturday_open_on_monday_evening() -> None:
    assert next_allowed(parse_rules(NIGHTS), SAT_10) == at(7, 18)


def test_inside_a_window_the_answer_is_now() -> None:
    rules = parse_rules(NIGHTS)
    assert next_allowed(rules, at(8, 23, 30)) == at(8, 23, 30)  # Tuesday night
    assert next_allowed(rules, at(9, 7, 59)) == at(9, 7, 59)  # Wednesday morning, Tuesday's window


def test_a_window_over_midnight_belongs_to_the_day_it_starts() -> None:
    rules = parse_rules([["allow", "Fri 22:00-02:00"]])
    assert next_allowed(rules, at(5, 1, 0)) == at(5, 1, 0)  # Saturday 01:00: Friday's night
    assert next_allowed(rules, at(5, 3, 0)) == at(11, 22, 0)  # then next Friday
    # The morning after a day not listed is not allowed: Friday 01:00 belongs to Thursday.
    assert next_allowed(rules, at(4, 1, 0)) == at(4, 22, 0)


def test_deny_only_and_the_edges_of_a_range() -> None:
    rules = parse_rules([["deny", "09:00-17:00"]])
    assert next_allowed(rules, at(7, 9, 0)) == at(7, 17, 0)  # the start is inside, the end is not
    assert next_allowed(rules, at(7, 8, 59)) == at(7, 8, 59)


def test_rules_that_never_allow_answer_none() -> None:
    assert next_allowed(parse_rules([["allow", "Mon"], ["deny", "Mon-Sun"]]), SAT_10) is None


def test_day_lists_and_wrapping_ranges() -> None:
    assert parse_rule("Fri-Mon").days == frozenset({4, 5, 6, 0})
    assert parse_rule("mon,wed,Saturday").days == frozenset({0, 2, 5})


@pytest.mark.parametrize(("text", "says"), [
    ("Mon-Fry", "unknown day 'Fry'"),
    ("25:00-08:00", "'25:00' is not a time HH:MM"),
    ("Mon 18:00", "a time range is HH:MM-HH:MM"),
    ("", "expected DAYS, HH:MM-HH:MM or both"),
])
def test_a_bad_rule_is_one_line_naming_it(text: str, says: str) -> None:
    with pytest.raises(SpecError, match="invalid --allow") as e:
        JobSpec(command=["true"], windows=[["allow", text]])
    assert says in str(e.value)


def test_a_closed_window_keeps_the_job_waiting_with_its_next_start() -> None:
    c = Cluster(slots=1)
    c.state.tz = UTC
    c.clock.t = SAT_10.timestamp()
    windowed = spec("night")
    windowed.windows = NIGHTS
    c.submit(windowed, spec("now"))
    assert c.started() == ["now"]  # the other job is not held up behind it
    job = c.job("night")
    assert job.state == "waiting"
    view: dict = {}
    c.state.window_view(job, view)
    assert view["next_start"] == at(7, 18).timestamp() and view["waiting_for"] == "time window"
    assert c.state.window_reason(job) == "time-window: closed until Mon 2026-12-07 18:00"
    c.ends("now")
    # Hours pass a recheck at a time; still closed on Sunday.
    c.clock.t = at(6, 12).timestamp()
    c.take(c.state.release_due())
    assert c.started() == [] and job.state == "waiting"
    c.clock.t = at(7, 18, 0).timestamp() + 1
    c.take(c.state.release_due())
    assert c.started() == ["night"]


def test_a_job_not_picked_yet_shows_its_next_start_too() -> None:
    c = Cluster(computes=0)
    c.state.tz = UTC
    c.clock.t = SAT_10.timestamp()
    windowed = spec("night")
    windowed.windows = NIGHTS
    c.submit(windowed)
    assert c.started() == [] and c.job("night").state == "runnable"
    view: dict = {}
    c.state.window_view(c.job("night"), view)
    assert view["next_start"] == at(7, 18).timestamp()
    inside: dict = {}
    c.clock.t = at(7, 19).timestamp()
    c.state.window_view(c.job("night"), inside)
    assert "next_start" not in inside and "waiting_for" not in inside


def test_the_cluster_default_applies_to_jobs_without_windows_of_their_own() -> None:
    c = Cluster(slots=2, time_windows=[["deny", "Sat-Sun"]])
    c.state.tz = UTC
    c.clock.t = SAT_10.timestamp()
    own = spec("own")
    own.windows = [["allow", "Sat"]]
    c.submit(spec("plain"), own)
    assert c.started() == ["own"]
    view: dict = {}
    c.state.window_view(c.job("plain"), view)
    assert view["next_start"] == at(7, 0).timestamp()
