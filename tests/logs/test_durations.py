"""The one parser of durations and points in time (CLI options and flow files)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from weft.actors.durations import DurationError, parse_duration, parse_time

HELP = "expected seconds or a number with s, m, h or d (90, 90s, 30m, 2h, 7d)"


@pytest.mark.parametrize("text,seconds", [
    ("90", 90.0), ("90s", 90.0), ("30m", 1800.0), ("2h", 7200.0), ("7d", 604800.0),
    ("1.5", 1.5), ("0.5h", 1800.0), (" 10S ", 10.0), ("0", 0.0), (".25m", 15.0),
    (90, 90.0), (2.5, 2.5),
])
def test_good_durations(text: object, seconds: float) -> None:
    assert parse_duration(text, "--time-limit") == seconds


@pytest.mark.parametrize("text", ["", "5x", "m", "-5", "1h30m", "1e3", "nan", "inf", "2 h", "90ss", "+5m"])
def test_bad_durations_name_the_option_and_the_value(text: str) -> None:
    with pytest.raises(DurationError) as e:
        parse_duration(text, "--time-limit")
    assert str(e.value) == f"invalid --time-limit {text!r}: {HELP}"


@pytest.mark.parametrize("value", [True, None, [5], float("nan"), -1, float("inf")])
def test_bad_duration_values_of_other_types(value: object) -> None:
    with pytest.raises(DurationError) as e:
        parse_duration(value, "time_limit")
    assert str(e.value) == f"invalid time_limit {value!r}: {HELP}"


def test_points_in_time() -> None:
    now = 1_000_000.0
    assert parse_time("+30m", "--since", now=now) == now + 1800
    assert parse_time("+90", "--since", now=now) == now + 90
    assert parse_time("2026-12-05T10:00", "--since") == datetime(2026, 12, 5, 10, 0, tzinfo=UTC).timestamp()
    assert parse_time("2026-12-05T10:00:00Z", "--since") == datetime(2026, 12, 5, 10, 0, tzinfo=UTC).timestamp()
    assert parse_time("2026-12-05T11:00:00+01:00", "--since") == datetime(2026, 12, 5, 10, 0, tzinfo=UTC).timestamp()


@pytest.mark.parametrize("text,message", [
    ("yesterday", "invalid --since 'yesterday': expected ISO 8601 (2026-12-05T10:00) or +DURATION (+30m)"),
    ("2026-13-01", "invalid --since '2026-13-01': expected ISO 8601 (2026-12-05T10:00) or +DURATION (+30m)"),
    ("+5x", f"invalid --since '+5x': after '+' {HELP}"),
    ("", "invalid --since '': expected ISO 8601 (2026-12-05T10:00) or +DURATION (+30m)"),
])
def test_bad_points_in_time(text: str, message: str) -> None:
    with pytest.raises(DurationError) as e:
        parse_time(text, "--since")
    assert str(e.value) == message


def test_a_flow_files_time_limit_takes_a_duration(tmp_path) -> None:
    from weft.actors.flow import load_flow
    from weft.actors.model import SpecError

    f = tmp_path / "flow.toml"
    f.write_text('[jobs.a]\ncommand = ["true"]\ntime_limit = "30m"\n[jobs.b]\ncommand = ["true"]\ntimeout = 90\n')
    specs = dict(load_flow(f))
    assert specs["a"].timeout == 1800.0
    assert specs["b"].timeout == 90  # a number stays as written (the job's wire form keeps it)
    f.write_text('[jobs.a]\ncommand = ["true"]\ntime_limit = "soon"\n')
    with pytest.raises(SpecError) as e:
        load_flow(f)
    assert str(e.value) == f"{f}: jobs.a: invalid time_limit 'soon': {HELP}"
