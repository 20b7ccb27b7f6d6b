"""`weft up`: a whole local cluster in one command."""

from __future__ import annotations

import os
import secrets
import shlex
import signal
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from weft.runtime import configfile
from weft.runtime.settings import DEFAULT_COORDINATOR, ROLES, SettingError, by_flag, to_args

from .app import app
from .common import data_dir_option, emit_json, fail

if TYPE_CHECKING:  # the launcher is imported by `weft up` itself, not by every `weft`
    from weft.localcluster.cluster import LocalCluster, Proc

DEMO_FLOW = {
    "jobs": {
        "text": {"command": ["sh", "-c", "echo 'the quick brown fox jumps over the lazy dog'"]},
        "upper": {"command": ["sh", "-c", "tr a-z A-Z < $WEFT_INPUTS/text"], "inputs": {"text": "@text"}},
        "words": {"command": ["sh", "-c", "wc -w < $WEFT_INPUTS/text | tr -d ' '"], "inputs": {"text": "@text"}},
        "report": {"call": "weft.actors.builtins:concat", "inputs": {"a": "@upper", "b": "@words"}},
    }
}


def run_demo(endpoint: str, key: Path | None = None) -> bytes:
    """Submit the demo diamond (text -> upper, words -> report) and return its result."""
    from weft.actors.client import Client, JobFailed
    from weft.actors.flow import parse_flow

    flow = parse_flow(DEMO_FLOW, "demo")
    with Client(endpoint, timeout=5.0, key=key) as c:
        futures = c.submit_specs([s for _, s in flow])
        for (name, _), f in zip(flow, futures, strict=True):
            typer.echo(f"submitted {name:7} {f.job}", err=True)
        try:
            return futures[-1].result(timeout=60)
        except JobFailed as e:
            fail(f"demo failed: {e}", code=1)


def restart_command(p: Proc) -> str:
    """The command line that brings a daemon back as it was (same data dir and id)."""
    return "weft " + shlex.join(p.args)


def watch(cluster: LocalCluster) -> None:
    """Report daemons that die and keep the rest running: every role survives
    the others failing, and the user may restart the dead one by hand (with
    the printed command) or not at all."""
    reported: set[int] = set()
    while True:
        time.sleep(0.5)
        for p in cluster.procs:
            if p.pid in reported or p.alive():
                continue
            reported.add(p.pid)
            typer.echo(f"warning: {p.role} {p.node_id} (pid {p.pid}) exited with code {p.popen.returncode} "
                       f"(log: {p.log_path}); restart it with:\n  {restart_command(p)}", err=True)


def cluster_tag(data: Path) -> str:
    """The cluster's random tag, kept in its data directory: node ids stay the same across restarts."""
    path = data / "cluster-tag"
    try:
        tag = path.read_text().strip()
    except FileNotFoundError:
        tag = ""
    if not (tag.isalnum() and len(tag) <= 16):
        tag = secrets.token_hex(2)
        path.write_text(tag + "\n")
    return tag


def check_listen(endpoint: str) -> None:
    """Fail at once, naming it, if the coordinator's TCP endpoint cannot be bound."""
    host, _, port = endpoint.removeprefix("tcp://").rpartition(":")
    if not endpoint.startswith("tcp://") or not port.isdigit() or port == "0":
        return
    host = "0.0.0.0" if host in ("*", "") else host
    with socket.socket() as s:
        # As ZeroMQ binds: a port in TIME_WAIT is usable.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, int(port)))
        except OSError as e:
            fail(f"cannot listen on {endpoint}: {e.strerror or e}")


def check_http_options(metrics: str | None, http: str | None, nodes: int) -> None:
    """--metrics and --http as the daemons would check them, and room for the metrics ports that follow."""
    from weft.runtime.httpaddr import parse_addr

    try:
        if metrics is not None:
            by_flag("storage")["--metrics"].validate(metrics)
        if http is not None:
            by_flag("coordinator")["--http"].validate(http)
    except SettingError as e:
        fail(str(e))
    if metrics is not None:
        port = parse_addr(metrics)[1]
        if port == 0 or port + nodes > 65535:
            fail(f"invalid --metrics {metrics!r}: expected a port from 1 to {65535 - nodes} (the other daemons "
                 "use the ones that follow)")


