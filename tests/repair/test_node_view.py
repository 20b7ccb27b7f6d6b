"""What `weft nodes` shows of repair on each storage node, in-process (the
coordinator's state, no sockets): the under-replicated objects it holds."""

from __future__ import annotations

from coordinator.harness import Cluster


def test_a_storage_nodes_view_counts_the_under_replicated_objects_it_holds() -> None:
    c = Cluster(storages=3, replicas=2)
    for name, nodes in (("a/result", ("storage-0", "storage-1")), ("b/result", ("storage-0", "storage-2")),
                        ("c/result", ("storage-1", "storage-2")), ("d/result", ("storage-0", "storage-2"))):
        for node in nodes:
            c.object_finished(name, node)
    repair = c.state.repair
    assert [repair.node_view(n)["under_replicated"] for n in ("storage-0", "storage-1", "storage-2")] == [0, 0, 0]
    c.take(c.state.node_lost("storage", "storage-2"))
    # b and d are left only on storage-0, c only on storage-1; a has its two copies.
    assert repair.node_view("storage-0")["under_replicated"] == 2
    assert repair.node_view("storage-1")["under_replicated"] == 1
    assert repair.stats()["under_replicated"] == 3
