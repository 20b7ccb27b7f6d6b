"""What the op modules (control_ops, drain, follow, gc_ops, keys_ops,
submission_ops, submit_ops, usage, prune) use of the coordinator node, as a Protocol.

node.py imports each op module to register its handlers; were an op module
to name node.CoordinatorNode, even for type hints only, the two would import
each other. They name this instead. Types are loose on purpose: it is a list
of what the ops touch, not a second definition of the node.
"""

from __future__ import annotations

from typing import Any, Protocol


class CoordinatorNode(Protocol):
    node_id: str
    epoch: int
    server: Any  # bus.rpc.Server
    peers: Any  # bus.peers.PeerPool, once running
    events: Any  # bus.events.EventQueue
    state: Any  # state.CoordinatorState
    graph: Any  # graph.Graph
    journal: Any  # journal.Journal
    commits: Any  # actors.groupcommit.GroupCommit
    queue_bound: Any
    gc_lock: Any  # trio.Lock
    manifests: dict[str, tuple[str, ...]]  # prune.py
    keep: Any
    liveness: Any  # bus.heartbeat.Liveness
    ended: Any
    _wake: Any  # trio.Event

    def _job(self, jid: str) -> Any: ...

    def _run(self, effects: list[Any]) -> None: ...

    def change_keys(self, change: Any) -> int: ...
