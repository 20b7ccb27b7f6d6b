"""What a Server keeps per op and counts per message (weft.bus.rpc)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

Handler = Callable[[Any, Any], Any]


class OpEntry:
    """A registered handler: the function, whether it is async, whether it bypasses admission."""

    __slots__ = ("fn", "is_async", "bypass")

    def __init__(self, fn: Handler, bypass: bool) -> None:
        self.fn = fn
        self.is_async = inspect.iscoroutinefunction(fn)
        self.bypass = bypass


class ServerStats:
    __slots__ = ("calls", "posts", "busy", "malformed", "errors", "unknown_ops", "forbidden")

    def __init__(self) -> None:
        self.calls = self.posts = self.busy = self.malformed = self.errors = self.unknown_ops = self.forbidden = 0

    def to_dict(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in self.__slots__}
