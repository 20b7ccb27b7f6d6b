"""deploy/ansible over SSH against test-bed hosts: a secure (CurveZMQ) three-host cluster.

    h1: coordinator    h2: storage    h3: compute      (control side: this process, 198.51.100.1)

The control side builds a wheelhouse (`pip wheel` of this checkout and its
dependencies); each host, which has no route out, installs weft from it into
its own prefix. Keys are made once on the control side (weft_keys role) and
each host gets only its own node key, cluster.secret and the allow-list. A
client with a `user` key made by the playbook submits a job and reads its
output back; a second run of the playbook changes nothing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .bed import TestBed
from .weftnet import weft_exe
from helpers import wait_for

pytestmark = pytest.mark.testbed

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_DIR = REPO / "deploy" / "ansible"
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
ROLES = {"h1": "coordinator", "h2": "storage", "h3": "compute"}
RUN_TIMEOUT = 600.0  # one playbook run: three venvs from the wheelhouse on a busy 2-core machine
WHEEL_TIMEOUT = 300.0
NODES_TIMEOUT = 30.0

RECAP = re.compile(r"^(?P<host>\S+)\s*:\s*ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+"
                   r"unreachable=(?P<unreachable>\d+)\s+failed=(?P<failed>\d+)", re.M)


def recap(p: subprocess.CompletedProcess) -> dict[str, dict[str, int]]:
    return {m["host"]: {k: int(m[k]) for k in ("ok", "changed", "unreachable", "failed")}
            for m in RECAP.finditer(p.stdout)}


def output(p: subprocess.CompletedProcess) -> str:
    return f"exit {p.returncode}\n--- stdout\n{p.stdout[-8000:]}\n--- stderr\n{p.stderr[-3000:]}"


class Deployment:
    def __init__(self, bed: TestBed) -> None:
        self.bed = bed
        self.dir = bed.root / "ansible"
        self.keys = self.dir / "keys"
        self.wheelhouse = self.dir / "wheelhouse"
        self.inventory = self.dir / "inventory.yml"
        self.shared = self.dir / "shared"  # seen by jobs too (--share), unlike the keys beside it
        self.coordinator = f"tcp://{bed['h1'].addr}:5570"

    def prefix(self, host: str) -> Path:
        return self.bed[host].root / "prefix"

    def build_wheelhouse(self) -> None:
        # From a copy of the sources: pip would otherwise leave build/ in the checkout.
        src = self.dir / "src"
        skip = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", ".venv", "*.pyc", ".git")
        shutil.copytree(REPO, src, ignore=skip)
        p = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "-w", str(self.wheelhouse), str(src)],
                           capture_output=True, text=True, timeout=WHEEL_TIMEOUT,
                           env={**os.environ, "SOURCE_DATE_EPOCH": "315532800"})
        if p.returncode != 0:
            pytest.skip(f"cannot build a wheelhouse here (pip wheel: {p.stderr.strip()[-300:]})")

    def write_inventory(self) -> None:
        bed = self.bed
        self.shared.mkdir(parents=True, exist_ok=True)
        hosts = {name: {"ansible_host": bed[name].addr, "weft_prefix": str(self.prefix(name))} for name in ROLES}
        inventory = {"all": {
            "vars": {
                "ansible_user": "root",
                "ansible_ssh_private_key_file": str(bed.ssh_key),
                "ansible_ssh_common_args": bed.ssh_args(),
                "ansible_python_interpreter": "/usr/bin/python3",
                "weft_python": "/usr/bin/python3",
                "weft_wheelhouse": str(self.wheelhouse),
                "weft_os_packages": [],
                "weft_become": False,
                "weft_user": "",  # the hosts share /etc/passwd: no account made
                "weft_supervisor": "process",
                "weft_keys_src": str(self.keys),
                "weft_controller_bin": weft_exe(),
                "weft_keys_clients": [{"name": "alice", "role": "user"}],
                "weft_start_timeout": 60,
                "weft_stop_timeout": 20,
                # Jobs of the rolling upgrade share files here (a secure cluster isolates jobs: docs/security.md).
                "weft_config": {"compute": {"share": str(self.shared)}},
            },
            "children": {role: {"hosts": {name: hosts[name]}} for name, role in ROLES.items()},
        }}
        self.inventory.write_text(json.dumps(inventory, indent=1))  # JSON is YAML

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("WEFT_")}
        env.update(ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", ANSIBLE_RETRY_FILES_ENABLED="0",
                   ANSIBLE_PIPELINING="1", ANSIBLE_HOST_KEY_CHECKING="False", ANSIBLE_STDOUT_CALLBACK="default",
                   ANSIBLE_LOCAL_TEMP=str(self.dir / "tmp-local"), ANSIBLE_REMOTE_TMP=str(self.dir / "tmp-remote"),
                   ANSIBLE_SSH_CONTROL_PATH_DIR=str(self.dir / "cp"))
        return env

    def play(self, *extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(ANSIBLE_PLAYBOOK), "-i", str(self.inventory), "site.yml", *extra],
                              cwd=ANSIBLE_DIR, env=self.env(), capture_output=True, text=True,
                              timeout=RUN_TIMEOUT, stdin=subprocess.DEVNULL)

    def weft(self, *args: str, key: str | None = "alice") -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("WEFT_")}
        env["WEFT_COORDINATOR"] = self.coordinator
        if key:
            env["WEFT_KEY"] = str(self.keys / f"{key}.secret")
        return subprocess.run([weft_exe(), *args], capture_output=True, text=True, env=env, timeout=120)

    def logs(self) -> str:
        parts = []
        for name, role in ROLES.items():
            log = self.prefix(name) / "var" / "lib" / "weft" / role / f"weft-{role}.log"
            parts.append(f"--- {name} {role}\n" + (log.read_text(errors="replace")[-1500:] if log.exists() else ""))
        return "\n".join(parts)


@pytest.fixture(scope="module")
def deployed(bed: TestBed) -> Iterator[tuple[Deployment, subprocess.CompletedProcess]]:
    if not ANSIBLE_PLAYBOOK.exists():
        pytest.skip("ansible-playbook not installed (pip install -e '.[test]')")
    d = Deployment(bed)
    d.dir.mkdir(parents=True, exist_ok=True)
    d.build_wheelhouse()
    d.write_inventory()
    try:
        first = d.play()
        assert first.returncode == 0, output(first) + "\n" + d.logs()
        yield d, first
    finally:
        d.play("-e", "weft_state=stopped", "-e", "weft_install=false")


def test_playbook_deploys_a_secure_cluster_over_ssh(deployed: tuple[Deployment, Any]) -> None:
    d, first = deployed
    counts = recap(first)
    assert set(counts) == set(ROLES) and all(c["failed"] == 0 and c["unreachable"] == 0
                                              for c in counts.values()), output(first)
    # Installed from the wheelhouse into each host's own prefix.
    for name in ROLES:
        assert (d.prefix(name) / "opt" / "weft" / "venv" / "bin" / "weft").exists(), name

    def ready() -> dict | None:
        p = d.weft("nodes", "--json")
        if p.returncode != 0:
            return None
        got = {n["node"]: n for n in json.loads(p.stdout)["nodes"] if n.get("ready")}
        return got if {"storage-h2", "compute-h3"} <= set(got) else None

    try:
        found = wait_for(ready, NODES_TIMEOUT, "storage-h2 and compute-h3 ready", interval=0.5)
    except AssertionError as e:
        raise AssertionError(f"{e}\n{d.logs()}") from None
    assert found["compute-h3"]["endpoint"] == f"tcp://{d.bed['h3'].addr}:5572"

    # Secure: every daemon's configuration says curve, and a client without a key is refused.
    for name, role in ROLES.items():
        config = d.prefix(name) / "etc" / "weft" / f"weft-{role}.toml"
        shown = subprocess.run([weft_exe(), "config", "show", "--role", role, "--config", str(config), "--json"],
                               capture_output=True, text=True, timeout=60)
        assert shown.returncode == 0, shown.stderr
        assert json.loads(shown.stdout)[role]["security"]["value"] == "curve"
    refused = d.weft("nodes", key=None)
    assert refused.returncode == 2 and "secure cluster" in refused.stderr, refused.stderr


def test_each_host_gets_only_its_own_key(deployed: tuple[Deployment, Any]) -> None:
    d, _ = deployed
    for name in ROLES:
        keys = d.prefix(name) / "etc" / "weft" / "keys"
        # The coordinator's host also holds the coordinator's key (only it may start tasks and fence).
        extra = ["coordinator.secret"] if ROLES[name] == "coordinator" else []
        assert sorted(p.name for p in keys.iterdir()) == sorted(["allow", "cluster.public", "cluster.secret",
                                                                 "node.secret", *extra]), name
        own = (d.keys / f"node-{name}.secret").read_text()
        assert (keys / "node.secret").read_text() == own, f"{name} holds another host's key"
        assert oct((keys / "node.secret").stat().st_mode & 0o777) == "0o600"
        allow = (keys / "allow").read_text()
        for who in ("node-h1", "node-h2", "node-h3", "coordinator", "admin", "alice"):
            assert re.search(rf"^\S+ \w+ {who}$", allow, re.M), (who, allow)


def test_a_user_key_submits_and_reads_back(deployed: tuple[Deployment, Any]) -> None:
    d, _ = deployed
    p = d.weft("submit", "--", "sh", "-c", "echo hello from $(hostname -I)")
    assert p.returncode == 0, p.stderr
    job = p.stdout.split()[0]
    waited = d.weft("wait", job, "--timeout", "60")
    assert waited.returncode == 0, waited.stdout + waited.stderr + d.logs()
    got = d.weft("get", f"{job}/stdout")
    assert got.returncode == 0, got.stderr
    assert got.stdout.split() == ["hello", "from", d.bed["h3"].addr]  # ran on the compute host


def test_rendered_units_verify(deployed: tuple[Deployment, Any]) -> None:
    d, _ = deployed
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze not installed")
    for name, role in ROLES.items():
        unit = d.prefix(name) / "etc" / "weft" / "systemd" / f"weft-{role}.service"
        text = unit.read_text()
        for line in ("NoNewPrivileges=yes", "ProtectSystem=strict", "PrivateTmp=yes", "ProtectHome=yes",
                     f"ReadWritePaths={d.prefix(name) / 'var' / 'lib' / 'weft' / role}"):
            assert line in text, (line, text)
        p = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, f"{unit}: {p.stdout}{p.stderr}"
        # systemd's own reading of the hardening (offline: this machine runs no systemd).
        p = subprocess.run([analyze, "security", "--offline=yes", "--no-pager", str(unit)],
                           capture_output=True, text=True, timeout=60)
        if p.returncode == 0 or "✓" in p.stdout:
            for setting in ("NoNewPrivileges", "ProtectSystem", "PrivateTmp", "ProtectHome"):
                assert re.search(rf"^✓ {setting}=", p.stdout, re.M), (setting, p.stdout)


def test_a_second_run_changes_nothing(deployed: tuple[Deployment, Any]) -> None:
    d, _ = deployed
    second = d.play()
    assert second.returncode == 0, output(second)
    assert {h: c["changed"] for h, c in recap(second).items()} == dict.fromkeys(ROLES, 0), output(second)


@pytest.mark.skipif(os.environ.get("WEFT_TESTBED_SHORT") == "1", reason="short mode (.ci/run): no rolling upgrade")
def test_a_rolling_upgrade_keeps_queued_jobs(deployed: tuple[Deployment, Any]) -> None:
    """A new wheel (weft 0.1.1), one host at a time: jobs queued before it all run, once, after it."""
    d, _ = deployed
    flag, runs = d.shared / "go", d.shared / "upgrade-runs"
    # A job that holds its dependents back until the upgrade is over (the hosts share this file system).
    blocker = d.weft("submit", "--", "sh", "-c", f"while [ ! -e {flag} ]; do sleep 0.2; done").stdout.split()[0]
    queued = [d.weft("submit", "--after", blocker, "--", "sh", "-c", f"echo $WEFT_JOB_ID >> {runs}; echo {i}")
              .stdout.split()[0] for i in range(4)]
    assert len(set(queued)) == 4

    src = d.dir / "src"
    pyproject = src / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('version = "0.1.0"', 'version = "0.1.1"', 1))
    init = src / "weft" / "__init__.py"
    init.write_text(init.read_text().replace('__version__ = "0.1.0"', '__version__ = "0.1.1"', 1))
    newer = d.dir / "wheelhouse-0.1.1"
    shutil.copytree(d.wheelhouse, newer, ignore=shutil.ignore_patterns("weft-*.whl"))
    p = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(newer), str(src)],
                       capture_output=True, text=True, timeout=WHEEL_TIMEOUT)
    assert p.returncode == 0, p.stderr

    upgrade = d.play("-e", f"weft_wheelhouse={newer}", "-e", "weft_serial=1")
    assert upgrade.returncode == 0, output(upgrade) + d.logs()
    assert all(c["changed"] > 0 for c in recap(upgrade).values()), output(upgrade)
    for name in ROLES:
        weft = d.prefix(name) / "opt" / "weft" / "venv" / "bin" / "weft"
        v = subprocess.run([str(weft), "--version"], capture_output=True, text=True, timeout=60)
        assert v.stdout.strip() == "weft 0.1.1", (name, v.stdout, v.stderr)

    flag.touch()
    waited = d.weft("wait", *queued, "--timeout", "120")
    assert waited.returncode == 0, waited.stdout + waited.stderr + d.logs()
    assert sorted(runs.read_text().split()) == sorted(queued), "each queued job ran once"
