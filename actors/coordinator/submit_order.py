"""A client's submit of many batches keeps two in flight (actors/submitpipe.py)
so the coordinator takes batch i+1 while batch i is made durable; this keeps
the order: batch k of a submit (its `order`, [token, k]) is taken only once
batch k-1 was, and once one batch is refused the later ones are refused too,
as when the client sent each batch after the one before was answered.

Arrival order alone would not do: two requests read in one receive are
started as two tasks, and trio runs a batch of new tasks in either order.
"""

from __future__ import annotations

import trio

from weft.actors.model import SpecError
from weft.bus.errors import BusError

# How long a batch waits for the batch before it to arrive and be taken
# (the client retries a busy batch for up to a minute before giving up).
TURN_WAIT = 90.0
# Submits remembered (their next batch's number); the oldest are forgotten
# past this (a client's submit is done long before).
_KEEP = 4096


class SubmitOrder:
    def __init__(self) -> None:
        self._next: dict[str, int] = {}  # token -> the number of the batch to take next
        self._refused: dict[str, str] = {}  # token -> why a batch of it was refused
        self._moved = trio.Event()

    async def turn(self, token: str, part: int) -> None:
        """Wait until every batch of `token` before `part` was taken; raise
        if one was refused, or if they did not come in time."""
        with trio.move_on_after(TURN_WAIT):
            while self._next.get(token, 0) < part and token not in self._refused:
                await self._moved.wait()
        why = self._refused.get(token)
        if why is not None:
            raise SpecError(f"batch {part + 1} of this submit is not taken: an earlier batch was refused ({why})")
        if self._next.get(token, 0) < part:
            raise BusError(f"batch {part + 1} of this submit is not taken: the batch before it did not come "
                           f"within {TURN_WAIT:g}s", code="order")

    def taken(self, token: str, part: int) -> None:
        self._next[token] = max(self._next.pop(token, 0), part + 1)  # (re-inserted: newest last)
        self._forget_old()
        self._wake()

    def refused(self, token: str, why: str) -> None:
        """A batch of `token` was refused: so are its later batches (a busy
        answer is not a refusal: the client sends that batch again)."""
        self._refused[token] = why
        self._forget_old()
        self._wake()

    def _wake(self) -> None:
        self._moved.set()
        self._moved = trio.Event()

    def _forget_old(self) -> None:
        for kept in (self._next, self._refused):
            while len(kept) > _KEEP:
                del kept[next(iter(kept))]
