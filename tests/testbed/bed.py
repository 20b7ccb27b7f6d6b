"""N "hosts" on this machine: Linux network namespaces on one bridge, each with an address and sshd.

    bridge wtb-br0 (198.51.100.1/24, the control side: this process, Ansible)
      ├── veth wtb-v1 ── eth0 198.51.100.11 in netns wtb-h1 (sshd on :22)
      ├── veth wtb-v2 ── eth0 198.51.100.12 in netns wtb-h2
      └── ...

198.51.100.0/24 is a documentation range (RFC 5737) that nothing routes. The
hosts get no default route, so nothing in them reaches beyond the bridge, and
nothing is routed out of it: the bridge address gives this side a route *to*
the hosts, never a way out for them. The hosts share this machine's
filesystem, so each gets a directory of its own (`Host.root`) for prefix,
data and configuration. Cutting a host off sets its bridge-side veth down:
the host's processes keep running, as on a machine whose cable was pulled.

`down()` removes everything by name (namespaces and links starting `wtb-`),
so it also cleans up after a run that was killed; it kills every process
still in a host's namespace first. One bed at a time per machine: `up()`
takes a lock file for as long as the bed exists in this process.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

PREFIX = "wtb"
BRIDGE = f"{PREFIX}-br0"
SUBNET = "198.51.100"
CONTROL = f"{SUBNET}.1"
BROADCAST = f"{SUBNET}.255"
ROOT = Path(os.environ.get("WEFT_TESTBED_DIR", "/tmp/weft-testbed"))
SSHD = "/usr/sbin/sshd"
SSH_TIMEOUT = 20.0  # every host's sshd accepting connections


class Unavailable(Exception):
    """This machine cannot make a test bed; the message says why (a test skips with it)."""


@dataclass(frozen=True)
class Host:
    name: str  # h1, h2, ...
    index: int
    root: Path  # this host's own directory on the shared filesystem

    @property
    def ns(self) -> str:
        return f"{PREFIX}-{self.name}"

    @property
    def addr(self) -> str:
        return f"{SUBNET}.{10 + self.index}"

    @property
    def veth(self) -> str:
        return f"{PREFIX}-v{self.index}"


def _run(argv: list[str], check: bool = True) -> subprocess.CompletedProcess:
    res = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if check and res.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({res.returncode}): {res.stderr.strip()}")
    return res


def machine_problem() -> str | None:
    """Why this machine cannot make a test bed, or None if it can (tried, then undone)."""
    if os.geteuid() != 0:
        return "the test bed needs root (network namespaces, a bridge)"
    for tool in ("ip", "ssh", "ssh-keygen"):
        if shutil.which(tool) is None:
            return f"{tool} not installed (apt-get install -y iproute2 openssh-client)"
    if not os.access(SSHD, os.X_OK):
        return f"{SSHD} not installed (apt-get install -y openssh-server)"
    probe = f"{PREFIX}-probe{os.getpid() % 10000}"
    res = _run(["ip", "netns", "add", probe], check=False)
    if res.returncode != 0:
        return f"cannot make a network namespace: {res.stderr.strip()}"
    _run(["ip", "netns", "del", probe], check=False)
    return None


def leftovers() -> tuple[list[str], list[str]]:
    """Namespaces and links of a test bed that exist now (this one or one a killed run left)."""
    ns = [line.split()[0] for line in _run(["ip", "netns", "list"], check=False).stdout.splitlines()
          if line.startswith(f"{PREFIX}-")]
    links = []
    for line in _run(["ip", "-o", "link", "show"], check=False).stdout.splitlines():
        name = line.split(":")[1].strip().split("@")[0] if ":" in line else ""
        if name.startswith(f"{PREFIX}-"):
            links.append(name)
    return ns, links


def teardown() -> None:
    """Remove every test-bed namespace (after killing what runs in it) and link. Safe to repeat."""
    namespaces, links = leftovers()
    for ns in namespaces:
        pids = _run(["ip", "netns", "pids", ns], check=False).stdout.split()
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in pids:
                try:
                    os.kill(int(pid), sig)
                except (ProcessLookupError, ValueError):
                    pass
            deadline = time.monotonic() + 5
            while pids and time.monotonic() < deadline:
                pids = [p for p in pids if os.path.exists(f"/proc/{p}")
                        and not _zombie(p)]
                time.sleep(0.05)
        _run(["ip", "netns", "del", ns], check=False)
    for link in links:
        _run(["ip", "link", "del", link], check=False)


def _zombie(pid: str) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


class TestBed:
    __test__ = False  # not a pytest test class

    def __init__(self, n: int, root: Path = ROOT) -> None:
        if not 1 <= n <= 50:
            raise ValueError(f"a test bed has 1 to 50 hosts, not {n}")
        self.root = root
        self.hosts = [Host(f"h{i}", i, root / f"h{i}") for i in range(1, n + 1)]
        self._lock: int | None = None
        self._sshd: list[subprocess.Popen] = []

    def __getitem__(self, name: str) -> Host:
        return next(h for h in self.hosts if h.name == name)

    # -- building and removing ---------------------------------------------------------

    def up(self) -> TestBed:
        problem = machine_problem()
        if problem:
            raise Unavailable(problem)
        self.root.parent.mkdir(parents=True, exist_ok=True)
        self._lock = os.open(f"{self.root}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock)
            self._lock = None
            raise Unavailable(f"another test bed is up on this machine (lock {self.root}.lock)") from None
        try:
            teardown()  # whatever a killed run left
            shutil.rmtree(self.root, ignore_errors=True)
            self.root.mkdir(parents=True)
            self._network()
            self._ssh()
            (self.root / "state.json").write_text(json.dumps(
                {"hosts": {h.name: h.addr for h in self.hosts}, "control": CONTROL}))
        except BaseException:
            self.down()
            raise
        return self

    def down(self) -> None:
        for p in self._sshd:
            p.kill()
            p.wait()
        self._sshd.clear()
        teardown()
        shutil.rmtree(self.root, ignore_errors=True)
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def _network(self) -> None:
        _run(["ip", "link", "add", BRIDGE, "type", "bridge"])
        _run(["ip", "addr", "add", f"{CONTROL}/24", "brd", BROADCAST, "dev", BRIDGE])
        _run(["ip", "link", "set", BRIDGE, "up"])
        for h in self.hosts:
            h.root.mkdir(parents=True, exist_ok=True)
            _run(["ip", "netns", "add", h.ns])
            _run(["ip", "link", "add", h.veth, "type", "veth", "peer", "name", f"{h.veth}p"])
            _run(["ip", "link", "set", f"{h.veth}p", "netns", h.ns])
            _run(["ip", "link", "set", h.veth, "master", BRIDGE])
            _run(["ip", "link", "set", h.veth, "up"])
            inside = ["ip", "netns", "exec", h.ns]
            _run([*inside, "ip", "link", "set", "lo", "up"])
            _run([*inside, "ip", "link", "set", f"{h.veth}p", "name", "eth0"])
            _run([*inside, "ip", "addr", "add", f"{h.addr}/24", "brd", BROADCAST, "dev", "eth0"])
            _run([*inside, "ip", "link", "set", "eth0", "up"])

    def _ssh(self) -> None:
        ssh = self.root / "ssh"
        ssh.mkdir(mode=0o700)
        _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(ssh / "host_key")])
        _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(ssh / "id_control")])
        shutil.copy(ssh / "id_control.pub", ssh / "authorized_keys")
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation dir
        for h in self.hosts:
            cfg = h.root / "sshd_config"
            cfg.write_text("\n".join([
                f"ListenAddress {h.addr}", "Port 22", f"HostKey {ssh / 'host_key'}",
                f"PidFile {h.root / 'sshd.pid'}", f"AuthorizedKeysFile {ssh / 'authorized_keys'}",
                "PermitRootLogin prohibit-password", "PasswordAuthentication no",
                "KbdInteractiveAuthentication no", "UsePAM no", "StrictModes no",
                "Subsystem sftp internal-sftp", "LogLevel ERROR", ""]))
            log = open(h.root / "sshd.log", "ab")
            self._sshd.append(subprocess.Popen(
                ["ip", "netns", "exec", h.ns, SSHD, "-D", "-e", "-f", str(cfg)],
                stdout=log, stderr=log, stdin=subprocess.DEVNULL))
            log.close()
        deadline = time.monotonic() + SSH_TIMEOUT
        for h, proc in zip(self.hosts, self._sshd, strict=True):
            while not _accepts(h.addr, 22):
                if proc.poll() is not None or time.monotonic() > deadline:
                    tail = (h.root / "sshd.log").read_text(errors="replace")[-500:]
                    raise Unavailable(f"sshd on {h.name} ({h.addr}) did not come up: {tail.strip()}")
                time.sleep(0.1)

    # -- using it --------------------------------------------------------------------------

    def argv(self, host: Host, argv: list[str]) -> list[str]:
        """`argv` run inside `host`'s network namespace (same filesystem, same user)."""
        return ["ip", "netns", "exec", host.ns, *argv]

    def cut(self, host: Host) -> None:
        """Pull `host`'s cable: its processes keep running, nothing reaches it or leaves it."""
        _run(["ip", "link", "set", host.veth, "down"])

    def reconnect(self, host: Host) -> None:
        _run(["ip", "link", "set", host.veth, "up"])

    @property
    def ssh_key(self) -> Path:
        return self.root / "ssh" / "id_control"

    def ssh_args(self) -> str:
        """Options for ssh (ansible_ssh_common_args): the bed's host keys are made anew each time."""
        return "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"


def _accepts(addr: str, port: int) -> bool:
    try:
        with socket.create_connection((addr, port), timeout=0.5):
            return True
    except OSError:
        return False
