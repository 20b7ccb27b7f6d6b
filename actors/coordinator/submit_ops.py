"""The coordinator's `submit` op: specs parsed a slice at a time, callables'
modules probed on the compute nodes, the jobs taken in slices by the state
(submit.py), and the answer built in slices, so a big submit leaves other
calls answered. It lives here so node.py stays the shell it is."""

from __future__ import annotations

import gc
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from typing import TYPE_CHECKING, Any

import trio

from weft.actors.model import JobSpec, SpecError
from weft.bus.errors import BusError
from weft.bus.rpc import CallContext
from weft.protocol.fields import BadRequest, opt_str
from weft.protocol.jobs import Submit, SubmitReply, Submitted, flow_part
from weft.protocol.probe import Probe, ProbeReply
from weft.protocol.secrets import secrets_field

from . import imports, owners, secrets, submission_ops
from .flows import FLOWS
from .nodes import ComputeRef
from .submit import SUBMIT_SLICE

if TYPE_CHECKING:
    from .nodeview import CoordinatorNode

log = logging.getLogger("weft.coordinator")

# How long a submit waits for compute nodes to say which modules they import
# (the node bounds its own look-up below this: see actors/compute/probe.py).
PROBE_TIMEOUT = 8.0
# How Submit names a bad spec: "job #N: why".
_JOB_NUMBER = re.compile(r"job #(\d+): ")


def register(node: CoordinatorNode) -> None:
    node.server.add("submit", partial(submit, node))


async def submit(node: CoordinatorNode, body: Any, ctx: CallContext) -> dict[str, Any]:
    """Submit -> SubmitReply: per spec its job, and whether it was
    `cached` (it had finished successfully) or `joined` (it is queued or
    running; `differs`: settings asked for that the existing job does
    not have and that are not part of its identity: priority, time_limit).
    """
    wires = body.get("jobs") if type(body) is dict else None
    if type(wires) is not list or len(wires) < SUBMIT_SLICE:
        return await _submit(node, body, ctx)
    with _collector_paused():
        return await _submit(node, body, ctx)


class _Paused:
    depth = 0  # submits under way with the collector paused
    was_enabled = True


@contextmanager
def _collector_paused() -> Iterator[None]:
    """The cyclic collector paused while a big submit is taken: the jobs it
    makes are not garbage (gc.freeze below puts them out of its sight once
    taken), and its passes over them, one every 700 allocations, were ~12%
    of the CPU of taking them (docs/performance.md). Other calls answered
    meanwhile make little, collected after."""
    if _Paused.depth == 0:
        _Paused.was_enabled = gc.isenabled()
        gc.disable()
    _Paused.depth += 1
    try:
        yield
    finally:
        _Paused.depth -= 1
        if _Paused.depth == 0 and _Paused.was_enabled:
            gc.enable()


async def _submit(node: CoordinatorNode, body: Any, ctx: CallContext) -> dict[str, Any]:
    specs = await _submitted_specs(body)
    replace = body.get("replace", False)  # (a dict: parsed above)
    if type(replace) is not bool:
        raise BadRequest("submit: replace must be true or false")
    flow = flow_part(body, len(specs))
    fail_fast = opt_str("submit", body, "fail_fast")
    queue = body.get("queue", True)
    if type(queue) is not bool:
        raise BadRequest("submit: queue must be true or false")
    owner = owners.owner_of_call(ctx, body)
    owners.check_submit(node, ctx, specs)
    secret = secrets_field("submit", body)
    secrets.check(specs, secret)
    node.queue_bound.admit(len(specs), node.graph.jobs.values())
    modules, nodes = imports.to_probe(specs, node.state.computes.values())
    if modules:
        refusal = imports.verdict(modules, await _probe(node, nodes, modules))
        if refusal is not None:
            raise SpecError(refusal)
    # Taken in slices, yielding to other calls between them (a big
    # submit must not leave stats, status and polls unanswered).
    steps = node.state.submitting(specs, replace=replace, owner=owner)
    while True:
        try:
            effects = next(steps)
        except StopIteration as done:
            results = done.value
            break
        node._run(effects)
        if secret is None:  # with secrets, no other task runs (a dispatch) until they are kept below
            await trio.lowlevel.checkpoint()
    secrets.keep(node.state, node.journal, results, secret)
    if flow is not None:
        node.state.record_flow(flow, [r.job.id for r in results])
        node.journal.stage_meta(FLOWS, {k: dict(v) for k, v in node.state.flows.items()})
    if fail_fast:
        node._run(node.state.watch_fail_fast(fail_fast, [r.job for r in results]))
    if not queue:  # try-submit: what can start now, nothing kept
        answer = submission_ops.try_submit(node, results)
        await node.commits.durable()
        return answer
    # The commit runs in its thread while the answer is made (SQLite lets
    # go of the GIL), not after it.
    begun = node.commits.begin()
    wire = Submitted.wire
    answers = []
    for start in range(0, len(results), SUBMIT_SLICE):
        if start:
            await trio.lowlevel.checkpoint()
        answers += [wire(s.job.id, s.job.state, s.job.outputs(), s.cached, s.joined, s.differs)
                    for s in results[start:start + SUBMIT_SLICE]]
    await node.commits.durable(begun)
    node._wake.set()
    if len(specs) >= SUBMIT_SLICE:
        # The jobs live as long as the coordinator: out of the collector's
        # sight, or its full passes over them (100 ms and more past
        # 100,000 jobs) stall every call now and then.
        gc.freeze()
    return SubmitReply.wire(answers)

async def _submitted_specs(body: Any) -> list[JobSpec]:
    """A submit's specs, parsed a slice at a time (the rest of the
    coordinator runs between slices); an error names the job by its
    place in the whole submit."""
    wires = body.get("jobs") if type(body) is dict else None
    if type(wires) is not list or len(wires) <= SUBMIT_SLICE:
        return Submit.from_wire(body).jobs
    specs: list[JobSpec] = []
    for start in range(0, len(wires), SUBMIT_SLICE):
        try:
            specs += Submit.from_wire({"jobs": wires[start:start + SUBMIT_SLICE]}).jobs
        except SpecError as e:
            m = _JOB_NUMBER.match(str(e))
            if m is None:
                raise
            raise SpecError(f"job #{int(m.group(1)) + start}: {str(e)[m.end():]}") from None
        await trio.lowlevel.checkpoint()
    return specs

async def _probe(node: CoordinatorNode, nodes: list[ComputeRef], modules: list[str]) -> list[tuple[ComputeRef, ProbeReply | None]]:
    """Ask every node which of `modules` it can import, in parallel; a
    node that does not answer in time answers None. Done early once
    every module is found somewhere."""
    answers: list[tuple[ComputeRef, ProbeReply | None]] = []
    wanted = set(modules)
    request = Probe(modules).to_wire()

    async def ask(ref: ComputeRef) -> None:
        try:
            reply = ProbeReply.from_wire(
                await node.peers.get(ref.endpoint).call("probe", request, timeout=PROBE_TIMEOUT))
        except (BusError, trio.ClosedResourceError) as e:  # an older node answers unknown-op
            log.info("compute %s did not say which modules it imports: %s", ref.node, e)
            reply = None
        answers.append((ref, reply))
        if reply is not None:
            wanted.difference_update(reply.found)
            if not wanted:
                nursery.cancel_scope.cancel()

    async with trio.open_nursery() as nursery:
        for ref in nodes:
            nursery.start_soon(ask, ref)
    return answers

