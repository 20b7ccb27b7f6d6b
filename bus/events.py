"""A sequence-numbered event queue with long-poll.

News travels upward by polling, never by calling back: a poller asks for
events after the last sequence number it saw and the actor answers as soon as
there are any, or empty after the timeout. The queue keeps a bounded window;
a poller that fell behind it (or that saw an earlier incarnation of the actor,
whose numbering restarted) is told to resync, i.e. to re-read the actor's
state in full and poll from `next`.

One poll answer carries every event since `since` (up to `max`), so under load
events batch themselves.

An event is appended urgent or quiet. A poller that asks for `wake: urgent`
is answered when an urgent event arrives (or at its timeout) and gets the
quiet ones that came before it in the same answer: a compute node's
pending/running/storing steps ride along with the `done` that matters to the
coordinator, one message per batch instead of one per step. Pollers that
want every step as it happens (the default, `wake: all`) see no difference.

An urgent poller may also ask to `gather` for a short window: once woken, its
answer waits up to that many seconds for more urgent events while the actor
says more are coming (`more_coming`, set by the actor: a compute node with
more tasks waiting for a CPU than it has CPUs). A busy node's task ends then travel several to an
answer instead of one poll round trip each; an idle node, or one whose last
task just ended, answers at once, so a chain's hop waits for nothing.
"""

from __future__ import annotations

import secrets
from collections import deque
from collections.abc import Callable
from typing import Any

import trio

from .errors import BusError

# Quiet events in a row after which urgent pollers are woken anyway.
QUIET_BATCH = 1000


class EventQueue:
    def __init__(self, window: int = 100_000) -> None:
        self.window = window
        # A new id per incarnation: sequence numbers restart with the process.
        self.incarnation = secrets.token_hex(6)
        self._events: deque[tuple[int, str, Any]] = deque()
        self._next = 1
        self._last_urgent = 0
        self._quiet_limit = max(1, min(QUIET_BATCH, window // 2))
        self._wakeup = trio.Event()
        self._wakeup_urgent = trio.Event()
        # Pollers parked on each event now (an append asks per event: trio's
        # Event.statistics() made two objects, ~1 us of each append).
        self._waiting = 0
        self._waiting_urgent = 0
        # Times waiting pollers were woken by an append (read by metrics).
        self.wakeups = 0
        # Whether more urgent events are coming soon (a `gather` waits for
        # them only then); None: never, answers never wait.
        self.more_coming: Callable[[], bool] | None = None

    @property
    def next_seq(self) -> int:
        return self._next

    @property
    def first_seq(self) -> int:
        return self._events[0][0] if self._events else self._next

    def append(self, kind: str, data: Any = None, *, urgent: bool = True) -> int:
        seq = self._next
        self._next = seq + 1
        ev = self._events
        ev.append((seq, kind, data))
        if len(ev) > self.window:
            ev.popleft()
        if self._waiting:
            self.wakeups += 1
            self._waiting = 0  # (every one parked on it is woken: the count is the new event's)
            self._wakeup.set()
            self._wakeup = trio.Event()
        if urgent or seq - self._last_urgent >= self._quiet_limit:
            # A long run of quiet events wakes urgent pollers too, so the
            # window cannot overtake them while they sleep.
            self._last_urgent = seq
            if self._waiting_urgent:
                self.wakeups += 1
                self._waiting_urgent = 0
                self._wakeup_urgent.set()
                self._wakeup_urgent = trio.Event()
        return seq

    async def _park(self, urgent: bool) -> None:
        """Wait for the next wake-up, counted among the pollers parked on it."""
        if urgent:
            event = self._wakeup_urgent
            self._waiting_urgent += 1
        else:
            event = self._wakeup
            self._waiting += 1
        try:
            await event.wait()
        finally:
            if not event.is_set():  # left at its timeout: not parked any more
                if urgent:
                    self._waiting_urgent -= 1
                else:
                    self._waiting -= 1

    def since(self, since: int, limit: int) -> list[tuple[int, str, Any]]:
        """Retained events with seq >= since (at most `limit`)."""
        ev = self._events
        if not ev or since >= self._next:
            return []
        start = max(since - ev[0][0], 0)
        if start == 0 and limit >= len(ev):
            return list(ev)
        return [ev[i] for i in range(start, min(start + limit, len(ev)))]

    async def poll(
        self, since: int, limit: int = 10_000, timeout: float = 30.0, incarnation: str | None = None,
        *, urgent_only: bool = False, gather: float = 0.0,
    ) -> dict[str, Any]:
        """Events with seq >= since, waiting up to `timeout` for the first one
        (with `urgent_only`, for the first urgent one, then up to `gather`
        seconds more for further urgent ones while `more_coming()` says so).

        `since` 0 means "from the first event"; a poller that missed events
        (dropped from the window, or numbered by another incarnation) gets
        `resync: true` and the `next` to poll from after re-reading state.
        """
        since = max(since, 1)
        if (incarnation is not None and incarnation != self.incarnation) or not (
            self.first_seq <= since <= self._next
        ):
            return self._resync()
        if urgent_only:
            if self._last_urgent < since and timeout > 0:
                with trio.move_on_after(timeout):
                    while self._last_urgent < since:
                        await self._park(True)
            more = self.more_coming
            if gather > 0 and more is not None and self._last_urgent >= since and more():
                with trio.move_on_after(gather):
                    while more():
                        await self._park(True)
            if since < self.first_seq:
                return self._resync()
        elif since == self._next and timeout > 0:
            with trio.move_on_after(timeout):
                while since == self._next:
                    await self._park(False)
            if since < self.first_seq:
                return self._resync()  # a burst overtook us while we waited
        items = self.since(since, limit)
        return {
            "events": [list(e) for e in items],
            "next": items[-1][0] + 1 if items else since,
            "inc": self.incarnation,
            "resync": False,
        }

    def _resync(self) -> dict[str, Any]:
        return {"events": [], "next": self._next, "inc": self.incarnation, "resync": True}

    async def handle_poll(self, body: Any, ctx: Any) -> dict[str, Any]:
        """The `poll` op: body {since, max?, timeout?, inc?, wake?: all|urgent, gather?}."""
        if not isinstance(body, dict):
            raise BusError("poll needs a map body with 'since'", code="bad-request")
        since = body.get("since", 0)
        limit = body.get("max", 10_000)
        timeout = body.get("timeout", 30.0)
        inc = body.get("inc")
        if type(since) is not int or since < 0:
            raise BusError(f"poll 'since' must be a non-negative integer, got {since!r}", code="bad-request")
        if type(limit) is not int or limit <= 0:
            raise BusError(f"poll 'max' must be a positive integer, got {limit!r}", code="bad-request")
        if not isinstance(timeout, int | float) or not 0 <= timeout <= 300:
            raise BusError(f"poll 'timeout' must be 0..300 seconds, got {timeout!r}", code="bad-request")
        if inc is not None and not isinstance(inc, str):
            raise BusError("poll 'inc' must be a string", code="bad-request")
        wake = body.get("wake", "all")
        if wake not in ("all", "urgent"):
            raise BusError(f"poll 'wake' must be 'all' or 'urgent', got {wake!r}", code="bad-request")
        gather = body.get("gather", 0.0)
        if type(gather) not in (int, float) or not 0 <= gather <= 1:
            raise BusError(f"poll 'gather' must be 0..1 seconds, got {gather!r}", code="bad-request")
        return await self.poll(since, limit, float(timeout), inc, urgent_only=wake == "urgent", gather=float(gather))
