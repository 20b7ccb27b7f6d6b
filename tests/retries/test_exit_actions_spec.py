"""Retries, pending timeouts and exit actions in job specs and flow files:
parsed, checked with one clear error, kept on the wire, not part of a job's identity."""

from __future__ import annotations

from pathlib import Path

import pytest

from weft.actors.flow import load_flow, parse_on_exit
from weft.actors.model import JobSpec, SpecError


def test_retry_settings_are_not_part_of_the_identity_and_survive_the_wire() -> None:
    plain = JobSpec(command=["grep", "x"], outputs=["stdout"])
    spec = JobSpec(command=["grep", "x"], outputs=["stdout"], retries=2, retry_delay=1.5, pending_timeout=60,
                   on_exit={"1": "succeed", "crashed": "retry"})
    assert spec.job_id() == plain.job_id()
    assert JobSpec.from_wire(spec.to_wire()) == spec
    assert plain.to_wire() == {"o": ["stdout"], "cmd": ["grep", "x"]}  # nothing more for a plain job
    assert spec.exit_action("1") == "succeed" and spec.exit_action("2") is None and plain.exit_action("1") is None


@pytest.mark.parametrize(("kw", "needle"), [
    ({"retries": -1}, "retries -1"),
    ({"retries": 1001}, "retries 1001"),
    ({"retries": True}, "retries True"),
    ({"retry_delay": -1}, "retry delay -1"),
    ({"pending_timeout": 0}, "pending timeout 0"),
    ({"pending_timeout": float("inf")}, "pending timeout inf"),
    ({"on_exit": {"256": "succeed"}}, "exit code (0-255)"),
    ({"on_exit": {"01": "succeed"}}, "exit code (0-255)"),
    ({"on_exit": {"1": "explode"}}, "expected succeed, fail, retry or submit:FLOW.toml"),
    ({"on_exit": {"0": "fail"}}, "exit code 0 is a success"),
    ({"on_exit": ["1=succeed"]}, "must be a map"),
])
def test_bad_settings_are_one_clear_error(kw: dict, needle: str) -> None:
    with pytest.raises(SpecError) as e:
        JobSpec(command=["true"], **kw)
    assert needle in str(e.value)


def test_cli_form_of_exit_actions() -> None:
    assert parse_on_exit(["1=succeed", "timed-out=retry", "crashed = fail"], None) == {
        "1": "succeed", "timed-out": "retry", "crashed": "fail"}
    for bad, needle in ((["1"], "expected WHEN=ACTION"), (["1=succeed", "1=fail"], "given twice"),
                        (["x=succeed"], "WHEN must be")):
        with pytest.raises(SpecError, match=needle):
            parse_on_exit(bad, None)


def test_a_flow_file_keeps_the_flow_its_exit_action_submits(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "cleanup.toml").write_text('[jobs.clean]\ncommand = ["sh", "-c", "echo cleaning"]\n')
    (tmp_path / "main.toml").write_text(
        '[jobs.build]\ncommand = ["sh", "-c", "exit 3"]\nretries = 2\nretry_delay = "2s"\n'
        'pending_timeout = "1m"\non_exit = { 3 = "submit:sub/cleanup.toml", timed-out = "retry" }\n')
    [(name, spec)] = load_flow(tmp_path / "main.toml")
    assert (name, spec.retries, spec.retry_delay, spec.pending_timeout) == ("build", 2, 2.0, 60.0)
    assert spec.on_exit == {
        "3": {"submit": {"jobs": {"clean": {"command": ["sh", "-c", "echo cleaning"]}}}, "flow": "cleanup.toml"},
        "timed-out": "retry",
    }


def test_a_flow_that_submits_itself_is_refused_not_read_forever(tmp_path: Path) -> None:
    (tmp_path / "loop.toml").write_text('[jobs.a]\ncommand = ["false"]\non_exit = { 1 = "submit:loop.toml" }\n')
    with pytest.raises(SpecError, match="nest more than"):
        load_flow(tmp_path / "loop.toml")


def test_a_flow_to_submit_is_checked_when_the_job_is_submitted(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text('[jobs.a]\ncommand = "not a list"\n')
    with pytest.raises(SpecError, match="must be a list"):
        parse_on_exit(["1=submit:bad.toml"], tmp_path)