def _metrics_of(cluster: LocalCluster, p: Proc) -> str | None:
    group = {"coordinator": [cluster.coordinator], "storage": cluster.storages, "compute": cluster.computes}[p.role]
    addr = cluster.metrics_addr(p.role, group.index(p))
    return f"http://{addr}/metrics" if addr else None


def lock_cluster(cluster: LocalCluster) -> None:
    """Hold the cluster's data directory, and refuse if any daemon's is in use."""
    from weft.runtime import datadir

    try:
        datadir.lock(cluster.data_dir)
        for d in cluster.data_dirs():
            datadir.check_free(d)
    except datadir.DataDirError as e:
        fail(str(e))


# Where and as what `weft up` starts each daemon is its own to say.
_PLACED_BY_UP = ("listen", "advertise", "data_dir", "node_id", "no_beacon", "coordinator", "metrics")


def daemon_args(config: Path | None) -> dict[str, dict]:
    """Per role, the settings the environment (WEFT_<ROLE>_<NAME>) and configuration file give."""
    try:
        cfg = configfile.load_found(config)
        values = {role: configfile.given(role, cfg) for role in ROLES}
    except SettingError as e:
        fail(str(e))
    for v in values.values():
        for name in _PLACED_BY_UP:
            v.pop(name, None)
    return values


