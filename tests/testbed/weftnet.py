"""weft daemons on test-bed hosts (each in its host's namespace) and the CLI from the control side.

The hosts share this machine's filesystem, so the daemons run this checkout's
own venv (the Ansible test installs from a wheelhouse instead). With keys, a
cluster is secure (CurveZMQ): one cluster key, a node key per host, an admin
key for the CLI, and the allow-list of them, all made here on the control side.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from weft.bus.curve import AllowList, generate, read_identity, write_identity

from .bed import BROADCAST, Host, TestBed

PORTS = {"coordinator": 5570, "storage": 5571, "compute": 5572}
START_TIMEOUT = 30.0  # one daemon's "listening on" line (slow when the machine is busy)
CLI_TIMEOUT = 60.0


def weft_exe() -> str:
    exe = Path(sys.executable).parent / "weft"
    return str(exe) if exe.exists() else "weft"


def make_keys(keys: Path, hosts: list[Host]) -> Path:
    """The cluster key, node keys `node-<host>.secret`, the coordinator's (a node key named
    `coordinator`: only it may start tasks and fence, protocol/access.py), `admin.secret`, and
    `allow`; returns the admin key."""
    cluster = generate("cluster", "node")
    write_identity(keys, cluster)
    allow = AllowList(keys / "allow")
    allow.path.write_text("# weft allow-list: PUBLIC-KEY ROLE NAME\n")
    allow.load()
    for name, role in [*((f"node-{h.name}", "node") for h in hosts), ("coordinator", "node"), ("admin", "admin")]:
        ident = generate(name, role)
        write_identity(keys, ident, cluster_public=cluster.public)
        allow.add(read_identity(keys / f"{name}.secret"))
    return keys / "admin.secret"


class Daemon:
    def __init__(self, host: Host, role: str, proc: subprocess.Popen, log: Path) -> None:
        self.host, self.role, self.proc, self.log = host, role, proc, log

    @property
    def node_id(self) -> str:
        return f"{self.role}-{self.host.name}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Cluster:
    """Daemons started on bed hosts; `cli()` runs `weft` on the control side against them."""

    def __init__(self, bed: TestBed, keys: Path | None, coordinator_host: Host) -> None:
        self.bed, self.keys = bed, keys
        self.coordinator = f"tcp://{coordinator_host.addr}:{PORTS['coordinator']}"
        self.daemons: list[Daemon] = []
        self.admin_key = keys / "admin.secret" if keys else None

    def start(self, host: Host, role: str, *extra: str, beacon: bool = True) -> Daemon:
        data = host.root / role
        log = host.root / f"{role}.log"
        argv = [weft_exe(), role, "--listen", f"tcp://{host.addr}:{PORTS[role]}", "--data-dir", str(data),
                "--node-id", f"{role}-{host.name}"]
        if beacon:
            argv += ["--beacon-addr", BROADCAST]
        else:
            argv += ["--no-beacon"] + (["--coordinator", self.coordinator] if role != "coordinator" else [])
        if self.keys:
            key = "coordinator" if role == "coordinator" else f"node-{host.name}"
            argv += ["--security", "curve", "--keys", str(self.keys), "--key", str(self.keys / f"{key}.secret")]
        else:
            argv += ["--insecure"]
        offset = log.stat().st_size if log.exists() else 0
        with open(log, "ab") as out:
            proc = subprocess.Popen(self.bed.argv(host, [*argv, *extra]), stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env={**os.environ, "WEFT_LOG_LEVEL": "info"})
        d = Daemon(host, role, proc, log)
        self.daemons.append(d)
        deadline = time.monotonic() + START_TIMEOUT
        while b" listening on " not in log.read_bytes()[offset:]:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{role} on {host.name} did not start: "
                                     f"{log.read_bytes()[offset:][-800:].decode(errors='replace')}")
            time.sleep(0.1)
        return d

    def env(self) -> dict[str, str]:
        env = {**os.environ, "WEFT_COORDINATOR": self.coordinator}
        env.pop("WEFT_CONFIG", None)
        if self.admin_key:
            env["WEFT_KEY"] = str(self.admin_key)
        return env

    def cli(self, *args: str, check: bool = True, timeout: float = CLI_TIMEOUT) -> subprocess.CompletedProcess:
        res = subprocess.run([weft_exe(), *args], capture_output=True, text=True, env=self.env(),
                             timeout=timeout)
        if check and res.returncode != 0:
            raise AssertionError(f"weft {' '.join(args)} exited {res.returncode}: {res.stderr.strip()}")
        return res

    def json(self, *args: str) -> Any:
        return json.loads(self.cli(*args, "--json").stdout)

    def submit(self, *args: str) -> str:
        return self.cli("submit", *args).stdout.strip().split()[0]

    def stop(self) -> None:
        for d in reversed(self.daemons):
            d.stop()
        self.daemons.clear()
