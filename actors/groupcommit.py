"""Group commit: many callers, one flush.

A caller stages a change, then awaits `durable()`; the committer task runs
`flush` once for everything staged so far and releases every caller whose
change it covered. Under load, flushes batch themselves; alone, a caller
waits for exactly one flush.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import Any

import trio

from weft.protocol.enums import ErrorCode

log = logging.getLogger("weft")


class FlushFailed(Exception):
    code = "io-error"


class GroupCommit:
    def __init__(self, flush: Callable[[], Any], *, what: str = "state", delay: float = 0.0) -> None:
        self._flush = flush
        self._what = what
        self._delay = delay  # >0 gathers background changes for longer
        self._dirty = trio.Event()
        self._waited = trio.Event()  # someone awaits durable(): no more gathering
        self._batch_done = trio.Event()
        self._error: Exception | None = None

    def mark(self) -> None:
        """Something was staged: flush it soon even if nobody waits for it."""
        self._dirty.set()

    def begin(self) -> trio.Event:
        """Ask for a flush of everything staged so far, now; pass what this
        returns to `durable` to wait for it (the caller works meanwhile)."""
        done = self._batch_done
        self._dirty.set()
        self._waited.set()
        return done

    async def durable(self, begun: trio.Event | None = None) -> None:
        """Return once everything staged before this call (or before `begin`
        returned `begun`) is durable."""
        done = begun if begun is not None else self.begin()
        await done.wait()
        if self._error is not None:
            raise FlushFailed(f"could not make the {self._what} durable: {self._error}")

    async def run(self) -> None:
        while True:
            await self._dirty.wait()
            if self._delay and not self._waited.is_set():
                # Only background changes so far: gather more of them, but
                # not past the moment someone needs a flush.
                with trio.move_on_after(self._delay):
                    await self._waited.wait()
            # Let every request already queued stage its change first.
            await trio.lowlevel.checkpoint()
            self._dirty = trio.Event()
            self._waited = trio.Event()
            done, self._batch_done = self._batch_done, trio.Event()
            try:
                result = self._flush()
                if inspect.isawaitable(result):
                    await result
                self._error = None
            except Exception as e:
                # A full disk is a state of the machine, answered to every
                # waiting writer as `no-space` (the store keeps what was
                # staged for the next flush): a warning. Anything else is a
                # fault of the daemon's: an error.
                level = logging.WARNING if getattr(e, "code", None) == ErrorCode.NO_SPACE else logging.ERROR
                log.log(level, "flushing %s failed: %s", self._what, e)
                self._error = e
            done.set()
