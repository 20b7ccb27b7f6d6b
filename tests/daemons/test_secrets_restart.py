"""Secret inputs survive a coordinator restart between submit and run (docs/security.md, "Secret inputs")."""

from __future__ import annotations

import hashlib
import signal
from pathlib import Path

import pytest

from .conftest import Daemons, assert_one_line_error, free_port, weft


def test_a_job_submitted_before_a_coordinator_restart_gets_its_secret_after(daemons: Daemons, tmp_path: Path) -> None:
    value = "s3cr3t-survives-restart"
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    data = tmp_path / "coordinator"
    coordinator = ("coordinator", "--listen", endpoint, "--data-dir", str(data), "--no-beacon")
    first = daemons.start(*coordinator)
    daemons.ready_line(first)
    # No compute node yet: the job waits.
    p = weft("submit", "-c", endpoint, "--name", "with-secret", "--secret", f"API_TOKEN={value}", "--",
             "sh", "-c", 'printf %s "$API_TOKEN" | sha256sum')
    assert p.returncode == 0, p.stderr
    assert (data / "secrets").stat().st_mode & 0o777 == 0o600
    first.send_signal(signal.SIGTERM)
    assert first.wait(30) == 0
    daemons.ready_line(daemons.start(*coordinator))
    for role in ("storage", "compute"):
        daemons.ready_line(daemons.start(role, "--coordinator", endpoint, "--no-beacon", "--listen",
                                         f"tcp://127.0.0.1:{free_port()}", "--data-dir", str(tmp_path / role)))
    p = weft("wait", "-c", endpoint, "with-secret", "--timeout", "60")
    assert p.returncode == 0, p.stdout + p.stderr
    out = weft("get", "-c", endpoint, "with-secret/stdout")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[0] == hashlib.sha256(value.encode()).hexdigest()
    # The job ended: the file of secrets is gone.
    assert not (data / "secrets").exists()
    # A flow file names its secrets' files; --secret adds to them; every job of the file gets them.
    (tmp_path / "token.txt").write_text("from-a-file\n")
    flow = tmp_path / "flow.toml"
    flow.write_text('[secrets]\nFILE_TOKEN = "@token.txt"\n\n'
                    '[jobs.show]\ncommand = ["sh", "-c", "echo ${#FILE_TOKEN} ${#CLI_TOKEN}"]\n')
    p = weft("submit", "-c", endpoint, "--file", str(flow), "--secret", "CLI_TOKEN=abc", "--wait")
    assert p.returncode == 0, p.stderr
    job = p.stdout.strip().splitlines()[-1].split()[1]
    out = weft("get", "-c", endpoint, f"{job}/stdout")
    assert out.stdout.strip() == f"{len('from-a-file')} 3", out.stderr
    # A unit file's [Secrets] too.
    units = tmp_path / "units"
    units.mkdir()
    (units / "show.batch").write_text("[Batch]\nExec=sh -c 'echo unit ${#UNIT_TOKEN}'\n\n"
                                      "[Secrets]\nUNIT_TOKEN=@../token.txt\n")
    p = weft("run", "show", "--units", str(units), "-c", endpoint)
    assert p.returncode == 0, p.stderr
    assert weft("wait", "-c", endpoint, p.stdout.strip(), "--timeout", "60").returncode == 0
    out = weft("get", "-c", endpoint, f"{p.stdout.strip()}/stdout")
    assert out.stdout.strip() == f"unit {len('from-a-file')}", out.stderr


def test_a_unit_files_secret_in_clear_is_a_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "u.batch").write_text("[Batch]\nExec=true\n\n[Secrets]\nTOKEN=in-clear\n")
    p = weft("run", "u", "--units", str(tmp_path), "-c", f"tcp://127.0.0.1:{free_port()}")
    assert_one_line_error(p, "[Secrets] TOKEN=: expected @FILE")
    assert "in-clear" not in p.stderr


@pytest.mark.parametrize("table, error", [
    ('TOKEN = "in-clear"', 'secrets.TOKEN: expected "@FILE"'),
    ('TOKEN = "@missing.txt"', "secrets.TOKEN: cannot read"),
    ('WEFT_X = "@t"', "secret name 'WEFT_X'"),
])
def test_a_flow_files_bad_secrets_are_one_line_errors(tmp_path: Path, table: str, error: str) -> None:
    flow = tmp_path / "flow.toml"
    flow.write_text(f'[secrets]\n{table}\n\n[jobs.a]\ncommand = ["true"]\n')
    p = weft("submit", "-c", f"tcp://127.0.0.1:{free_port()}", "--file", str(flow))
    assert_one_line_error(p, error)
    assert "in-clear" not in p.stderr


def test_secrets_in_an_included_flow_or_an_exit_actions_flow_are_refused_not_dropped(tmp_path: Path) -> None:
    from weft.actors.flow import load_named_flow, parse_on_exit
    from weft.actors.model import SpecError

    (tmp_path / "common.toml").write_text('[secrets]\nT = "@t"\n\n[jobs.c]\ncommand = ["true"]\n')
    (tmp_path / "main.toml").write_text('include = ["common.toml"]\n\n[jobs.m]\ncommand = ["true"]\n')
    with pytest.raises(SpecError, match=r"common.toml: \[secrets\] go in the flow file given to weft submit --file"):
        load_named_flow(tmp_path / "main.toml")
    with pytest.raises(SpecError, match=r"takes no \[secrets\]"):
        parse_on_exit({"1": "submit:common.toml"}, tmp_path)
