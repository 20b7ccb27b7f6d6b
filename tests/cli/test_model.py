"""The job-spec rules behind the CLI's messages, as fast unit tests of
actors/model.py, and the Python client's refusals before anything is sent."""

from __future__ import annotations

import pytest

from weft.actors.client import Client
from weft.actors.flow import parse_flow
from weft.actors.model import JobSpec, SpecError, check_submittable
from weft.cli.show import resubmission_line


def refused(**kw) -> str:
    with pytest.raises(SpecError) as e:
        JobSpec(**kw)
    return str(e.value)


def test_env_name_clashes_are_refused_for_commands_only() -> None:
    assert refused(command=["env"], inputs={"lower": "1", "LOWER": "2"}) == (
        "inputs 'lower' and 'LOWER' both map to $WEFT_INPUT_LOWER: rename one")
    assert refused(command=["env"], inputs={"a-b": "1", "a.b": "2"}) == (
        "inputs 'a-b' and 'a.b' both map to $WEFT_INPUT_A_B: rename one")
    # A callable gets keyword arguments: both names arrive as they are.
    JobSpec(call="m:f", inputs={"lower": "1", "LOWER": "2"}, outputs=["result"])


def test_exec_limits() -> None:
    assert refused(command=["a" * 4096]) == "command name is 4096 bytes long: a program path is at most 4095 bytes"
    JobSpec(command=["/" + "/".join(["d" * 255] * 15)], outputs=["stdout"])  # 3855 bytes, components of 255
    assert refused(command=["d" * 256]) == "command name has a 256-character path component: at most 255 each"
    assert refused(command=[""]) == "the command name (argument 0) is empty"
    JobSpec(command=["echo", "a" * (128 * 1024 - 1)])
    assert refused(command=["echo", "a" * (128 * 1024)]).startswith(
        "command argument 1 is 128 KiB: the OS allows at most 128 KiB per argument")
    # Non-ASCII counts in bytes, as exec does.
    assert refused(command=["echo", "é" * 70_000]).startswith("command argument 1 is 136.7 KiB")
    # An input arrives as WEFT_INPUT_X=value: the name counts too.
    JobSpec(command=["env"], inputs={"x": "a" * (128 * 1024 - 1 - len("WEFT_INPUT_X="))})
    assert refused(command=["env"], inputs={"x": "a" * (128 * 1024 - len("WEFT_INPUT_X="))}).startswith(
        "input 'x' is 131,059 bytes: a command's immediate input arrives as $WEFT_INPUT_X, at most 128 KiB with the name")
    many = {f"x{i}": "a" * 100_000 for i in range(11)}
    assert refused(command=["env"], inputs=many).startswith(
        "the command and its immediate inputs are 1,100,170 bytes: at most 1 MiB together")
    JobSpec(call="m:f", inputs=many, outputs=["result"])  # no environment involved


def test_integers_must_fit_in_64_bits() -> None:
    JobSpec(call="m:f", priority=(1 << 63) - 1)
    JobSpec(call="m:f", priority=-(1 << 63))
    assert refused(call="m:f", priority=1 << 63) == (
        f"priority {1 << 63} is out of range: it must fit in 64 bits (-2**63 to 2**63-1)")
    assert refused(call="m:f", priority=-(1 << 63) - 1).startswith("priority -9223372036854775809 is out of range")
    assert refused(call="m:f", timeout=1 << 63) == f"time limit {1 << 63} is out of range: at most 2**63-1 seconds"
    assert refused(call="m:f", timeout=0) == "time limit 0: expected a positive, finite number of seconds"
    assert refused(call="m:f", timeout=float("inf")) == "time limit inf: expected a positive, finite number of seconds"


def test_names() -> None:
    assert refused(call="m:f", inputs={"a b": "1"}) == "invalid input name 'a b': use letters, digits, '.', '_', '-' (max 64)"
    assert refused(call="m:f", refs={"../x": "j/result"}).startswith("invalid input name '../x'")
    assert refused(call="m:f", outputs=["a", "b", "a"]) == "output 'a' is named twice"


