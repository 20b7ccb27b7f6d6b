"""The client's submit path: specs cut into batches that fit a message, and
sent with one batch in flight while the next is built and encoded.

A batch is sent only once the one before it is answered, so the coordinator
takes the jobs in the order given and a refused batch stops the ones after
it (as a submit one batch at a time did); what overlaps is the client's own
work (building, checking and encoding batch i+1, making batch i-1's futures)
with the coordinator's taking batch i. Without it the two add up: the
client's ~20 us a job and the coordinator's ~23 us a job, one after the
other (docs/performance.md, p-submit2).
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

from weft.actors.model import JobSpec, SpecError, byte_size, check_submittable, human_size
from weft.bus.codec import DEFAULT_MAX_MESSAGE


class Client(Protocol):
    """What a call in flight uses of the client (client.py, which imports
    this module: naming its class here would import it back)."""

    _nursery: Any

    async def _call(self, op: str, body: Any, **kw: Any) -> Any: ...

    def _run_sync(self, fn: Any, *args: Any) -> Any: ...


# Room in a message for the envelope and each spec's keys, names and outputs.
_MESSAGE_HEADROOM = 1 << 20
_SPEC_OVERHEAD = 256
_BUDGET = DEFAULT_MAX_MESSAGE - _MESSAGE_HEADROOM


def _checked_size(spec: JobSpec, number: int, alone: bool) -> int:
    """`spec`'s share of a message; a spec that fits in no message is
    refused (the coordinator would never see it: the socket drops it)."""
    check_submittable(spec)
    size = spec.payload_size() + _SPEC_OVERHEAD
    if size > _BUDGET:
        which = "the job" if alone else f"job #{number}"
        raise SpecError(
            f"{which} is {human_size(size)}: a message to the coordinator is at most "
            f"{human_size(DEFAULT_MAX_MESSAGE)}; pass large data as objects (input NAME=@JOB/OUTPUT)"
        )
    return size


def _cut(sized: Iterable[tuple[JobSpec, int]], batch: int) -> Iterator[list[JobSpec]]:
    chunk: list[JobSpec] = []
    total = 0
    for spec, size in sized:
        if chunk and (len(chunk) >= batch or total + size > _BUDGET):
            yield chunk
            chunk, total = [], 0
        chunk.append(spec)
        total += size
    if chunk:
        yield chunk


def batches(specs: list[JobSpec], batch: int) -> Iterator[list[JobSpec]]:
    """Up to `batch` specs per submit call, and no more than fits in one
    message; every spec is checked before the first batch is yielded, so a
    spec that cannot be sent is refused before anything is sent."""
    alone = len(specs) == 1
    sizes = [_checked_size(spec, i + 1, alone) for i, spec in enumerate(specs)]
    return _cut(zip(specs, sizes, strict=True), batch)


def map_batches(make: Callable[[Any], JobSpec], items: Iterable[Any], key: str,
                batch: int) -> Iterator[list[dict[str, Any]]]:
    """`map`'s specs on the wire, cut into batches as the items are taken:
    each is made and checked when its batch is cut, so a bad item is refused,
    named by its number, once the batches before it were submitted (as a
    batch the coordinator refuses: those before it stand)."""
    return _cut(_map_wires(make, items, key), batch)


# An item up to this size may be copied into the first item's spec; a larger
# one is made and checked as any spec (the checks' own errors).
_FAST_ITEM = 64 * 1024


def _map_wires(make: Callable[[Any], JobSpec], items: Iterable[Any], key: str) -> Iterator[tuple[dict[str, Any], int]]:
    """(wire, size) per item. The first plain item's spec (a callable's,
    the item a string, bytes or number) is made and checked in full; every
    later plain item's is that one with input `key` replaced, which is all
    `make` would change (~1 us against ~13 us a spec built and validated)."""
    wire: dict[str, Any] | None = None  # the first plain item's spec on the wire
    inputs: dict[str, Any] = {}
    rest = 0  # its size without the item
    for number, item in enumerate(items, 1):
        t = type(item)
        plain = t is str or t is bytes or t is int or t is float
        if wire is not None and plain:
            value = item if t is str or t is bytes else str(item)
            size = byte_size(value)
            if size <= _FAST_ITEM and rest + size <= _BUDGET:
                w = dict(wire)
                w["in"] = {**inputs, key: value}
                yield w, rest + size
                continue
        try:
            spec = make(item)
            size = _checked_size(spec, number, True)
        except (SpecError, TypeError, ValueError) as e:
            if type(e) not in (SpecError, TypeError, ValueError):
                raise
            raise type(e)(f"job #{number}: {e}") from None
        w = spec.to_wire()
        if wire is None and plain and spec.call is not None and key in spec.inputs:
            wire, inputs = w, spec.inputs
            rest = size - byte_size(spec.inputs[key])
        yield w, size


class InFlight:
    """At most one call of `client` in flight, started from the caller's
    thread without waiting for its answer."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self._pending: concurrent.futures.Future[Any] | None = None

    def start(self, op: str, body: Any, **kw: Any) -> None:
        """Start a call; the one before it must have been `take`n."""
        assert self._pending is None, "one call in flight at a time"
        result: concurrent.futures.Future[Any] = concurrent.futures.Future()

        async def run() -> None:
            try:
                result.set_result(await self._client._call(op, body, **kw))
            except BaseException as e:  # cancelled too (the client closing): the caller must not hang
                result.set_exception(e if isinstance(e, Exception) else RuntimeError("client is closed"))
                if not isinstance(e, Exception):
                    raise

        self._client._run_sync(self._client._nursery.start_soon, run)
        self._pending = result

    @property
    def busy(self) -> bool:
        return self._pending is not None

    def take(self) -> Any:
        """The answer of the call in flight (its error raised here)."""
        pending, self._pending = self._pending, None
        assert pending is not None
        return pending.result()

    def settle(self) -> None:
        """Wait out the call in flight, if any, dropping its answer or error
        (another error is on its way up; the call must not outlive it)."""
        if self._pending is not None:
            try:
                self.take()
            except Exception:
                pass


def pipelined(client: Client, bodies: Iterator[Any], answer: Callable[[Any], None], *, timeout: float) -> None:
    """Call `submit` with each of `bodies` in turn, one in flight: the next
    body is made (its specs built, checked, encoded) while the coordinator
    takes the one before, and is sent once that one is answered; `answer`
    gets each reply in order."""
    calls = InFlight(client)
    try:
        for body in bodies:
            reply = calls.take() if calls.busy else None
            calls.start("submit", body, timeout=timeout)
            if reply is not None:  # made into futures while the next batch is taken
                answer(reply)
        if calls.busy:
            answer(calls.take())
    except BaseException:
        calls.settle()
        raise


def submit_body(wires: list[dict[str, Any]], fields: Any) -> dict[str, Any]:
    """A `Submit` (`fields`, made with no jobs) carrying specs already on the wire."""
    body = fields.to_wire()
    body["jobs"] = wires
    return body
