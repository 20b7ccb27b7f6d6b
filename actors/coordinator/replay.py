"""Rebuilding the coordinator's state from its journal after a restart.

Finished jobs come back finished (never rerun); unfinished ones come back
waiting, linked to their inputs again, so they run when those are finished
(storage inventories tell which already are). Running tasks are re-adopted
from compute inventories, which is why the first round waits `settle`.
"""

from __future__ import annotations

import logging

from weft.actors.model import JobSpec, SpecError
from weft.actors.plainspec import plain_from_wire
from weft.protocol.enums import TERMINAL_JOB_STATES, JobState, Outcome
from weft.protocol.jobs import PLAIN_KEYS as _PLAIN_KEYS

from . import drain, secrets
from .control import PAUSES
from .flows import FLOWS
from .graph import WAITING
from .journal import COUNTERS, Journal, parse_empty, parse_handed
from .owners import intern_owner
from .records import set_rare
from .recurring import RECURRING
from .spawn import DECOMMISSIONED
from .state import CoordinatorState

log = logging.getLogger("weft.coordinator")

_STATES = JobState._value2member_map_
_OUTCOMES = Outcome._value2member_map_


def replay(journal: Journal, state: CoordinatorState, *, settle: float = 3.0) -> int:
    """Load every journalled job into `state`; returns how many are unfinished."""
    g = state.graph
    unfinished = []
    last_seq = 0
    for (jid, seq, wire, st, outcome, cause, submitted, finished, delegate, parent, attempts,
         excused, token, ran_on, started, exit_code, code, detail, own, tail, empty, owner) in journal.replay():
        try:
            # A plain callable's spec comes back as small as it was queued (plainspec.py).
            if type(wire) is dict and wire.keys() <= _PLAIN_KEYS:
                spec = plain_from_wire(wire)
            else:
                spec = JobSpec.from_wire(wire)
        except SpecError as e:
            log.error("journal row %s has a bad spec, skipped: %s", jid, e)
            continue
        job = g.add_job(jid, spec, now=submitted, seq=seq)
        # The journal holds the states' strings (the same before and after the
        # enums existed); the graph holds the members. A state this version
        # does not know is unfinished work: it runs (again) rather than vanish.
        known = _STATES.get(st)
        job.state = known if known is not None else WAITING
        job.outcome = _OUTCOMES.get(outcome)
        job.finished, job.attempts = finished, attempts
        handed = parse_handed(delegate)
        set_rare(job, cause=cause, tail=tail, handed=handed, delegate=handed[1].split("/", 1)[0] if handed else None,
                 parent=parent, excused=excused, code=code, detail=detail, own=own)
        # Where and when it last ran; its token tells a task adopted from a
        # compute inventory whether the journal counted that attempt.
        job.token, job.ran_on, job.started, job.exit_code = token, ran_on, started, exit_code
        job.owner = intern_owner(owner)
        last_seq = seq
        if st == JobState.SUCCEEDED:
            # Its empty outputs were never on storage: finished from here.
            for output in parse_empty(empty) or ():
                state.hold_empty(job, output)
        if job.state == JobState.CANCELLING:
            # Its node's word is lost with our memory of asking: it is
            # cancelled, and a task of it still running is told to stop when
            # its node's inventory shows it (state.compute_inventory).
            job.state, job.outcome = JobState.CANCELLED, Outcome.CANCELLED
            job.cause = f"{cause or 'cancelled by user'} (coordinator restarted while cancelling)"
            job.finished = finished or state.wall()
            g.changed.append(job)
        if job.state not in TERMINAL_JOB_STATES:
            job.state = WAITING
            job.started = None  # until a compute inventory says it runs (adopted) or it starts again
            if token:
                state.replayed_tokens[jid] = token
            unfinished.append(job)
    g.bump_seq(last_seq)
    unfinished = secrets.lost_after_restart(journal, unfinished, g.fail, state)
    # Attempts that ended without success, as they were recorded.
    for jid, *rec in journal.replay_attempts():
        job = g.jobs.get(jid)
        if job is not None:
            if job.history is None:
                job.history = []
            job.history.append(tuple(rec))
    counters = journal.get_meta(COUNTERS)
    if isinstance(counters, dict):
        for k, v in counters.items():
            if type(v) is int and k in state.stats:
                state.stats[k] = v
    journal.counters = state.stats
    state.restore_pauses(journal.get_meta(PAUSES))
    state.restore_flows(journal.get_meta(FLOWS))
    state.restore_decommissioned(journal.get_meta(DECOMMISSIONED))
    state.restore_recurring(journal.get_meta(RECURRING))
    if any(j.spec.windows for j in unfinished):
        state.arm_gate()
    drain.restore(state, journal.get_meta(drain.DRAINED))
    # Delegated outputs point at the objects standing for them again.
    for job in g.jobs.values():
        if job.handed:
            output, target = job.handed
            g.delegate(f"{job.id}/{output}", target)
    for job in unfinished:
        g.link_inputs(job, defer_demand=True)  # one pass for all (demand.py)
        if job.spec.pending_timeout is not None and job.attempts - job.excused == 0:
            state.arm_pending(job, job.submitted)  # not started yet: its timer goes on
    g.flush_demand()
    if g.jobs:
        log.info("replayed %d jobs from the journal (%d unfinished)", len(g.jobs), len(unfinished))
    # Give running tasks a moment to be re-adopted from compute inventories
    # before anything is started twice.
    state.settle_until = state.mono() + (settle if unfinished else 0.0)
    return len(unfinished)
