"""Workflow files carry groups, max_cancellation_time and after (no cluster)."""

from __future__ import annotations

import pytest

from weft.actors.flow import parse_flow
from weft.actors.model import SpecError


def test_flow_groups_after_and_cancellation_time() -> None:
    flow = dict(parse_flow({"jobs": {
        "build": {"command": ["true"], "groups": "nightly"},
        "deploy": {"command": ["true"], "after": ["build", "jexternal1"], "groups": ["nightly", "prod"],
                   "max_cancellation_time": "30s", "after_groups": "tests"},
    }}))
    build, deploy = flow["build"], flow["deploy"]
    assert build.groups == ["nightly"] and build.after == ()
    # A job of the file by its name becomes its id; other ids stay as given.
    assert deploy.after == [build.job_id(), "jexternal1"]
    assert deploy.groups == ["nightly", "prod"] and deploy.cancel_time == 30.0 and deploy.after_groups == ["tests"]


def test_a_flow_job_after_itself_is_a_cycle() -> None:
    with pytest.raises(SpecError, match="dependency cycle: a -> a"):
        parse_flow({"jobs": {"a": {"command": ["true"], "after": ["a"]}}})
