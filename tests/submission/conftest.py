"""Submission control (unit files, child jobs, try-submit, events, windows)
on real local clusters: one small cluster per test module."""

from __future__ import annotations

from cluster.conftest import cluster_fixtures

cluster, client, weft = cluster_fixtures("cluster", compute=1, storage=1, slots=2)
