"""Structured logging: one logger per domain (weft.bus, weft.coordinator, ...).

Lines are `time level logger message key=value...` on stderr. The level comes
from `--log-level` or `WEFT_LOG_LEVEL`.
"""

from __future__ import annotations

import logging
import os
import sys
import time

DOMAINS = ("weft.bus", "weft.coordinator", "weft.compute", "weft.storage", "weft.cli", "weft.client")
LEVELS = ("debug", "info", "warning", "error", "critical")


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%H:%M:%S", time.localtime(record.created))
        line = f"{ts}.{int(record.msecs):03d} {record.levelname.lower():7} {record.name}: {record.getMessage()}"
        fields = getattr(record, "fields", None)
        if fields:
            line += " " + " ".join(f"{k}={v}" for k, v in fields.items())
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def level_from(value: str | None) -> int:
    """Parse a level name; raise ValueError naming the allowed ones."""
    name = (value or os.environ.get("WEFT_LOG_LEVEL") or "warning").strip().lower()
    if name not in LEVELS:
        raise ValueError(f"unknown log level {name!r}; use one of {', '.join(LEVELS)}")
    return getattr(logging, name.upper())


def setup(level: str | None = None) -> None:
    """Lines to stderr at `level`; ValueError naming the allowed levels."""
    root = logging.getLogger("weft")
    wanted = level_from(level)
    if _done(root, wanted):
        # The zygote set it up in its image (localcluster/zygote.py): doing it
        # again in each daemon cost ~0.35 ms of copy-on-write (setLevel
        # clears the cache of every logger of the image).
        return
    for h in list(root.handlers):
        root.removeHandler(h)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter())
    root.addHandler(handler)
    root.setLevel(wanted)
    root.propagate = False


def _done(root: logging.Logger, level: int) -> bool:
    """Already what setup(level) makes: one of our handlers, on this sys.stderr."""
    if len(root.handlers) != 1 or root.level != level or root.propagate:
        return False
    h = root.handlers[0]
    return type(h) is logging.StreamHandler and h.stream is sys.stderr and type(h.formatter) is _Formatter
