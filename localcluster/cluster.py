"""A whole local cluster as separate processes: `weft up`, the tests and the bench.

The coordinator starts first on its endpoint; storage and compute nodes are
told that endpoint (static discovery by `hello` posts, no beacons), so several
clusters on one machine never find each other by accident.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

from weft.runtime.settings import SettingError, from_args, to_args

from .zygote_client import ClusterError, Zygote, _Forked, zygote_usable

_READY = re.compile(r"^weft (\w+) (\S+) listening on (\S+)")


def _launch_argv(role: str, args: list[str]) -> list[str]:
    """`weft <role> ARGS` as a `python -m weft.localcluster.launch` call when it can be.

    Flags are read by the settings table (weft.runtime.settings), so every
    daemon setting reaches the lean launcher; anything else (a typo, a flag
    of another role) goes to the full CLI, which says what is wrong.
    """
    try:
        values = from_args(role, args[1:])
    except SettingError:
        return ["-m", "weft", *args]
    return ["-m", "weft.localcluster.launch", json.dumps({"role": role, "values": values})]


def _free_port(endpoint: str) -> int:
    host = endpoint.removeprefix("tcp://").rsplit(":", 1)[0] or "127.0.0.1"
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class Proc:
    """One daemon process and the endpoint it printed when ready."""

    def __init__(self, role: str, args: list[str], log_path: Path, env: dict[str, str],
                 zygote: Zygote | None = None) -> None:
        self.role = role
        self.args = args
        self.args_node_id = args[args.index("--node-id") + 1] if "--node-id" in args[:-1] else None
        self.log_path = log_path
        self.endpoint: str | None = None
        self.node_id: str | None = None
        self._log: IO[bytes] = open(log_path, "ab")
        argv = _launch_argv(role, args)
        if zygote is not None and argv[:2] == ["-m", "weft.localcluster.launch"] and not zygote.gone:
            self.popen: subprocess.Popen | _Forked = zygote.spawn(argv[2], self._log.fileno())
            return
        self.popen = subprocess.Popen(
            [sys.executable, *argv],
            stdout=subprocess.PIPE,
            stderr=self._log,
            stdin=subprocess.DEVNULL,
            env=env,
            # Its own process group: Ctrl-C in a terminal reaches `weft up`,
            # which stops the daemons in order.
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def wait_ready(self, timeout: float) -> str:
        result: list[str] = []

        def read() -> None:
            for raw in self.popen.stdout:
                m = _READY.match(raw.decode(errors="replace"))
                if m:
                    self.node_id, result[:] = m.group(2), [m.group(3)]
                    break

        t = threading.Thread(target=read, daemon=True)
        t.start()
        t.join(timeout)
        if not result:
            rc = self.popen.poll()
            if rc is None and not t.is_alive():
                # Its stdout closed: it is exiting, not slow. Say why now
                # rather than after the whole timeout.
                try:
                    rc = self.popen.wait(5)
                except subprocess.TimeoutExpired:
                    rc = None
            # Only from a daemon that exited: the log is appended to across
            # restarts, and a slow one's last line may be an earlier run's.
            reason = _error_line(self.log_path) if rc is not None else None
            if reason:
                who = f"{self.role} {self.args_node_id}" if self.args_node_id else self.role
                raise ClusterError(f"{who}: {reason}")
            tail = _tail(self.log_path)
            if rc is not None:
                raise ClusterError(f"{self.role} exited with code {rc} before it was ready{tail}")
            raise ClusterError(f"{self.role} was not ready within {timeout:g}s{tail}")
        self.endpoint = result[0]
        # Keep draining stdout so the daemon never blocks on a full pipe.
        threading.Thread(target=lambda: [None for _ in self.popen.stdout], daemon=True).start()
        return self.endpoint

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            try:
                os.kill(self.popen.pid, sig)
            except ProcessLookupError:
                pass

    def stop(self, grace: float = 10.0) -> int | None:
        self.signal(signal.SIGTERM)
        try:
            return self.popen.wait(grace)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            return self.popen.wait(5)
        finally:
            self._log.close()


def _import_client() -> None:
    import weft.actors.client  # noqa: F401


def _error_line(path: Path) -> str | None:
    """The one-line error a daemon printed when it refused to start (`weft: error: ...`), if any."""
    try:
        lines = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return None
    if lines and lines[-1].startswith("weft: error: "):
        return lines[-1].removeprefix("weft: error: ")
    return None


def _tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return (": " + " | ".join(text[-lines:])) if text else ""


class LocalCluster:
    """coordinator + `storage` storage nodes + `compute` compute nodes."""

    def __init__(
        self,
        data_dir: Path,
        *,
        compute: int = 2,
        storage: int = 2,
        slots: int | None = None,
        listen: str = "tcp://127.0.0.1:0",
        log_level: str | None = None,
        coordinator_args: list[str] | None = None,
        compute_args: list[str] | None = None,
        storage_args: list[str] | None = None,
        key: Path | None = None,
        fork_server: bool | None = None,
        tag: str | None = None,
        import_path: list[str] | None = None,
        metrics: str | None = None,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        # Appended to node ids: two clusters on one machine never both have
        # a "storage-0" that one coordinator could take for its own.
        self.tag = tag
        self.n_compute = compute
        self.n_storage = storage
        self.slots = slots
        self.listen = listen
        self.coordinator_args = coordinator_args or []
        self.compute_args = compute_args or []
        self.storage_args = storage_args or []
        # HOST:PORT of the coordinator's Prometheus endpoint; storage nodes,
        # then compute nodes, serve theirs on the ports that follow.
        self.metrics = metrics
        self.key = key  # the client key on a secure cluster (its daemons get theirs by flags)
        self.env = dict(os.environ)
        # The daemons import this checkout even when it is not installed.
        # `import_path` first: where the user's callables live (`weft up`
        # passes the directory it was started from).
        root = str(Path(__file__).resolve().parent.parent)
        paths = [*(str(Path(p).resolve()) for p in import_path or []), root]
        if self.env.get("PYTHONPATH"):
            paths.append(self.env["PYTHONPATH"])
        self.env["PYTHONPATH"] = os.pathsep.join(paths)
        # Daemons keep compiled bytecode like any Python program: with it off
        # (some sandboxes set this), each one recompiles weft's modules at
        # every start (~50 ms of CPU apiece, measured).
        self.env.pop("PYTHONDONTWRITEBYTECODE", None)
        if log_level:
            self.env["WEFT_LOG_LEVEL"] = log_level
        # Daemons fork from one warm interpreter (weft.localcluster.zygote) where the
        # platform allows; WEFT_FORK_SERVER=0 starts each one on its own.
        if fork_server is None:
            fork_server = os.environ.get("WEFT_FORK_SERVER", "1") != "0"
        self.fork_server = fork_server and zygote_usable()
        self.zygote: Zygote | None = None
        self.coordinator: Proc | None = None
        self.storages: list[Proc] = []
        self.computes: list[Proc] = []
        self.endpoint: str | None = None

    def node_name(self, role: str, i: int) -> str:
        return f"{role}-{i}-{self.tag}" if self.tag else f"{role}-{i}"

    @property
    def procs(self) -> list[Proc]:
        return [p for p in [self.coordinator, *self.storages, *self.computes] if p is not None]

    def _logs(self) -> Path:
        d = self.data_dir / "logs"
        d.mkdir(parents=True, exist_ok=True)
        return d

    def _zygote(self) -> Zygote | None:
        if self.fork_server and (self.zygote is None or self.zygote.gone):
            self.zygote = Zygote(self.env, self._logs() / "zygote.log")
        return self.zygote

    def data_dirs(self) -> list[Path]:
        """The data directory of every daemon this cluster starts."""
        return [self.data_dir / "coordinator", *(self.data_dir / f"storage-{i}" for i in range(self.n_storage)),
                *(self.data_dir / f"compute-{i}" for i in range(self.n_compute))]

    def metrics_addr(self, role: str, i: int = 0) -> str | None:
        """Where a daemon serves its metrics (None: not asked for)."""
        if not self.metrics:
            return None
        from weft.runtime.httpaddr import parse_addr, show

        host, port = parse_addr(self.metrics)
        offset = {"coordinator": 0, "storage": 1 + i, "compute": 1 + self.n_storage + i}[role]
        return show(host, port + offset)

    def spawn_coordinator(self) -> Proc:
        listen = self.endpoint or self.listen
        if listen.endswith(":0"):
            # Choose the port now, so the nodes can be started alongside.
            listen = f"{listen[:-2]}:{_free_port(listen)}"
        self.endpoint = listen
        args = ["coordinator", *to_args("coordinator", {
            "listen": listen, "data_dir": self.data_dir / "coordinator", "no_beacon": True,
            "metrics": self.metrics_addr("coordinator")}), *self.coordinator_args]
        self.coordinator = Proc("coordinator", args, self._logs() / "coordinator.log", self.env, self._zygote())
        return self.coordinator

    def start_coordinator(self, timeout: float = 20.0) -> str:
        self.spawn_coordinator().wait_ready(timeout)
        return self.endpoint

    def add_storage(self, timeout: float = 20.0, index: int | None = None, *, wait: bool = True) -> Proc:
        i = len(self.storages) if index is None else index
        args = ["storage", *to_args("storage", {
            "data_dir": self.data_dir / f"storage-{i}", "node_id": self.node_name("storage", i),
            "no_beacon": True, "coordinator": self.endpoint, "metrics": self.metrics_addr("storage", i)}),
            *self.storage_args]
        p = Proc("storage", args, self._logs() / f"storage-{i}.log", self.env, self._zygote())
        if wait:
            p.wait_ready(timeout)
        if index is None:
            self.storages.append(p)
        else:
            self.storages[index] = p
        return p

    def add_compute(
        self, timeout: float = 20.0, index: int | None = None, slots: int | None = None, *, wait: bool = True
    ) -> Proc:
        i = len(self.computes) if index is None else index
        args = ["compute", *to_args("compute", {
            "data_dir": self.data_dir / f"compute-{i}", "node_id": self.node_name("compute", i),
            "no_beacon": True, "coordinator": self.endpoint, "slots": slots or self.slots,
            "metrics": self.metrics_addr("compute", i)}), *self.compute_args]
        p = Proc("compute", args, self._logs() / f"compute-{i}.log", self.env, self._zygote())
        if wait:
            p.wait_ready(timeout)
        if index is None:
            self.computes.append(p)
        else:
            self.computes[index] = p
        return p

    def start(self, timeout: float = 30.0) -> str:
        try:
            # Every process at once: each spends most of its start importing.
            coordinator = self.spawn_coordinator()
            # The client this waits with, imported here (trio and pyzmq, ~0.1 s of
            # CPU in a fresh launcher) while the zygote loads its image on the other core.
            preload = threading.Thread(target=_import_client, name="weft-import-client", daemon=True)
            preload.start()
            nodes = [self.add_storage(wait=False) for _ in range(self.n_storage)]
            nodes += [self.add_compute(wait=False) for _ in range(self.n_compute)]
            coordinator.wait_ready(timeout)
            preload.join()
            # Connected while the nodes finish starting, not after.
            with self._client(timeout) as c:
                for p in nodes:
                    p.wait_ready(timeout)
                self._wait_inventory(c, self.n_compute, self.n_storage, time.monotonic() + timeout, timeout)
        except BaseException:
            self.stop()
            raise
        return self.endpoint

    def _client(self, timeout: float) -> Any:
        from weft.actors.client import Client

        return Client(self.endpoint, timeout=2.0, retry_for=timeout, key=self.key)

    def wait_nodes(self, compute: int, storage: int, timeout: float = 30.0) -> None:
        """Until the coordinator has taken the inventory of that many nodes."""
        deadline = time.monotonic() + timeout
        with self._client(timeout) as c:
            self._wait_inventory(c, compute, storage, deadline, timeout)

    @staticmethod
    def _wait_inventory(c: Any, compute: int, storage: int, deadline: float, timeout: float) -> None:
        while True:
            nodes = c.nodes()
            ready = [n for n in nodes if n.get("ready")]
            if (sum(n["role"] == "compute" for n in ready) >= compute
                    and sum(n["role"] == "storage" for n in ready) >= storage):
                return
            if time.monotonic() > deadline:
                raise ClusterError(
                    f"coordinator saw {len(ready)} ready nodes of {compute + storage} within {timeout:g}s"
                )
            # Short: the last inventory is usually a few ms away, and each
            # `nodes` costs the coordinator little.
            time.sleep(0.003)

    def stop(self, grace: float = 10.0) -> None:
        # Workers first, so nothing reports to a coordinator that is gone.
        for p in [*self.computes, *self.storages]:
            p.signal(signal.SIGTERM)
        for p in [*self.computes, *self.storages]:
            p.stop(grace)
        if self.coordinator is not None:
            self.coordinator.stop(grace)
        if self.zygote is not None:
            self.zygote.close()
            self.zygote = None

    def __enter__(self) -> LocalCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
