"""The job-control tests run on the cluster tests' real local clusters."""

from __future__ import annotations

from cluster.conftest import client, cluster, make_cluster, weft  # noqa: F401  (fixtures)
