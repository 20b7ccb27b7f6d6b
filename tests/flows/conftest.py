"""The flow tests that need a cluster run on the cluster tests' real local clusters."""

from __future__ import annotations

from cluster.conftest import client, cluster, weft  # noqa: F401  (fixtures)
