"""A plain long-poller parked on a real daemon's empty event queue is woken
by the next event, quiet or not (bus/events.py; `wake: all` is the default)."""

from __future__ import annotations

import trio

from .conftest import Shared, job_id, peer

POLL_TIMEOUT = 60.0  # far beyond the wait below: an answer cannot be the timeout's


async def test_a_parked_plain_poller_wakes_on_the_next_event(shared: Shared) -> None:
    name = f"{job_id('wake')}/out"
    with trio.fail_after(20):
        async with peer(shared.a) as a:
            listing = await a.call("list", {"prefix": name})
            since = listing["next"]
            poll = await a.send_call("poll", {"since": since, "timeout": POLL_TIMEOUT, "inc": listing["inc"]},
                                     timeout=POLL_TIMEOUT + 10)
            # A round trip behind the poll on the same connection: the poll
            # reached the node first and has had its turn to park.
            await a.call("list", {"prefix": name})
            # `created` is a quiet event: only plain pollers wake for it.
            await a.call("create", {"name": name, "token": 1})
            answer = await poll.reply()
    assert answer["resync"] is False, answer
    assert [(e[0], e[1], e[2]["name"]) for e in answer["events"]][:1] == [(since, "created", name)], answer
    assert answer["next"] > since
