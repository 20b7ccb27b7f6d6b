"""Job credentials minted on the compute node (docs/security.md, "A job's credential").

On a secure cluster each command task gets a fresh CurveZMQ key pair: the
command finds it in `$WEFT_JOB_CREDENTIAL` (with the cluster's public key), so
`weft submit` and Client() inside the job reach the coordinator with no key
file, and the coordinator learns the public half from this `start_many`
answer and admits it only while that attempt runs
(actors/coordinator/credentials.py). Minting here (~30 us a key) costs the
node, which is about to spawn a process anyway, and not the coordinator's
dispatch. The variable rides with the task's secret inputs: environment only,
written nowhere.
"""

from __future__ import annotations

from typing import Any

from weft.bus.curve import JOB_CREDENTIAL_ENV, mint_job_credential


def with_keys(node: Any, reply: dict[str, Any]) -> dict[str, Any]:
    """`reply` (a start_many answer, its items in wire form) with `keys:
    {job: public}` for the command tasks it started."""
    sec = node.config.security
    if sec is None:
        return reply
    keys: dict[str, str] = {}
    for r in reply["tasks"]:
        if "error" in r:  # (a Refused item)
            continue
        task = node.tasks.get(r["job"])
        # An earlier attempt the node still runs answers too: its command has its environment already.
        if task is None or task.token != r["token"] or task.spec.command is None \
                or (task.secrets and JOB_CREDENTIAL_ENV in task.secrets):
            continue
        public, value = mint_job_credential(sec.cluster_public)
        task.secrets = {**(task.secrets or {}), JOB_CREDENTIAL_ENV: value}
        keys[r["job"]] = public
    if keys:
        reply["keys"] = keys
    return reply
