"""Shell completion of job ids, job names and node ids from the coordinator (`weft --install-completion`).

Every argument and option whose metavar is JOB completes from the newest
jobs the coordinator knows, NODE and NODE_ID from its nodes; with no
coordinator answering within a moment, nothing is offered (a shell must
never hang on a tab).
"""

from __future__ import annotations

import os
from typing import Any

# Jobs looked at per completion (the newest), and how long the coordinator may take.
NEWEST = 500
TIMEOUT = 1.0


def _ask(ctx: Any, what: Any) -> Any:
    """`what(client)` against the coordinator the command line names (or the environment); None if none answers."""
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
            return what(client)
    except (BusError, OSError, ValueError):
        return None


def job_ids(ctx: Any, param: Any, incomplete: str) -> list[str]:
    out: dict[str, None] = {}
    for j in reversed(_ask(ctx, lambda c: c.jobs(limit=NEWEST)) or []):  # the newest first
        for word in (j["job"], j.get("name")):
            if word and word.startswith(incomplete):
                out[word] = None
    return list(out)


def node_ids(ctx: Any, param: Any, incomplete: str) -> list[str]:
    return sorted(n["node"] for n in _ask(ctx, lambda c: c.nodes()) or [] if n["node"].startswith(incomplete))


def attach(command: Any) -> None:
    """Complete job ids for every JOB parameter of `command` and its subcommands, node ids for NODE."""
    for param in command.params:
        metavar = (param.metavar or "").removesuffix("...").strip("[]")
        if metavar in ("JOB", "JOB[/OUTPUT]") and command.name != "create":  # `weft task create` takes built-ins
            param._custom_shell_complete = job_ids
        elif metavar in ("NODE", "NODE_ID"):
            param._custom_shell_complete = node_ids
    for sub in getattr(command, "commands", {}).values():
        attach(sub)
