"""Why a job waits, in one place: `weft status` shows it and a pending
timeout names it as its detail.

Anyone who keeps a job from starting says why with `set(job, code, text)`
and takes it back with `clear(job)`; codes are short and stable (they are
the `detail` of a `pending-timeout`), texts are for people:

    host-unknown  host gpu7 unknown
    host-down     host b2 down since 10:02
    no-capacity   no compute node with 4 GiB free

Reasons are set only when a job is set aside, never per dispatch, so the
hot path does not touch this table.
"""

from __future__ import annotations

import time

from weft.protocol.record import record

HOST_UNKNOWN = "host-unknown"
HOST_DOWN = "host-down"
NO_CAPACITY = "no-capacity"


@record
class Reason:
    code: str
    text: str
    since: float  # wall time it was first given

    def shown(self) -> str:
        return f"{self.code}: {self.text}"


class Waiting:
    def __init__(self) -> None:
        self.reasons: dict[str, Reason] = {}

    def set(self, job: str, code: str, text: str, now: float | None = None) -> None:
        old = self.reasons.get(job)
        if old is not None and old.code == code:
            old.text = text
            return
        self.reasons[job] = Reason(code, text, time.time() if now is None else now)

    def clear(self, job: str) -> None:
        self.reasons.pop(job, None)

    def get(self, job: str) -> Reason | None:
        return self.reasons.get(job)

    def text(self, job: str) -> str | None:
        r = self.reasons.get(job)
        return None if r is None else r.text
