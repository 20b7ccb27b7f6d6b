"""Durations on the command line: accepted in every unit, refused in one line naming the value."""

from __future__ import annotations

from cluster.conftest import Weft

HELP = "expected seconds or a number with s, m, h or d (90, 90s, 30m, 2h, 7d)"


def one_error(p) -> str:
    assert p.returncode == 2, (p.stdout, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    return lines[0]


def test_time_options_take_durations(weft: Weft) -> None:
    p = weft("submit", "--time-limit", "2h", "--name", "dur-2h", "--json", "--", "true")
    assert p.returncode == 0, p.stderr
    assert weft("status", "dur-2h", "--json").returncode == 0
    assert '"time_limit": 7200' in weft("status", "dur-2h", "--json").stdout
    assert weft("wait", "--timeout", "1m", "dur-2h").returncode == 0
    assert weft("get", "--wait", "--timeout", "30s", "dur-2h").returncode == 0


def test_bad_durations_are_one_line_naming_the_value(weft: Weft) -> None:
    assert one_error(weft("submit", "--time-limit", "5x", "--", "true")) == \
        f"weft: error: invalid --time-limit '5x': {HELP}"
    assert one_error(weft("wait", "--timeout", "soon", "some-job")) == f"weft: error: invalid --timeout 'soon': {HELP}"
    assert one_error(weft("get", "--timeout", "-1", "some-job/stdout")) == f"weft: error: invalid --timeout '-1': {HELP}"
