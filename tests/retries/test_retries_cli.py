"""Retries, attempts, pending timeouts, exit actions and failure codes, as a
user of `weft` meets them on a real local cluster (2 compute nodes, 2 storage)."""

from __future__ import annotations

import json
from pathlib import Path

from .conftest import Weft, finished, status, submitted, wait_for


def counting(path: Path, succeed_at: int, fail_with: int = 1) -> str:
    """A shell script that counts its runs in `path` and fails until run `succeed_at`."""
    return (f"n=$(( $(cat {path} 2>/dev/null || echo 0) + 1 )); echo $n > {path}; "
            f"[ $n -ge {succeed_at} ] || exit {fail_with}")


def test_a_job_failing_twice_then_succeeding_with_retries_2_lists_its_attempts(weft: Weft, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    job = submitted(weft("submit", "--name", "r-twice", "--retries", "2", "--retry-delay", "0.1",
                         "--", "sh", "-c", counting(runs, 3)))
    st = finished(weft, job)
    assert st["state"] == "succeeded" and runs.read_text().strip() == "3"
    tries = status(weft, job, "--attempts")["attempt_list"]
    assert [t["outcome"] for t in tries] == ["failed-hard", "failed-hard", "success"]
    assert [t.get("code") for t in tries] == ["exit-status", "exit-status", None]
    assert [t.get("exit_code") for t in tries] == [1, 1, 0]
    assert all(t["node"].startswith("compute-") and t["ended"] >= t["started"] for t in tries)
    p = weft("status", job, "--attempts")
    lines = p.stdout.splitlines()
    head = next(i for i, line in enumerate(lines) if line.lstrip().startswith("#"))
    rows = lines[head + 1:]
    assert len(rows) == 3 and "exit-status" in rows[0] and "success" in rows[2], p.stdout


def test_without_retries_a_failure_is_final_with_its_exit_status(weft: Weft, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    job = submitted(weft("submit", "--name", "r-none", "--", "sh", "-c", counting(runs, 3, fail_with=7)))
    st = finished(weft, job)
    assert (st["state"], st["code"], st["detail"]) == ("failed", "exit-status", "7")
    assert st["message"] == "the command exited with status 7"
    assert runs.read_text().strip() == "1"
    human = weft("status", job).stdout
    assert "exit-status" in human and "the command exited with status 7" in human


def test_a_crash_by_signal_has_the_code_crashed_and_its_signal(weft: Weft) -> None:
    job = submitted(weft("submit", "--name", "r-crash", "--", "sh", "-c", "kill -9 $$"))
    st = finished(weft, job)
    assert (st["state"], st["code"], st["detail"]) == ("failed", "crashed", "9 (SIGKILL)")
    [attempt] = status(weft, job, "--attempts")["attempt_list"]
    assert attempt["signal"] == 9 and "exit_code" not in attempt


def test_a_time_limit_is_timed_out(weft: Weft) -> None:
    job = submitted(weft("submit", "--name", "r-slow", "--time-limit", "0.5", "--", "sleep", "30"))
    st = finished(weft, job)
    assert (st["state"], st["code"], st["outcome"]) == ("failed", "timed-out", "timed-out")


def test_a_missing_command_is_command_not_found(weft: Weft) -> None:
    job = submitted(weft("submit", "--name", "r-nocmd", "--", "/nonexistent/weft-test-cmd"))
    st = finished(weft, job)
    assert (st["state"], st["code"]) == ("failed", "command-not-found")


def test_a_dependent_of_a_failed_job_is_input_failed_naming_it(weft: Weft) -> None:
    bad = submitted(weft("submit", "--name", "r-bad", "--", "sh", "-c", "exit 3"))
    dep = submitted(weft("submit", "--name", "r-dep", "--input", "x=@r-bad/stdout", "--", "cat", "inputs/x"))
    finished(weft, bad)
    st = finished(weft, dep)
    assert (st["state"], st["code"], st["detail"]) == ("failed", "input-failed", bad)


def test_pending_timeout_names_the_missing_inputs_job(weft: Weft) -> None:
    slow = submitted(weft("submit", "--name", "r-producer", "--", "sleep", "30"))
    dep = submitted(weft("submit", "--name", "r-waiter", "--pending-timeout", "1s",
                         "--input", "x=@r-producer/stdout", "--", "cat", "inputs/x"))
    st = finished(weft, dep)
    assert (st["state"], st["code"]) == ("failed", "pending-timeout")
    assert st["detail"] == f"inputs-missing: {slow}/stdout (job {slow} running)"
    weft("cancel", slow)


def test_exit_action_succeed_makes_greps_exit_1_a_success(weft: Weft) -> None:
    job = submitted(weft("submit", "--name", "r-grep", "--on-exit", "1=succeed", "--", "grep", "nomatch", "/dev/null"))
    st = finished(weft, job)
    assert st["state"] == "succeeded" and st["exit_code"] == 1
    plain = submitted(weft("submit", "--name", "r-grep-plain", "--", "grep", "nomatch", "/dev/null"))
    assert finished(weft, plain)["code"] == "exit-status"


def test_exit_action_succeed_still_fails_a_declared_output_not_written(weft: Weft) -> None:
    job = submitted(weft("submit", "--name", "r-noout", "--output", "report", "--on-exit", "1=succeed",
                         "--", "sh", "-c", "exit 1"))
    st = finished(weft, job)
    assert (st["state"], st["code"]) == ("failed", "output-missing")


def test_exit_action_fail_does_not_use_the_retries(weft: Weft, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    job = submitted(weft("submit", "--name", "r-fail", "--retries", "3", "--retry-delay", "0.1",
                         "--on-exit", "2=fail", "--", "sh", "-c", counting(runs, 9, fail_with=2)))
    st = finished(weft, job)
    assert (st["state"], st["code"]) == ("failed", "exit-status") and runs.read_text().strip() == "1"


def test_exit_action_retry_retries_a_job_without_retries(weft: Weft, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    job = submitted(weft("submit", "--name", "r-retry", "--retry-delay", "0.1", "--on-exit", "4=retry",
                         "--", "sh", "-c", counting(runs, 2, fail_with=4)))
    st = finished(weft, job)
    assert st["state"] == "succeeded" and runs.read_text().strip() == "2"
    assert len(status(weft, job, "--attempts")["attempt_list"]) == 2


def test_exit_action_submit_runs_the_flow_with_the_ended_job(weft: Weft, tmp_path: Path) -> None:
    marker = tmp_path / "cleanup-ran"
    flow = tmp_path / "cleanup.toml"
    flow.write_text(
        "[jobs.cleanup]\n"
        f"command = [\"sh\", \"-c\", \"echo $WEFT_INPUT_ENDED_JOB $WEFT_INPUT_ENDED_WHEN > {marker}\"]\n")
    job = submitted(weft("submit", "--name", "r-submit", "--on-exit", f"5=submit:{flow}", "--", "sh", "-c", "exit 5"))
    st = finished(weft, job)
    assert (st["state"], st["code"]) == ("failed", "exit-status")
    assert st["on_exit"] == {"5": "submit:cleanup.toml"}
    text = wait_for(lambda: marker.exists() and marker.read_text().strip(), 30, "the cleanup flow ran")
    assert text == f"{job} 5"


def test_bad_exit_actions_and_durations_are_one_line_errors(weft: Weft, tmp_path: Path) -> None:
    for args, needle in (
        (["--on-exit", "oops"], "expected WHEN=ACTION"),
        (["--on-exit", "300=succeed"], "exit code (0-255)"),
        (["--on-exit", "1=explode"], "succeed, fail, retry or submit:FLOW.toml"),
        (["--on-exit", f"1=submit:{tmp_path / 'missing.toml'}"], "does not exist"),
        (["--retries", "-1"], "retries"),
        (["--pending-timeout", "soon"], "--pending-timeout"),
    ):
        p = weft("submit", *args, "--", "true")
        lines = p.stderr.strip().splitlines()
        assert p.returncode == 2 and len(lines) == 1 and needle in lines[0], (args, p.stderr)


def test_status_json_carries_code_and_detail(weft: Weft) -> None:
    job = submitted(weft("submit", "--name", "r-json", "--", "sh", "-c", "exit 9"))
    finished(weft, job)
    p = weft("status", job, "--json")
    st = json.loads(p.stdout)
    assert st["code"] == "exit-status" and st["detail"] == "9"


def test_exit_actions_on_a_crash_and_a_time_limit(weft: Weft, tmp_path: Path) -> None:
    """WHEN may be `crashed` (killed by a signal not from weft) or `timed-out`."""
    runs = tmp_path / "crash-runs"
    crashy = submitted(weft("submit", "--name", "r-crash-retry", "--retry-delay", "0.1", "--on-exit", "crashed=retry",
                            "--", "sh", "-c",
                            f"n=$(( $(cat {runs} 2>/dev/null || echo 0) + 1 )); echo $n > {runs}; [ $n -ge 2 ] || kill -9 $$"))
    slow = submitted(weft("submit", "--name", "r-slow-ok", "--time-limit", "1", "--on-exit", "timed-out=succeed",
                          "--", "sh", "-c", "echo partial; sleep 30"))
    st = finished(weft, crashy)
    assert st["state"] == "succeeded" and runs.read_text().strip() == "2"
    tries = status(weft, crashy, "--attempts")["attempt_list"]
    assert [(t["outcome"], t.get("code"), t.get("signal")) for t in tries] == [
        ("failed-hard", "crashed", 9), ("success", None, None)], tries
    st = finished(weft, slow)
    assert st["state"] == "succeeded", st
    assert weft("get", slow).stdout == "partial\n"
