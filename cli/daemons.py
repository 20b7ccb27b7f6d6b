"""`weft storage`, `weft compute`, `weft coordinator`: run one daemon."""

from __future__ import annotations

from pathlib import Path

import typer

from weft.runtime.node import Node, NodeConfig, run_forever

from .app import app
from .common import (
    BeaconAddrOpt,
    BeaconPortOpt,
    ClusterOpt,
    DataDirOpt,
    ListenOpt,
    NoBeaconOpt,
    NodeIdOpt,
    StaticCoordOpt,
    check_endpoint,
    data_dir_option,
    fail,
)


def node_config(
    role: str,
    listen: str,
    data_dir: Path | None,
    node_id: str | None,
    no_beacon: bool,
    beacon_addr: str,
    beacon_port: int,
    cluster: str,
    coordinator: str | None,
) -> NodeConfig:
    check_endpoint(listen, "--listen endpoint")
    if coordinator:
        check_endpoint(coordinator, "--coordinator endpoint")
    if not 0 < beacon_port < 65536:
        fail(f"invalid --beacon-port {beacon_port}: expected 1..65535")
    return NodeConfig(
        listen=listen,
        node_id=node_id,
        data_dir=data_dir_option(data_dir, role),
        beacon=not no_beacon,
        beacon_addr=beacon_addr,
        beacon_port=beacon_port,
        cluster=cluster,
        coordinator=coordinator,
    )


def run_daemon(node: Node) -> None:
    run_forever(node)


@app.command()
def storage(
    listen: str = ListenOpt,
    data_dir: Path = DataDirOpt,
    node_id: str = NodeIdOpt,
    no_beacon: bool = NoBeaconOpt,
    beacon_addr: str = BeaconAddrOpt,
    beacon_port: int = BeaconPortOpt,
    cluster: str = ClusterOpt,
    coordinator: str = StaticCoordOpt,
    page_cache_mb: int = typer.Option(
        512, "--page-cache-mb",
        help="Newest object content (MiB) left in the OS page cache for readers; older content is dropped from it."),
) -> None:
    """Run a storage node: holds job outputs as named objects."""
    from weft.actors.storage.node import StorageNode

    if page_cache_mb < 0:
        fail(f"invalid --page-cache-mb {page_cache_mb}: expected MiB >= 0")
    cfg = node_config("storage", listen, data_dir, node_id, no_beacon, beacon_addr, beacon_port, cluster, coordinator)
    run_daemon(StorageNode(cfg, page_cache=page_cache_mb << 20))


@app.command()
def compute(
    listen: str = ListenOpt,
    data_dir: Path = DataDirOpt,
    node_id: str = NodeIdOpt,
    slots: int = typer.Option(None, "--slots", help="Tasks run at once (default: number of cores)."),
    no_beacon: bool = NoBeaconOpt,
    beacon_addr: str = BeaconAddrOpt,
    beacon_port: int = BeaconPortOpt,
    cluster: str = ClusterOpt,
    coordinator: str = StaticCoordOpt,
) -> None:
    """Run a compute node: runs tasks, reading and writing storage."""
    from weft.actors.compute.node import ComputeNode

    if slots is not None and slots < 1:
        fail(f"invalid --slots {slots}: expected at least 1")
    cfg = node_config("compute", listen, data_dir, node_id, no_beacon, beacon_addr, beacon_port, cluster, coordinator)
    run_daemon(ComputeNode(cfg, slots=slots))


@app.command()
def coordinator(
    listen: str = typer.Option("tcp://127.0.0.1:5570", "--listen", help="Endpoint to serve on."),
    data_dir: Path = DataDirOpt,
    node_id: str = NodeIdOpt,
    no_beacon: bool = NoBeaconOpt,
    beacon_addr: str = BeaconAddrOpt,
    beacon_port: int = BeaconPortOpt,
    cluster: str = ClusterOpt,
    heartbeat: float = typer.Option(5.0, "--heartbeat-timeout", help="Seconds of silence before a node is lost."),
    replicas: int = typer.Option(1, "--replicas", help="Storage nodes each output is written to."),
    storage_grace: float = typer.Option(30.0, "--storage-grace", help="Seconds to wait for a lost storage node before remaking its objects."),
    prefetch: int = typer.Option(8, "--prefetch", help="Tasks per slot sent ahead to a node when the queue is deep (0: none)."),
    follow_ahead: int = typer.Option(
        2, "--follow-ahead",
        help="Dependents per slot started ahead on the node making their last input (0: none)."),
) -> None:
    """Run the coordinator: finds nodes, schedules jobs, follows delegations."""
    from weft.actors.coordinator.node import CoordinatorNode

    if heartbeat <= 0.5:
        fail(f"invalid --heartbeat-timeout {heartbeat}: expected more than 0.5 seconds")
    if replicas < 1:
        fail(f"invalid --replicas {replicas}: expected at least 1")
    if prefetch < 0:
        fail(f"invalid --prefetch {prefetch}: expected 0 or more")
    if follow_ahead < 0:
        fail(f"invalid --follow-ahead {follow_ahead}: expected 0 or more")
    if storage_grace < 0:
        fail(f"invalid --storage-grace {storage_grace}: expected seconds >= 0")
    cfg = node_config("coordinator", listen, data_dir, node_id, no_beacon, beacon_addr, beacon_port, cluster, None)
    run_daemon(CoordinatorNode(
        cfg, heartbeat_timeout=heartbeat,
        replicas=replicas, storage_grace=storage_grace, prefetch=prefetch,
        follow_ahead=follow_ahead,
    ))
