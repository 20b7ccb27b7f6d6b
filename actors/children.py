"""Jobs submitted from inside a running job become its children.

The compute runner gives every command WEFT_JOB_ID (and, with a static
coordinator, WEFT_COORDINATOR), so `weft submit` and `Client()` inside a job
need no options: each spec is marked `spawned_by` the running job, and the
coordinator names it under its parent and checks its root's spawn limit
(actors/coordinator/spawn.py).
"""

from __future__ import annotations

import os

from .model import JobSpec

ENV_JOB = "WEFT_JOB_ID"


def current_job() -> str | None:
    """The job this process runs as part of, if any."""
    return os.environ.get(ENV_JOB) or None


def adopt(specs: list[JobSpec]) -> list[JobSpec]:
    """Mark specs as children of the running job (those not marked already)."""
    parent = current_job()
    if parent is not None:
        for spec in specs:
            if spec.spawned_by is None:
                spec.spawned_by = parent
    return specs
