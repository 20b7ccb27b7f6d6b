"""Waiting on a condition, shared by the tests (one copy instead of nine).

`wait_for` polls from synchronous test code (another process's state: a
cluster, a playbook's daemon); `await_for` polls from trio tests, and its
predicate may be a coroutine function. Both are bounded in time, return the
predicate's first truthy value, and fail with what was awaited and the last
value seen, so a timeout says what never happened.

Prefer these to a fixed sleep whenever there is a condition to wait on: a
fixed sleep is either too short on a loaded machine or too long everywhere.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from typing import Any

import trio


def wait_for(predicate: Callable[[], Any], timeout: float, what: str = "condition",
             interval: float = 0.05) -> Any:
    """Poll `predicate()` until truthy (returning it); fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g}s (last: {value!r})")
        time.sleep(interval)


async def await_for(predicate: Callable[[], Any], timeout: float = 5.0, what: str = "condition",
                    interval: float = 0.01) -> Any:
    """Await `predicate()` (sync, or returning an awaitable) until truthy; fail after `timeout`."""
    deadline = trio.current_time() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if trio.current_time() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g}s (last: {value!r})")
        await trio.sleep(interval)
