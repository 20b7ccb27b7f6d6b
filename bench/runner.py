"""Orchestration of `weft bench`: which system runs what, when, medians and JSON.

Order. First the raw pyzmq round trip (`roundtrip`, system `pyzmq`, a
client and one server process), before any cluster. Then the systems, one
after the other, never side by side: first weft (its shared 2 x 1-slot
cluster for throughput, chain, fanout, commands, handoff and handoff-cross;
then a 0-compute cluster per submit/memory run; then a fresh cluster per
startup run; then the weft-only measurements: responsive, and dispatch with
its simulated nodes), and only once every weft process has been stopped,
each peer in the order given to `--peers` (Dask, then Ray: the same
sequence; Ray's handoff-cross replaces its one-node Ray by two local Ray
nodes, see ray_peer.py). So at any moment one system's cluster is up, and
no two compete for the cores. The price is that slow drift of the machine
(thermal, other load) shows up as a difference between the systems; the
median of three runs and per-run values in the JSON make that visible.

Each workload runs `runs` times (3; 1 with --smoke) and reports the median.
Within a run everything has a deadline (`workloads.TIMEOUTS`): a run that
fails or overruns fails its workload for that system (the remaining runs of
it are skipped, the shared cluster is replaced so that nothing stuck carries
over) and the bench goes on with the next workload. Any failure makes the
exit code 1. Clusters are stopped in `finally` blocks, so an error or Ctrl-C
never leaves one running.
"""

from __future__ import annotations

import json
import secrets
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .machine import loadavg, machine
from .workloads import (
    CLUSTER_WORKLOADS,
    QUEUE_WORKLOADS,
    SIZES,
    TIMEOUTS,
    TRANSPORT,
    TRANSPORT_SYSTEM,
    WEFT_ONLY,
    WORKLOADS,
    NotMeasured,
    WeftSide,
)

SYSTEMS = ("weft", "dask", "ray")
PEERS = ("dask", "ray")
# Within this factor of each other the table calls it a tie: one machine, a few
# runs, and the two systems measured one after the other.
TIE = 1.05


@dataclass
class Result:
    workload: str
    system: str
    runs: list[float] = field(default_factory=list)
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    na: bool = False  # not measured on this system (a weft-only workload on a peer, or NotMeasured)
    # weft's rows: how it compares with the peers (see annotate()).
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def value(self) -> float | None:
        if self.error is not None or not self.runs:
            return None
        return statistics.median(self.runs)

    def to_json(self) -> dict[str, Any]:
        w = WORKLOADS[self.workload]
        d: dict[str, Any] = {
            "workload": self.workload,
            "system": self.system,
            "value": self.value,
            "unit": w.unit,
            "better": w.better,
            "runs": self.runs,
        }
        if self.error is not None:
            d["error"] = self.error
        if self.na:
            d["na"] = True
        if self.notes:
            d["notes"] = self.notes
        d.update(self.extra)
        return d


class Progress:
    """What the runner reports; the CLI draws it. The default draws nothing."""

    def begin(self, total: int) -> None:
        pass

    def step(self, label: str) -> None:
        """A unit of work (one run of one workload) is starting."""

    def advance(self, n: int = 1) -> None:
        pass

    def warn(self, message: str) -> None:
        pass


@dataclass
class Plan:
    workloads: list[str]
    systems: list[str]
    smoke: bool = False
    load_before: float | None = None

    @property
    def mode(self) -> str:
        return "smoke" if self.smoke else "full"

    @property
    def runs(self) -> int:
        return 1 if self.smoke else 3

    def units(self) -> int:
        """Progress steps: one per run of each measurement (submit+memory are one)."""
        transport = sum(self.runs for w in self.workloads if w in TRANSPORT)
        per_system = sum(self.runs for w in self.workloads if w in CLUSTER_WORKLOADS)
        if any(w in QUEUE_WORKLOADS for w in self.workloads):
            per_system += self.runs
        if "startup" in self.workloads:
            per_system += self.runs
        weft_only = sum(self.runs for w in self.workloads if w in WEFT_ONLY)
        return per_system * len(self.systems) + weft_only + transport


def parse_workloads(value: str | None) -> list[str]:
    """`a,b,c` -> the names in the canonical order; ValueError names an unknown one."""
    if not value:
        return list(WORKLOADS)
    asked = [w.strip() for w in value.split(",") if w.strip()]
    unknown = [w for w in asked if w not in WORKLOADS]
    if unknown:
        raise ValueError(f"unknown workload {unknown[0]!r}: choose from {', '.join(WORKLOADS)}")
    if not asked:
        raise ValueError("no workloads given")
    return [w for w in WORKLOADS if w in asked]


