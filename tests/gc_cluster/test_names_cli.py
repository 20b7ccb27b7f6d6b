"""Names and versions through the `weft` command on a real local cluster."""

from __future__ import annotations

import json

from .conftest import Weft, error_line, ok


def test_a_taken_name_with_other_work_is_refused_then_replaced_as_version_2(weft: Weft) -> None:
    assert ok(weft("submit", "--name", "report", "--wait", "--", "echo", "first")) == "first\n"

    p = weft("submit", "--name", "report", "--", "echo", "second")
    line = error_line(p)
    assert "job name 'report' is taken by report with different command" in line
    assert "--replace" in line
    # Nothing changed: the name still reads the first output.
    assert ok(weft("get", "report")) == "first\n"

    out = ok(weft("submit", "--name", "report", "--replace", "--wait", "--", "echo", "second"))
    assert out == "second\n"
    st = json.loads(ok(weft("status", "report", "--json")))
    assert (st["job"], st["name"], st["version"], st["state"]) == ("report@2", "report", 2, "succeeded")
    # NAME is the newest version; NAME@1 and NAME@2 address each.
    assert ok(weft("get", "report")) == "second\n"
    assert ok(weft("get", "report@1")) == "first\n"
    assert ok(weft("get", "report@2/stdout")) == "second\n"
    assert ok(weft("get", "report/stdout")) == "second\n"
    assert json.loads(ok(weft("status", "report@1", "--json")))["job"] == "report"
    waited = ok(weft("wait", "report", "--timeout", "20"))
    assert waited.split()[0] == "report@2"


def test_a_changed_priority_is_not_a_new_version(weft: Weft) -> None:
    ok(weft("submit", "--name", "prio", "--wait", "--", "echo", "p"))
    p = weft("submit", "--name", "prio", "--priority", "3", "--", "echo", "p")
    assert ok(p).strip() == "prio"
    assert json.loads(ok(weft("status", "prio", "--json")))["job"] == "prio"


def test_a_running_older_version_is_not_disturbed(weft: Weft) -> None:
    ok(weft("submit", "--name", "long", "--", "sh", "-c", "sleep 2; echo old"))
    ok(weft("submit", "--name", "long", "--replace", "--", "echo", "new"))
    assert ok(weft("wait", "long@1", "long@2", "--timeout", "30"))
    assert ok(weft("get", "long@1")) == "old\n"
    assert ok(weft("get", "long")) == "new\n"
