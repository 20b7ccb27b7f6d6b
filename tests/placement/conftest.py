"""The placement tests run on real local clusters (cluster tests' helpers)."""

from __future__ import annotations

from cluster.conftest import Weft, cluster_fixtures, running_cluster  # noqa: F401  (helpers)