def new_side(system: str) -> Any:
    if system == "weft":
        return WeftSide()
    if system == "ray":
        from .ray_peer import RaySide

        # As many CPUs as weft has slots (compute nodes x slots).
        weft = WeftSide()
        return RaySide(num_cpus=weft.compute * weft.slots)
    from .dask_peer import DaskSide

    return DaskSide()


def run_plan(plan: Plan, progress: Progress | None = None,
             make_side: Callable[[str], Any] = new_side) -> list[Result]:
    progress = progress or Progress()
    plan.load_before = loadavg()
    progress.begin(plan.units())
    nonce = secrets.token_hex(4)
    results: list[Result] = _run_transport(plan, progress)
    for system in plan.systems:
        results += _run_system(plan, system, make_side(system), nonce, progress)
    annotate(plan, results)
    return results


def _run_transport(plan: Plan, progress: Progress) -> list[Result]:
    """The raw pyzmq round trip, before any cluster is up."""
    from .bus_pingpong import raw_roundtrip_ms

    out = []
    for w in (w for w in plan.workloads if w in TRANSPORT):
        r = Result(w, TRANSPORT_SYSTEM)
        for i in range(plan.runs):
            progress.step(f"{TRANSPORT_SYSTEM} {w} ({i + 1}/{plan.runs})")
            try:
                r.runs.append(raw_roundtrip_ms(SIZES[plan.mode][w]["n"]))
            except Exception as e:
                r.error = _msg(e)
                progress.warn(f"{TRANSPORT_SYSTEM} {w}: {r.error}")
                progress.advance(plan.runs - i)
                break
            progress.advance()
        out.append(r)
    return out


def _run_system(plan: Plan, system: str, side: Any, nonce: str, progress: Progress) -> list[Result]:
    sizes, timeouts, runs = SIZES[plan.mode], TIMEOUTS[plan.mode], plan.runs
    out = {w: Result(w, system) for w in plan.workloads if w not in TRANSPORT}

    def failed(workloads: Sequence[str], message: str) -> None:
        for w in workloads:
            if out[w].error is None:
                out[w].error = message
        progress.warn(f"{system} {'/'.join(workloads)}: {message}")

    # The shared cluster.
    shared = [w for w in plan.workloads if w in CLUSTER_WORKLOADS]
    if shared:
        try:
            _run_shared(side, shared, out, sizes, timeouts, runs, nonce, progress, failed)
        finally:
            side.close()

    # submit + memory: one measurement gives both.
    queued = [w for w in plan.workloads if w in QUEUE_WORKLOADS]
    for r in range(runs if queued else 0):
        progress.step(f"{system} {'+'.join(queued)} ({r + 1}/{runs})")
        try:
            got = side.queue(sizes["queue"]["n"], f"{nonce}-queue-{r}", timeouts["queue"])
        except Exception as e:
            failed(queued, _msg(e))
            progress.advance(runs - r)
            break
        for w in queued:
            out[w].runs.append(got[w])
        progress.advance()

    if "startup" in plan.workloads:
        for r in range(runs):
            progress.step(f"{system} startup ({r + 1}/{runs})")
            try:
                out["startup"].runs.append(side.startup(timeouts["startup"]))
            except Exception as e:
                failed(["startup"], _msg(e))
                progress.advance(runs - r)
                break
            progress.advance()
    for w in (w for w in plan.workloads if w in WEFT_ONLY):
        if system != "weft":
            out[w].na = True
            continue
        for r in range(runs):
            progress.step(f"{system} {w} ({r + 1}/{runs})")
            try:
                if w == "responsive":
                    out[w].runs.append(side.responsive(sizes[w]["n"], f"{nonce}-{w}-{r}", timeouts[w]))
                else:
                    out[w].runs.append(side.dispatch(**sizes[w], tag=f"{nonce}-{w}-{r}", timeout=timeouts[w]))
            except Exception as e:
                failed([w], _msg(e))
                progress.advance(runs - r)
                break
            progress.advance()
    return _finish(out, side)


def format_result(r: Result) -> str:
    """A result's cell in the table: its value, `error`, or `n/a`."""
    return "n/a" if r.na else format_value(r.value)


