"""A logger for bad input that a peer can send at any rate: one line per interval, with a count."""

from __future__ import annotations

import logging
import time
from typing import Any


class RateLimitedLog:
    """Logs at most once per interval, with a count of the rest: a flood of bad
    messages or refused connections must not become a flood of log lines."""

    def __init__(self, log: logging.Logger, interval: float = 5.0) -> None:
        self.log = log
        self.interval = interval
        self._last = 0.0
        self._suppressed = 0

    def warning(self, msg: str, *args: Any) -> None:
        now = time.monotonic()
        if now - self._last >= self.interval:
            extra = f" ({self._suppressed} more since)" if self._suppressed else ""
            self.log.warning(msg + extra, *args)
            self._last = now
            self._suppressed = 0
        else:
            self._suppressed += 1
