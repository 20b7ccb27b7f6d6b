"""What the job-isolation tests need from the machine: root, bubblewrap and an
unprivileged user to run jobs as (made here when missing)."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess

import pytest

JOB_USER = "weft-testjob"


def job_user() -> pwd.struct_passwd:
    """The test user (made with useradd if missing); the test is skipped, saying why, where it cannot be."""
    if os.geteuid() != 0:
        pytest.skip("--run-as needs the compute node to run as root, and these tests run as a user")
    try:
        return pwd.getpwnam(JOB_USER)
    except KeyError:
        pass
    useradd = shutil.which("useradd")
    if useradd is None:
        pytest.skip("no useradd here to make the test user for --run-as")
    done = subprocess.run([useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", JOB_USER],
                          capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        pytest.skip(f"cannot make the test user {JOB_USER}: {done.stderr.strip()}")
    return pwd.getpwnam(JOB_USER)


def need_sandbox(tool: str = "bubblewrap") -> None:
    """Skip, saying why, where `tool` (bubblewrap, or the unshare fallback) cannot make a sandbox."""
    from weft.actors.compute.isolation import choose

    sandbox = choose("namespace", tools=(tool,))
    if sandbox.tool is None:
        pytest.skip(f"no sandbox on this machine ({sandbox.note}); .ci/run installs bubblewrap")
