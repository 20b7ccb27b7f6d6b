"""The coordinator's admission bound on submits.

Past `max_queue` unfinished jobs a submit is answered `busy`, with a hint of
when to retry that the Python client honours. The count of unfinished jobs is
a walk over every job, so it is taken only when the estimate says busy (and
then at most once a second): in between, the jobs accepted since are added to
it, and finished ones are not subtracted until the next count, which errs on
the side of counting again. (A count every second walked every queued job
every second of a long submit: 261,000 steps in a 100,000-job profile.)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from weft.actors.model import SpecError
from weft.bus.errors import BusError
from weft.protocol.enums import ErrorCode

from .graph import Job

# Seconds a refused submitter is told to wait before trying again, said as
# "retry in Ns" at the end of the message (weft.actors.client reads it).
RETRY_HINT = 2.0
RECOUNT_EVERY = 1.0


class QueueBound:
    def __init__(self, max_queue: int, *, mono: Callable[[], float] = time.monotonic) -> None:
        self.max_queue = max_queue
        self.mono = mono
        self.unfinished = 0
        self._counted_at: float | None = None

    def admit(self, n: int, jobs: Iterable[Job]) -> None:
        """Take `n` more jobs, or raise busy (or a SpecError if `n` alone is too many)."""
        if n > self.max_queue:
            raise SpecError(f"a submit of {n} jobs is more than the coordinator's queue bound of "
                            f"{self.max_queue}: submit them in smaller batches")
        now = self.mono()
        if self._counted_at is None or (self.unfinished + n > self.max_queue
                                        and now - self._counted_at >= RECOUNT_EVERY):
            self.unfinished = sum(1 for j in jobs if not j.done)
            self._counted_at = now
        if self.unfinished + n > self.max_queue:
            raise BusError(f"coordinator is busy: {self.unfinished} jobs unfinished, its queue bound is "
                           f"{self.max_queue}; retry in {RETRY_HINT:g}s", code=ErrorCode.BUSY)
        self.unfinished += n

