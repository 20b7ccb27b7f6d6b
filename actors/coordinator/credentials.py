"""A running job's credential, on the coordinator (docs/security.md, "A job's credential").

On a secure cluster a compute node mints a CurveZMQ key pair for each command
task it starts (bus/curve.py: mint_job_credential), gives the command the
secret half (`$WEFT_JOB_CREDENTIAL`, which Client() and `weft submit` pick up)
and tells the coordinator the public half in its `start_many` answer
(`keys: {job: public}`). The coordinator admits that key, as the User-Id
`job:JOB@TOKEN`, only while that attempt runs: the ZAP handler asks
`job_credential_user` at connect, and every message asks `job_credential_live`
(bus/curve.py: admission), so the credential dies with the attempt even on a
connection opened before. What the job may do is protocol/access.py (a few
ops) and owners.may_touch (only its own root's jobs).

Minting on the node keeps the coordinator's dispatch path free of key
generation (~30 us a key); the coordinator adds two dict writes per command
start on secure clusters, nothing in the clear.
"""

from __future__ import annotations

import logging
import re
from functools import cached_property
from typing import Any

from weft.bus.curve import JOB_ROLE
from weft.protocol.enums import JobState

log = logging.getLogger("weft.coordinator")

_Z85_KEY = re.compile(r"[0-9A-Za-z.\-:+=^!/*?&<>()\[\]{}@%$#]{40}")
_PREFIX = f"{JOB_ROLE}:"
# User-Id -> the root of its job's tree: owners.may_touch reads it (one process, one coordinator).
ROOTS: dict[str, str] = {}


def root_of(user: str) -> str | None:
    """The root whose jobs a job credential (`job:JOB@TOKEN`) may touch; None if unknown."""
    return ROOTS.get(user)


def is_job(user: str | None) -> bool:
    return user is not None and user.startswith(_PREFIX)


class JobKeys:
    """Public key -> User-Id of the attempts that reported one; pruned of ended attempts as it grows."""

    def __init__(self) -> None:
        self.by_key: dict[str, str] = {}
        self.prune_at = 1024


class JobCredentials:
    """Mixin for CoordinatorNode: admit running jobs' keys (ZAP) and calls (admission)."""

    graph: Any

    @cached_property
    def job_keys(self) -> JobKeys:
        return JobKeys()

    def admit_job_keys(self, reply: Any, tokens: dict[str, int], node_id: str) -> None:
        """Keys a compute node minted for the attempts it just started (its `start_many` answer)."""
        keys = reply.get("keys") if type(reply) is dict else None
        if not keys:
            return
        if type(keys) is not dict:
            log.warning("ignored 'keys' of a start_many answer from %s: not a map", node_id)
            return
        reg = self.job_keys
        jobs = self.graph.jobs
        for jid, public in keys.items():
            job = jobs.get(jid) if type(jid) is str else None
            token = tokens.get(jid) if job is not None else None
            # Only the node the attempt was sent to may name its key, and only for that attempt.
            if token is None or job.token != token or job.node != node_id or type(public) is not str \
                    or not _Z85_KEY.fullmatch(public):
                continue
            user = f"{_PREFIX}{jid}@{token}"
            reg.by_key[public] = user
            ROOTS[user] = job.spec.root or job.id
        if len(reg.by_key) >= reg.prune_at:
            for public, user in list(reg.by_key.items()):
                if not self.job_credential_live(user):
                    del reg.by_key[public]
                    ROOTS.pop(user, None)
            reg.prune_at = 2 * len(reg.by_key) + 1024

    def job_credential_user(self, public: str) -> str | None:
        """ZAP: the User-Id of a running attempt's key, else None (refused)."""
        user = self.job_keys.by_key.get(public)
        return user if user is not None and self.job_credential_live(user) else None

    def job_credential_live(self, user: str) -> bool:
        """Per message from a key not on the allow-list: is it a credential whose attempt still runs?"""
        if user not in ROOTS:
            return False
        jid, _, token = user[len(_PREFIX):].rpartition("@")
        job = self.graph.jobs.get(jid)
        return job is not None and job.state == JobState.RUNNING and str(job.token) == token
