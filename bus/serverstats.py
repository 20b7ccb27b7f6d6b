"""What a Server keeps per op and counts per message (weft.bus.rpc).

Each message costs one integer increment, on its op's entry (found for the
dispatch anyway); the server's totals are those summed when read (`info`,
a metrics scrape), not counted a second time.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

Handler = Callable[[Any, Any], Any]


class OpEntry:
    """A registered handler: the function, whether it is async, whether it
    bypasses admission; and its counts: calls and posts admitted to the
    handler, calls answered busy, handlers that raised."""

    __slots__ = ("fn", "is_async", "bypass", "calls", "posts", "busy", "errors")

    def __init__(self, fn: Handler, bypass: bool) -> None:
        self.fn = fn
        self.is_async = inspect.iscoroutinefunction(fn)
        self.bypass = bypass
        self.calls = self.posts = self.busy = self.errors = 0


class ServerStats:
    """The server's totals: per-op counts summed at read time, and what has no op
    (malformed messages, unknown ops) or never reached one (forbidden calls)."""

    __slots__ = ("ops", "malformed", "unknown_ops", "forbidden")
    FIELDS = ("calls", "posts", "busy", "malformed", "errors", "unknown_ops", "forbidden")

    def __init__(self, ops: dict[str, OpEntry] | None = None) -> None:
        self.ops = ops if ops is not None else {}
        self.malformed = self.unknown_ops = self.forbidden = 0

    @property
    def calls(self) -> int:
        return sum(e.calls for e in self.ops.values())

    @property
    def posts(self) -> int:
        return sum(e.posts for e in self.ops.values())

    @property
    def busy(self) -> int:
        return sum(e.busy for e in self.ops.values())

    @property
    def errors(self) -> int:
        return sum(e.errors for e in self.ops.values())

    def to_dict(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in self.FIELDS}