def _run_shared(side: Any, shared: list[str], out: dict[str, Result], sizes: dict, timeouts: dict,
                runs: int, nonce: str, progress: Progress, failed: Callable[[Sequence[str], str], None]) -> None:
    """The CLUSTER_WORKLOADS on one cluster, replaced after a failed run."""
    progress.step(f"{out[shared[0]].system}: starting the cluster")
    try:
        side.open()
    except Exception as e:
        failed(shared, f"the cluster did not start or warm up: {_msg(e)}")
        progress.advance(len(shared) * runs)
        return
    for i, w in enumerate(shared):
        for r in range(runs):
            progress.step(f"{out[w].system} {w} ({r + 1}/{runs})")
            try:
                out[w].runs.append(side.run(w, sizes[w], f"{nonce}-{w}-{r}", timeouts[w]))
            except NotMeasured as e:
                # Not a failure: this system cannot run it (yet); say why.
                out[w].na, out[w].notes = True, [str(e)]
                progress.advance(runs - r)
                break
            except Exception as e:
                failed([w], _msg(e))
                progress.advance(runs - r)
                break
            progress.advance()
        if out[w].error is not None and i + 1 < len(shared):
            progress.step(f"{out[w].system}: replacing the cluster")
            try:
                side.reset()
            except Exception as e:
                rest = shared[i + 1:]
                failed(rest, f"the cluster did not restart: {_msg(e)}")
                progress.advance(len(rest) * runs)
                return


def _finish(out: dict[str, Result], side: Any) -> list[Result]:
    values = getattr(side, "note_values", {})
    for w, text in getattr(side, "notes", {}).items():
        if w in out and not out[w].na:
            out[w].notes = [f"{text}, per run: {', '.join(values[w])}" if values.get(w) else text]
    return list(out.values())


def _msg(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return text if text else type(e).__name__


# -- reporting --------------------------------------------------------------------------


def compare(weft: Result, peer: Result | None) -> tuple[float | None, str | None]:
    """(weft/peer ratio, which is better: "weft", "tie" or the peer's system)
    or Nones when either value is missing."""
    if peer is None or weft.value is None or peer.value is None or peer.value == 0 or weft.value == 0:
        return None, None
    ratio = weft.value / peer.value
    higher = WORKLOADS[weft.workload].better == "higher"
    if 1 / TIE <= ratio <= TIE:
        return ratio, "tie"
    return ratio, "weft" if (ratio > 1) == higher else peer.system


def best_peer(workload: str, peers: Sequence[Result]) -> Result | None:
    """The peer with the best value of `workload` (None if none has one)."""
    valued = [p for p in peers if p.value is not None and p.value > 0]
    if not valued:
        return None
    pick = max if WORKLOADS[workload].better == "higher" else min
    return pick(valued, key=lambda p: p.value)


def annotate(plan: Plan, results: list[Result]) -> None:
    """Put the comparisons in weft's rows (`extra`, so also in the JSON):
    `best_peer`, `best_peer_value`, `vs_best_peer` (weft / best peer) and
    `winner`; `vs_dask` (weft / Dask, the older column) when Dask ran; for
    `chain`, `vs_roundtrip`: a hop in raw pyzmq round trips of the same run."""
    by = {(r.workload, r.system): r for r in results}
    peers = [s for s in plan.systems if s != "weft"]
    rtt = by.get(("roundtrip", TRANSPORT_SYSTEM))
    for w in plan.workloads:
        weft = by.get((w, "weft"))
        if weft is None:
            continue
        if peers:
            best = best_peer(w, [by[(w, p)] for p in peers if (w, p) in by])
            ratio, winner = compare(weft, best)
            weft.extra.update({
                "best_peer": best.system if best else None,
                "best_peer_value": best.value if best else None,
                "vs_best_peer": ratio,
                "winner": winner,
            })
            if "dask" in peers:
                weft.extra["vs_dask"] = compare(weft, by.get((w, "dask")))[0]
        if w == "chain" and rtt is not None and rtt.value and weft.value:
            weft.extra["vs_roundtrip"] = weft.value / rtt.value


def report(plan: Plan, results: list[Result]) -> dict[str, Any]:
    return {
        "machine": machine(plan.systems, plan.load_before),
        "mode": plan.mode,
        "runs": plan.runs,
        "results": [r.to_json() for r in results],
    }


def write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)


def format_value(value: float | None) -> str:
    if value is None:
        return "error"
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    if value >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"
