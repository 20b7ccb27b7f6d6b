"""Liveness of peers, after the Paranoid Pirate pattern.

Any message heard from a peer counts as a heartbeat. A peer quiet for one
`interval` is pinged; one quiet for `timeout` is reported lost, once, to the
owner's `on_lost` callback and forgotten. The owner decides what losing it
means (requeue its jobs, wait for its objects, ...).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import trio

log = logging.getLogger("weft.bus")


class Liveness:
    def __init__(
        self,
        *,
        interval: float = 1.0,
        timeout: float = 2.0,
        on_lost: Callable[[str], None] | None = None,
    ) -> None:
        if timeout <= interval:
            raise ValueError("heartbeat timeout must be longer than its interval")
        self.interval = interval
        self.timeout = timeout
        self.on_lost = on_lost
        self._last: dict[str, float] = {}
        self._ping: dict[str, Callable[[], Awaitable[object]]] = {}
        self._pinging: set[str] = set()

    def watch(self, key: str, ping: Callable[[], Awaitable[object]]) -> None:
        """Start watching `key`; `ping()` is awaited when it has been quiet."""
        self._ping[key] = ping
        self._last.setdefault(key, trio.current_time())

    def unwatch(self, key: str) -> None:
        self._ping.pop(key, None)
        self._last.pop(key, None)

    def seen(self, key: str) -> None:
        if key in self._ping:
            self._last[key] = trio.current_time()

    def last_seen(self, key: str) -> float | None:
        return self._last.get(key)

    def quiet(self, key: str) -> float:
        """Seconds since `key` was last heard (0 if not watched). A peer that
        answers is pinged after `interval` and heard again a round trip
        later, so much more than that means it is not answering."""
        last = self._last.get(key)
        return 0.0 if last is None else trio.current_time() - last

    def unanswered(self, key: str) -> bool:
        """Quiet past two intervals: pinged and not answering, not yet lost."""
        return self.quiet(key) > 2 * self.interval

    @property
    def watched(self) -> list[str]:
        return list(self._ping)

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            while True:
                await trio.sleep(self.interval / 2)
                now = trio.current_time()
                for key, last in list(self._last.items()):
                    quiet = now - last
                    if quiet >= self.timeout:
                        self.unwatch(key)
                        log.warning("peer %s lost: silent for %.1fs", key, quiet)
                        if self.on_lost is not None:
                            try:
                                self.on_lost(key)
                            except Exception:
                                # One owner bug must not end liveness for every peer.
                                log.exception("on_lost(%s) raised", key)
                    elif quiet >= self.interval and key not in self._pinging:
                        self._pinging.add(key)
                        nursery.start_soon(self._ping_one, key)

    async def _ping_one(self, key: str) -> None:
        try:
            ping = self._ping.get(key)
            if ping is None:
                return
            with trio.move_on_after(self.timeout):
                try:
                    await ping()
                except Exception as e:  # a failed ping is just silence
                    log.debug("ping of %s failed: %s", key, e)
                    return
                self.seen(key)
        finally:
            self._pinging.discard(key)
