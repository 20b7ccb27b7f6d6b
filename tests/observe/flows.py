"""The flow the dashboard tests run: one success, a failure, a dependent failing with it, a slow logger."""

from __future__ import annotations

from weft.actors.client import Client
from weft.actors.flow import parse_flow

# `slow` prints a line every 0.3 s for LINES lines: its log grows while a test watches.
LINES = 40
FLOW = {
    "jobs": {
        "text": {"command": ["sh", "-c", "echo the text"]},
        "bad": {"command": ["sh", "-c", "echo oops >&2; exit 2"], "inputs": {"t": "@text"}},
        "after_bad": {"command": ["sh", "-c", "cat $WEFT_INPUTS/b"], "inputs": {"b": "@bad"}},
        "slow": {"command": ["sh", "-c", f"for i in $(seq {LINES}); do echo line $i; "
                                 f"echo \"$((i * 100 / {LINES})) line $i\" >> $WEFT_PROGRESS; sleep 0.3; done"],
                 "inputs": {"t": "@text"}},
    }
}


def submit_flow(client: Client, name: str) -> dict[str, str]:
    """Submit FLOW as flow `name`, every job in group NAME-all; {job name: job id}."""
    jobs = {k: {**v, "groups": [f"{name}-all"]} for k, v in FLOW["jobs"].items()}
    flow = parse_flow({"jobs": jobs}, name)
    futures = client.submit_specs([s for _, s in flow], flow=name, names=[n for n, _ in flow])
    return {n: f.job for (n, _), f in zip(flow, futures, strict=True)}
