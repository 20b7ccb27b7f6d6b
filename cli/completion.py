"""Shell completion of job ids and names from the coordinator (`weft --install-completion`).

Every argument and option whose metavar is JOB completes from the newest
jobs the coordinator knows; with no coordinator answering within a moment,
nothing is offered (a shell must never hang on a tab).
"""

from __future__ import annotations

import os
from typing import Any

# Jobs looked at per completion (the newest), and how long the coordinator may take.
NEWEST = 500
TIMEOUT = 1.0


def job_ids(ctx: Any, param: Any, incomplete: str) -> list[str]:
    from weft.actors.client import Client
    from weft.bus.errors import BusError

    endpoint = None
    c = ctx
    while c is not None and endpoint is None:
        endpoint = (c.params or {}).get("coordinator")
        c = c.parent
    endpoint = endpoint or os.environ.get("WEFT_COORDINATOR") or "tcp://127.0.0.1:5570"
    try:
        with Client(endpoint, timeout=TIMEOUT, retry_for=0.0) as client:
            jobs = client.jobs(limit=NEWEST)
    except (BusError, OSError, ValueError):
        return []
    out: dict[str, None] = {}
    for j in reversed(jobs):  # the newest first
        for word in (j["job"], j.get("name")):
            if word and word.startswith(incomplete):
                out[word] = None
    return list(out)


def attach(command: Any) -> None:
    """Complete job ids for every JOB parameter of `command` and its subcommands."""
    for param in command.params:
        metavar = (param.metavar or "").removesuffix("...").strip("[]")
        if metavar in ("JOB", "JOB[/OUTPUT]") and command.name != "create":  # `weft task create` takes built-ins
            param._custom_shell_complete = job_ids
    for sub in getattr(command, "commands", {}).values():
        attach(sub)