@app.command()
def up(
    ctx: typer.Context,
    compute: int = typer.Option(2, "--compute", metavar="N", help="Compute nodes to start."),
    storage: int = typer.Option(2, "--storage", metavar="N", help="Storage nodes to start."),
    slots: int = typer.Option(None, "--cpus", "--slots", metavar="N", help="CPUs each compute node offers (default: cores)."),
    memory: str = typer.Option(None, "--memory", metavar="SIZE", help="Memory each compute node offers, e.g. 4G (default: the machine's or its cgroup limit)."),
    data_dir: Path = typer.Option(None, "--data-dir", metavar="DIR",
                                  help="Where the cluster keeps its state (default .weft); locked while it runs."),
    listen: str = typer.Option(DEFAULT_COORDINATOR, "--listen", metavar="ENDPOINT", help="Coordinator endpoint."),
    replicas: int = typer.Option(None, "--replicas", metavar="N",
                                 help="Storage nodes each output is written to (default 1)."),
    demo: bool = typer.Option(False, "--demo", help="Run a demo workflow, print its result, stop."),
    as_json: bool = typer.Option(False, "--json", help="Print the endpoints and pids as one line of JSON once ready."),
    secure: bool = typer.Option(False, "--secure", help="CurveZMQ on every connection: keys made (once) under "
                                "DATA_DIR/keys; clients use DATA_DIR/keys/admin.secret (--key or WEFT_KEY)."),
    metrics: str = typer.Option(None, "--metrics", metavar="ADDR",
                                help="Prometheus metrics: the coordinator's at http://ADDR/metrics (HOST:PORT), "
                                     "storage then compute nodes' on the ports that follow (listed by --json)."),
    http: str = typer.Option(None, "--http", metavar="ADDR",
                             help="Serve the web dashboard from the coordinator at http://ADDR (HOST:PORT, "
                                  "e.g. 127.0.0.1:8570)."),
    http_tokens: Path = typer.Option(None, "--http-tokens", metavar="FILE",
                                     help="Dashboard tokens (weft keys token): needed for --http beyond loopback."),
    config: Path = typer.Option(None, "--config", metavar="FILE",
                                help="Configuration file for the daemons (default $WEFT_CONFIG, else "
                                     "/etc/weft/weft.toml if present); the flags above override it."),
) -> None:
    """Start a coordinator, compute and storage nodes as local processes; Ctrl-C stops them."""
    from weft.localcluster.cluster import ClusterError, LocalCluster

    if compute < 0 or storage < 1:
        fail("need --compute >= 0 and --storage >= 1")
    role_args = daemon_args(config)
    if replicas is None:
        replicas = int(role_args["coordinator"].pop("replicas", 1))
    if slots is None:
        slots = role_args["compute"].pop("slots", None)
    # The daemons' own checks (weft.runtime.settings), so both say the same.
    try:
        by_flag("compute")["--slots"].validate(slots)
        by_flag("compute")["--memory"].validate(memory)
        by_flag("coordinator")["--listen"].validate(listen)
    except SettingError as e:
        fail(str(e))
    check_http_options(metrics, http, storage + compute)
    if http:
        role_args["coordinator"]["http"] = http
    if http_tokens:
        role_args["coordinator"]["http_tokens"] = http_tokens.resolve()
    if http:
        from weft.runtime.daemon import check_http

        try:
            c = role_args["coordinator"]
            check_http(http, c.get("http_tokens"), c.get("http_cert"), c.get("http_key"), bool(c.get("insecure")))
        except SettingError as e:
            fail(str(e))
    if not 1 <= replicas <= storage:
        fail(f"invalid --replicas {replicas}: expected 1..{storage} (the number of storage nodes)")
    # Everything that can be refused is refused before any daemon starts.
    data = data_dir_option(data_dir or Path(os.environ.get("WEFT_DATA_DIR", ".weft")), "cluster")
    check_listen(listen)
    # The root --log-level reaches the daemons (WEFT_LOG_LEVEL in their environment).
    log_level = (ctx.parent.params.get("log_level") if ctx.parent else None) or None
    role_args["coordinator"]["replicas"] = replicas
    role_args["compute"].pop("slots", None)
    admin_key = None
    if secure:
        from weft.bus.curve import KeyFileError

        from .keys import make_cluster_keys

        try:
            admin_key = make_cluster_keys(data / "keys")
        except KeyFileError as e:
            fail(str(e))
        for role, values in role_args.items():
            own = "coordinator" if role == "coordinator" else "node"
            values.update(security="curve", keys=data / "keys", key=data / "keys" / f"{own}.secret")
    cluster = LocalCluster(data, compute=compute, storage=storage, slots=slots, listen=listen, key=admin_key,
                           coordinator_args=to_args("coordinator", role_args["coordinator"]),
                           compute_args=to_args("compute", role_args["compute"]) + (["--memory", memory] if memory else []),
                           storage_args=to_args("storage", role_args["storage"]), log_level=log_level,
                           tag=cluster_tag(data), import_path=[os.getcwd()], metrics=metrics)
    lock_cluster(cluster)
    started = time.monotonic()
    # SIGTERM stops the cluster the way Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        try:
            endpoint = cluster.start()
        except ClusterError as e:
            fail(f"cluster did not start: {e}")
        if as_json:
            emit_json({
                "coordinator": endpoint,
                "compute": [p.endpoint for p in cluster.computes],
                "storage": [p.endpoint for p in cluster.storages],
                "data_dir": str(data),
                "pids": {p.node_id: p.pid for p in cluster.procs},
                "key": str(admin_key) if admin_key else None,
                "metrics": {p.node_id: _metrics_of(cluster, p) for p in cluster.procs} if metrics else None,
                "http": f"http://{http}/" if http else None,
            }, one_line=True)
        else:
            typer.echo(f"weft cluster up in {time.monotonic() - started:.1f}s: coordinator {endpoint}, "
                       f"{compute} compute, {storage} storage (state and logs in {data})")
            if http:
                typer.echo(f"dashboard: http://{http}/")
            if metrics:
                typer.echo(f"metrics: http://{metrics}/metrics (coordinator; the other daemons on the ports "
                           "that follow: see --json)")
            if admin_key:
                typer.echo(f"secure: clients need the key, e.g. export WEFT_KEY={admin_key}")
        if demo:
            result = run_demo(endpoint, admin_key)
            typer.echo("demo result:")
            typer.echo(result.decode(errors="replace").rstrip())
            return
        typer.echo("press Ctrl-C to stop", err=True)
        watch(cluster)
    except KeyboardInterrupt:
        typer.echo("stopping", err=True)
    finally:
        cluster.stop()
