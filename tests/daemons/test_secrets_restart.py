"""Secret inputs survive a coordinator restart between submit and run (docs/security.md, "Secret inputs")."""

from __future__ import annotations

import hashlib
import signal
from pathlib import Path

from .conftest import Daemons, free_port, weft


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
