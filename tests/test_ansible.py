"""deploy/ansible: syntax, lint, and a real deployment of three local "hosts".

The deployment test runs site.yml against an inventory of three hosts
(coordinator, storage, compute) that all live on this machine
(`ansible_connection=local`, a prefix directory each, loopback endpoints,
static discovery). It checks that the nodes register, that a second run
changes nothing, and that `weft_state=stopped` stops every daemon; that last
run happens whatever failed before, and any daemon still alive afterwards is
killed, so none outlives the test.

The two real-deployment tests (this one and the install from a source tree)
are marked `slow`: deselected by default, run by the slow step of .ci/run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from helpers import wait_for

REPO = Path(__file__).resolve().parents[1]
ANSIBLE_DIR = REPO / "deploy" / "ansible"
PLAYBOOK = ANSIBLE_DIR / "site.yml"
EXAMPLE_INVENTORY = ANSIBLE_DIR / "inventory.example.ini"
HOSTS = {"coord": "coordinator", "storage1": "storage", "compute1": "compute"}

RUN_TIMEOUT = 150.0  # one ansible-playbook run (about 15 s here; minutes on a loaded 2-core machine)
NODES_TIMEOUT = 20.0  # storage and compute registered with the coordinator
STOP_TIMEOUT = 10.0  # daemons gone after the stop run returned


def tool(name: str) -> str | None:
    """`name` from this Python's environment first, else from PATH."""
    sibling = Path(sys.executable).parent / name
    return str(sibling) if sibling.exists() else shutil.which(name)


ANSIBLE_PLAYBOOK = tool("ansible-playbook")

pytestmark = pytest.mark.skipif(
    ANSIBLE_PLAYBOOK is None, reason="ansible-playbook not installed (pip install -e '.[test]')"
)


def weft_argv() -> list[str]:
    exe = tool("weft")
    return [exe] if exe else [sys.executable, "-m", "weft"]


def ansible_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("WEFT_COORDINATOR", None)
    env.update(
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_RETRY_FILES_ENABLED="0",
        ANSIBLE_PIPELINING="1",
        ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-local"),
        ANSIBLE_REMOTE_TMP=str(tmp_path / "ansible-remote"),
        ANSIBLE_STDOUT_CALLBACK="default",
    )
    return env


def run(argv: list[str], *, env: dict[str, str], cwd: Path = ANSIBLE_DIR, timeout: float = RUN_TIMEOUT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )


def output(p: subprocess.CompletedProcess[str], limit: int = 6000) -> str:
    return f"exit {p.returncode}\n--- stdout (tail)\n{p.stdout[-limit:]}\n--- stderr (tail)\n{p.stderr[-limit:]}"


RECAP = re.compile(
    r"^(?P<host>\S+)\s*:\s*ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+"
    r"unreachable=(?P<unreachable>\d+)\s+failed=(?P<failed>\d+)",
    re.MULTILINE,
)


