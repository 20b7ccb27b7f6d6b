"""Callables the submission tests' workers run (their folder is on the workers' import path)."""

from __future__ import annotations

import os


def spawn_child(x: str) -> str:
    """Submit one child with the Python client, as a user's callable would (no
    options: the job and the coordinator come from the worker's environment);
    return the child's job id and the job id this call saw."""
    from weft.actors.client import Client

    with Client() as c:
        child = c.submit("weft.actors.builtins:concat", v=f"child of {x}")
    return f"{child.job} {os.environ.get('WEFT_JOB_ID')}"
