"""Submission control (unit files, child jobs, try-submit, events, windows)
on real local clusters: one small cluster per test module."""

from __future__ import annotations

from pathlib import Path

from cluster.conftest import cluster_fixtures

# Workers import this folder's callables (callable_children.py).
cluster, client, weft = cluster_fixtures("cluster", compute=1, storage=1, slots=2,
                                         import_path=[str(Path(__file__).parent)])