def recap(p: subprocess.CompletedProcess[str]) -> dict[str, dict[str, int]]:
    """PLAY RECAP counters by host."""
    return {
        m["host"]: {k: int(m[k]) for k in ("ok", "changed", "unreachable", "failed")}
        for m in RECAP.finditer(p.stdout)
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is gone for our purposes
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


# -- static checks ---------------------------------------------------------------------


def test_syntax_check_and_example_inventory(tmp_path: Path) -> None:
    env = ansible_env(tmp_path)
    p = run([ANSIBLE_PLAYBOOK, "--syntax-check", "-i", str(EXAMPLE_INVENTORY), str(PLAYBOOK)], env=env)
    assert p.returncode == 0, output(p)

    inventory = tool("ansible-inventory")
    if inventory is None:
        return
    p = run([inventory, "-i", str(EXAMPLE_INVENTORY), "--list"], env=env)
    assert p.returncode == 0, output(p)
    groups = json.loads(p.stdout)
    for group in ("coordinator", "storage", "compute"):
        assert groups.get(group, {}).get("hosts"), f"example inventory: no hosts in [{group}]"


def test_ansible_lint(tmp_path: Path) -> None:
    lint = tool("ansible-lint")
    if lint is None:
        # It is in the test extra: CI (CI=true, .ci/run) must run it, not skip it.
        if os.environ.get("CI"):
            pytest.fail("ansible-lint not installed in CI (pip install -e '.[test]')")
        pytest.skip("ansible-lint not installed (pip install -e '.[test]')")
    env = ansible_env(tmp_path)
    env["NO_COLOR"] = "1"
    p = run([lint, "--offline", "--format=pep8"], env=env, timeout=120)
    assert p.returncode == 0, output(p)


# -- a real deployment on this machine -------------------------------------------------


def write_inventory(tmp_path: Path) -> tuple[Path, str]:
    """Three local hosts with a prefix each; returns (inventory, coordinator endpoint)."""
    coordinator = f"tcp://127.0.0.1:{free_port()}"
    weft = weft_argv()
    all_vars: dict[str, Any] = {
        "weft_install": False,
        "weft_bin": weft[0] if len(weft) == 1 else weft,
        "weft_become": False,
        "weft_supervisor": "process",  # even where systemd runs (CI VMs): no root, no units
        "weft_user": "",
        "weft_beacon": False,
        "weft_address": "127.0.0.1",
        "weft_coordinator_endpoint": coordinator,
        "weft_start_timeout": 20,
        "weft_stop_timeout": 15,
    }
    if len(weft) > 1:  # `python -m cli` from the repo, not an installed weft
        all_vars["weft_env"] = {"PYTHONPATH": str(REPO)}

    def host(name: str, **kw: Any) -> dict[str, Any]:
        return {
            "ansible_connection": "local",
            "ansible_python_interpreter": sys.executable,
            "weft_prefix": str(tmp_path / name),
            **kw,
        }

    inventory = {
        "all": {
            "vars": all_vars,
            "children": {
                "coordinator": {"hosts": {"coord": host("coord", weft_coordinator_port=int(coordinator.rsplit(":", 1)[1]))}},
                "storage": {"hosts": {"storage1": host("storage1", weft_storage_port=free_port())}},
                "compute": {"hosts": {"compute1": host("compute1", weft_compute_port=free_port(), weft_slots=2)}},
            },
        }
    }
    path = tmp_path / "inventory.yml"
    path.write_text(json.dumps(inventory, indent=1))  # JSON is YAML
    return path, coordinator


def data_dir(tmp_path: Path, host: str) -> Path:
    return tmp_path / host / "var" / "lib" / "weft" / HOSTS[host]


def pidfile(tmp_path: Path, host: str) -> Path:
    return data_dir(tmp_path, host) / f"weft-{HOSTS[host]}.pid"


def read_pids(tmp_path: Path) -> dict[str, int]:
    pids = {}
    for host in HOSTS:
        try:
            pids[host] = int(pidfile(tmp_path, host).read_text().strip())
        except (OSError, ValueError):
            pass
    return pids


def daemon_logs(tmp_path: Path) -> str:
    parts = []
    for host, role in HOSTS.items():
        log = data_dir(tmp_path, host) / f"weft-{role}.log"
        text = log.read_text(errors="replace")[-2000:] if log.exists() else "(none)"
        parts.append(f"--- {host} weft-{role}.log\n{text}")
    return "\n".join(parts)


def ready_nodes(coordinator: str) -> dict[str, list[str]] | None:
    try:
        p = subprocess.run(
            [*weft_argv(), "nodes", "--json"], capture_output=True, text=True, timeout=10,
            env={**os.environ, "WEFT_COORDINATOR": coordinator}, stdin=subprocess.DEVNULL, cwd=REPO,
        )
    except subprocess.TimeoutExpired:
        return None
    if p.returncode != 0:
        return None
    by_role: dict[str, list[str]] = {}
    for node in json.loads(p.stdout)["nodes"]:
        if node.get("ready"):
            by_role.setdefault(node["role"], []).append(node["node"])
    return by_role


# Three playbook runs, each a Python process per task and host: about a minute
# of two cores, the largest single cost of the default suite, for code (the
# roles) that few changes touch. `slow`: .ci/run runs it in the slow step.
@pytest.mark.slow
def test_local_deploy_is_idempotent_and_stops(tmp_path: Path) -> None:
    inventory, coordinator = write_inventory(tmp_path)
    env = ansible_env(tmp_path)
    playbook = [ANSIBLE_PLAYBOOK, "-i", str(inventory), str(PLAYBOOK)]
    seen_pids: dict[str, int] = {}
    try:
        # First run: installs config, starts the three daemons.
        first = run(playbook, env=env)
        seen_pids.update(read_pids(tmp_path))
        assert first.returncode == 0, output(first) + "\n" + daemon_logs(tmp_path)
        counts = recap(first)
        assert set(counts) == set(HOSTS), output(first)
        assert all(c["failed"] == 0 and c["unreachable"] == 0 for c in counts.values()), counts
        assert set(seen_pids) == set(HOSTS), f"pidfiles: {seen_pids}"
        assert all(pid_alive(pid) for pid in seen_pids.values()), seen_pids

        # The storage and compute nodes found the coordinator (static discovery).
        def registered() -> dict[str, list[str]] | None:
            nodes = ready_nodes(coordinator)
            ok = nodes and len(nodes.get("storage", [])) == 1 and len(nodes.get("compute", [])) == 1
            return nodes if ok else None

        try:
            nodes = wait_for(registered, NODES_TIMEOUT, "1 storage + 1 compute ready", interval=0.2)
        except AssertionError as e:
            raise AssertionError(f"{e}\n{daemon_logs(tmp_path)}") from None
        assert nodes == {"storage": ["storage-storage1"], "compute": ["compute-compute1"]}, nodes

        # The unit is rendered (inert without systemd) with the stop semantics; the
        # daemon's settings are in its configuration file, which weft itself reads back.
        config = tmp_path / "compute1" / "etc" / "weft" / "weft-compute.toml"
        unit = (tmp_path / "compute1" / "etc" / "weft" / "systemd" / "weft-compute.service").read_text()
        for line in ("Restart=on-failure", "KillMode=mixed", "TimeoutStopSec=15", f"--config {config}"):
            assert line in unit, unit
        shown = subprocess.run([*weft_argv(), "config", "show", "--role", "compute", "--config", str(config),
                                "--json"], capture_output=True, text=True, timeout=30)
        assert shown.returncode == 0, shown.stderr
        slots = json.loads(shown.stdout)["compute"]["slots"]
        assert slots["value"] == 2 and slots["source"].startswith("file"), slots

        # Second identical run: nothing to do, nothing restarted.
        second = run(playbook, env=env)
        assert second.returncode == 0, output(second)
        counts = recap(second)
        assert set(counts) == set(HOSTS), output(second)
        assert {h: c["changed"] for h, c in counts.items()} == dict.fromkeys(HOSTS, 0), output(second)
        assert read_pids(tmp_path) == seen_pids
    finally:
        # Always stop: weft_state=stopped SIGTERMs each daemon and waits for it.
        stop: subprocess.CompletedProcess[str] | None = None
        try:
            stop = run([*playbook, "-e", "weft_state=stopped"], env=env)
        except subprocess.TimeoutExpired:
            pass
        seen_pids.update(read_pids(tmp_path))
        gone = False
        try:
            gone = wait_for(lambda: not any(pid_alive(p) for p in seen_pids.values()), STOP_TIMEOUT, "daemons gone", interval=0.2)
        except AssertionError:
            pass
        finally:
            for pid in seen_pids.values():  # safety net: no daemon outlives the test
                if pid_alive(pid):
                    try:
                        os.killpg(pid, signal.SIGKILL)
                    except OSError:
                        try:
                            os.kill(pid, signal.SIGKILL)
                        except OSError:
                            pass
    assert stop is not None, f"the weft_state=stopped run took over {RUN_TIMEOUT:g}s"
    assert stop.returncode == 0, output(stop)
    assert all(c["failed"] == 0 for c in recap(stop).values()), output(stop)
    assert gone, f"daemons still running after the stop run: {seen_pids}\n{output(stop)}"
    assert not read_pids(tmp_path), "pidfiles left behind"


# -- installing from a source tree -----------------------------------------------------

INSTALL_TIMEOUT = 240.0  # two venvs with weft's dependencies, from pip's cache or index
INSTALL_PLAY = """\
- name: Install weft
  hosts: weft
  gather_facts: false
  roles:
    - role: weft_install
"""


def source_tree(dest: Path) -> Path:
    """A copy of this checkout's package sources (no venv, no build leftovers)."""
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", ".venv", "*.pyc")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, dest / name)
    # Every folder pyproject.toml maps into the package, so a new one is not forgotten here.
    folders = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"].values()
    for folder in folders:
        shutil.copytree(REPO / folder, dest / folder, ignore=skip)
    return dest


# A wheel build, two venvs with weft's dependencies and three playbook runs
# (minutes on two cores): `slow`, run by .ci/run's slow step.
@pytest.mark.slow
def test_install_from_a_source_tree_on_two_hosts_of_one_machine(tmp_path: Path) -> None:
    """weft_source as a source tree: one wheel, built on the controller; two
    hosts of one machine install it; the second run and a --check run after
    it change nothing."""
    (tmp_path / "src").mkdir()
    src = source_tree(tmp_path / "src")
    hosts = {
        name: {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
               "weft_prefix": str(tmp_path / name)}
        for name in ("host1", "host2")
    }
    inventory = {"all": {"vars": {"weft_source": str(src), "weft_become": False, "weft_os_packages": [],
                                  "weft_python": sys.executable},
                         "children": {"weft": {"hosts": hosts}}}}
    (tmp_path / "inventory.yml").write_text(json.dumps(inventory))
    (tmp_path / "install.yml").write_text(INSTALL_PLAY)
    env = {**ansible_env(tmp_path), "ANSIBLE_ROLES_PATH": str(ANSIBLE_DIR / "roles"), "ANSIBLE_FORKS": "5"}
    playbook = [ANSIBLE_PLAYBOOK, "-i", str(tmp_path / "inventory.yml"), str(tmp_path / "install.yml")]

    first = run(playbook, env=env, cwd=tmp_path, timeout=INSTALL_TIMEOUT)
    assert first.returncode == 0, output(first)
    assert {h: c["failed"] for h, c in recap(first).items()} == {"host1": 0, "host2": 0}, output(first)
    # One build, on the controller, for both hosts.
    build = first.stdout.split("Build a wheel of the weft source tree", 1)[1].split("TASK [", 1)[0]
    assert len(re.findall(r"^ok: \[\S+ -> localhost\]", build, re.M)) == 1, build
    for name in hosts:
        weft = tmp_path / name / "opt" / "weft" / "venv" / "bin" / "weft"
        p = subprocess.run([str(weft), "--version"], capture_output=True, text=True, timeout=60)
        assert p.returncode == 0 and "0." in p.stdout, (name, p.stdout, p.stderr)

    second = run(playbook, env=env, cwd=tmp_path, timeout=INSTALL_TIMEOUT)
    assert second.returncode == 0, output(second)
    assert {h: c["changed"] for h, c in recap(second).items()} == {"host1": 0, "host2": 0}, output(second)

    check = run([*playbook, "--check"], env=env, cwd=tmp_path, timeout=INSTALL_TIMEOUT)
    assert check.returncode == 0, output(check)
    assert {h: c["changed"] for h, c in recap(check).items()} == {"host1": 0, "host2": 0}, output(check)
