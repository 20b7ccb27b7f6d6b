"""The coordinator's loops that keep objects alive: lineage remakes objects
lost with their storage node, repair keeps finished objects at their replica
count (repair.py decides, these carry it out: copies asked of a storage node,
extra copies trimmed). A mixin of CoordinatorNode (node.py)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import trio

from weft.bus.errors import BusError, CallTimeout, RemoteError
from weft.bus.rpc import PeerClosed
from weft.protocol.fields import BadRequest
from weft.protocol.objects import DeleteObjects, Replicate, ReplicateReply

from .effects import Copy, Trim

log = logging.getLogger("weft.coordinator")

_NET_ERRORS = (CallTimeout, PeerClosed, RemoteError, trio.ClosedResourceError)
# A peer's answer that does not parse: as good as no answer.
_ANSWER_ERRORS = (*_NET_ERRORS, BadRequest)
# How often repair looks for work (when there is any: see Repair.busy).
REPAIR_EVERY = 0.5
REPAIR_SOON = 0.05


class CopyLoops:
    state: Any
    peers: Any
    epoch: int

    # The node's (annotations only: the node's own methods are the ones called).
    _run: Callable[[list[Any]], None]
    _check_fenced: Callable[[Exception], None]

    async def _lineage(self) -> None:
        """Objects lost with their storage node past the grace period are made again."""
        while True:
            await trio.sleep(max(0.05, min(1.0, self.state.storage_grace / 4)))
            if self.state.lost_objects:
                self._run(self.state.regenerate_lost())

    async def _repair(self) -> None:
        """Keep finished objects at their replica count (repair.py decides)."""
        repair = self.state.repair
        while True:
            # Soon after copies ended (their slots are free), else now and then.
            await trio.sleep(REPAIR_SOON if repair.ended else REPAIR_EVERY)
            if repair.busy:
                self._run(self.state.repair_round())

    async def _copy(self, e: Copy) -> None:
        """Ask the target to copy (it answers at once; its events tell the end)."""
        names = [n for n, _ in e.items]
        try:
            r = ReplicateReply.from_wire(await self.peers.get(e.target.endpoint).call(
                "replicate", Replicate(e.items, self.epoch).to_wire()))
            refused = {n: err.get("code") for n, err in r.refused.items()}
            if refused:
                log.info("storage %s refused %d copies (%s)", e.target.node, len(refused),
                         next(iter(r.refused.values())).get("message"))
        except (*_ANSWER_ERRORS, BusError) as err:  # an older node answers unknown-op
            self._check_fenced(err)
            log.info("asking storage %s for %d copies: %s", e.target.node, len(names), err)
            refused = dict.fromkeys(names)
        if refused:
            self.state.copies_answered(e.target, refused)

    async def _trim(self, e: Trim) -> None:
        try:
            await self.peers.get(e.storage.endpoint).call("delete", DeleteObjects(e.names, epoch=self.epoch).to_wire())
        except _NET_ERRORS as err:
            self._check_fenced(err)
            log.info("trimming %d extra copies on %s: %s", len(e.names), e.storage.node, err)