def test_immediate_inputs_over_1_mib_are_not_submittable() -> None:
    check_submittable(JobSpec(call="m:f", inputs={"x": b"a" * (1 << 20)}))
    with pytest.raises(SpecError, match=r"^input 'x' is 1,048,577 bytes: immediate inputs are limited to 1 MiB .*Future or ObjectRef\)$"):
        check_submittable(JobSpec(call="m:f", inputs={"x": b"a" * ((1 << 20) + 1)}))


def test_the_python_client_refuses_before_sending() -> None:
    # Nothing listens on port 1: a SpecError (not "unreachable") shows nothing was sent.
    with Client("tcp://127.0.0.1:1", timeout=1.0, retry_for=1.0) as c:
        with pytest.raises(SpecError, match=r"^input 'x' is 200 MiB: immediate inputs are limited to 1 MiB"):
            c.submit("weft.actors.builtins:echo", x=b"a" * (200 << 20))
        inputs = {f"x{i}": b"a" * (1000 << 10) for i in range(70)}
        with pytest.raises(SpecError, match=r"^the job is 68.4 MiB: a message to the coordinator is at most 64 MiB; "):
            c.submit("weft.actors.builtins:echo", **inputs)
        specs = [c.spec("weft.actors.builtins:echo", x="1"), c.spec("weft.actors.builtins:echo", **inputs)]
        with pytest.raises(SpecError, match=r"^job #2 is 68.4 MiB"):
            c.submit_specs(specs)
        with pytest.raises(SpecError, match=r"^priority \d+ is out of range"):
            c.submit("weft.actors.builtins:echo", priority=10**30, x="1")
        with pytest.raises(SpecError, match="give time_limit or its older name timeout, not both"):
            c.spec("m:f", time_limit=1, timeout=2)
        assert c.spec("m:f", time_limit=5).timeout == 5


def test_workflow_files_take_time_limit() -> None:
    [(_, spec)] = parse_flow({"jobs": {"a": {"call": "m:f", "time_limit": 7}}})
    assert spec.timeout == 7
    [(_, spec)] = parse_flow({"jobs": {"a": {"call": "m:f", "timeout": 8}}})
    assert spec.timeout == 8
    with pytest.raises(SpecError, match="give time_limit or its older name timeout, not both"):
        parse_flow({"jobs": {"a": {"call": "m:f", "time_limit": 7, "timeout": 8}}})
    with pytest.raises(SpecError, match=r"^workflow: jobs.a: inputs 'x' and 'X' both map"):
        parse_flow({"jobs": {"a": {"command": ["env"], "inputs": {"x": "1", "X": "2"}}}})


def test_resubmission_lines() -> None:
    spec = JobSpec(command=["sleep", "9"], timeout=5, priority=3)
    assert resubmission_line("j1", "running", ["time_limit"], spec, {"time_limit": 60}) == (
        "job j1 already exists (running): your --time-limit 5 was not applied; it keeps 60")
    assert resubmission_line("j1", "running", ["time_limit", "priority"], spec, {"priority": 0}) == (
        "job j1 already exists (running): your --time-limit 5 and --priority 3 were not applied")
    assert resubmission_line("j1", "succeeded", [], spec, None) == "job j1 already exists (finished): not run again"
    assert resubmission_line("j1", "waiting", [], spec, None) == "job j1 already exists (waiting): joined it"
    assert resubmission_line("j1", "running", ["priority"], spec, {"priority": 0}, label="b: ") == (
        "b: job j1 already exists (running): your priority 3 was not applied; it keeps 0")


def test_status_lines_show_every_field_in_reading_order() -> None:
    from weft.cli.show import status_lines

    st = {"job": "j1", "state": "failed", "submitted": 0.0, "ran": 1.5, "outcome": "failed-hard",
          "command": ["sh", "-c", "exit 2"], "inputs": {"who": "you"}, "node": "compute-0",
          "exit_code": 2, "demand": 0, "queue": "fast", "time_limit": 60}
    lines = status_lines(st)
    assert [line.split()[0] for line in lines] == [
        "job", "state", "outcome", "command", "inputs", "node", "exit_code", "submitted", "ran", "time_limit", "queue"]
    shown = dict(line.split(None, 1) for line in lines)
    assert shown["command"] == "sh -c exit 2"
    assert shown["inputs"] == "who=you"
    assert shown["exit_code"] == "2"
    assert shown["ran"] == "1.500s"
    assert shown["time_limit"] == "60s"
    assert shown["queue"] == "fast"
