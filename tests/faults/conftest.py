"""Fault injection on real clusters: every role is a subprocess we can kill.

What is shared by the kill, fencing and fuzz tests:

* `make_cluster(**kw)`: a `LocalCluster` under the test's tmp dir, always
  stopped at the end (whatever was killed or stopped meanwhile);
* `storage_copies(cluster)`: every finished object on every live storage
  node, read directly from that node (not through the coordinator), so a
  wrong or second copy cannot hide behind the one `locate` picks;
* `fault_report`: where runs record their numbers. The terminal summary
  prints one table of them at the end of the session, so
  `pytest -m faults` shows it without `-s`; with `WEFT_FAULTS_REPORT=path`
  the rows are also written there as JSON lines.
"""

from __future__ import annotations

import json
import os
import re
import signal
import statistics
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trio

from weft.actors.storage.client import read_all
from weft.bus.peers import connect
from weft.localcluster.cluster import LocalCluster, Proc

from helpers import wait_for as wait_until  # noqa: F401  (re-exported to the fault tests)

START_TIMEOUT = 30.0


# -- the report ----------------------------------------------------------------------


@dataclass
class KillRun:
    """One seeded run of the DAG with one fault injected."""

    fault: str
    seed: int
    jobs: int
    lost: int  # jobs not succeeded + outputs not readable
    rerun: int  # executions beyond one per job
    lineage: int  # of which: finished jobs run again for a lost output
    wrong: int  # copies (through the client or on any storage node) that differ
    recovery: float | None  # kill -> every job the fault interrupted succeeded
    total: float  # kill -> every job of the DAG done
    notes: str = ""


@dataclass
class FuzzRun:
    role: str
    seed: int
    envelopes: int
    replies: int
    errors: dict[str, int] = field(default_factory=dict)  # error code -> count
    internal: int = 0  # answers `internal`: a handler raised without a code
    seconds: float = 0.0


class FaultReport:
    def __init__(self) -> None:
        self.kills: list[KillRun] = []
        self.fuzz: list[FuzzRun] = []

    def add(self, row: KillRun | FuzzRun) -> None:
        (self.kills if isinstance(row, KillRun) else self.fuzz).append(row)
        path = os.environ.get("WEFT_FAULTS_REPORT")
        if path:
            with open(path, "a") as f:
                f.write(json.dumps({"kind": type(row).__name__, **asdict(row)}) + "\n")

    def kill_table(self) -> list[str]:
        groups: dict[str, list[KillRun]] = {}
        for r in self.kills:
            groups.setdefault(r.fault, []).append(r)
        head = ("fault", "runs", "jobs", "lost", "rerun (lineage)", "wrong bytes",
                "recovery s (median / max)", "kill->done s (median / max)")
        rows = [head]
        for fault, runs in groups.items():
            rec = [r.recovery for r in runs if r.recovery is not None]
            tot = [r.total for r in runs]
            rows.append((
                fault, str(len(runs)), str(sum(r.jobs for r in runs)), str(sum(r.lost for r in runs)),
                f"{sum(r.rerun for r in runs)} ({sum(r.lineage for r in runs)})",
                str(sum(r.wrong for r in runs)),
                f"{statistics.median(rec):.1f} / {max(rec):.1f}" if rec else "-",
                f"{statistics.median(tot):.1f} / {max(tot):.1f}",
            ))
        return _table(rows)

    def fuzz_table(self) -> list[str]:
        head = ("role", "seed", "envelopes", "answered", "error codes", "internal", "seconds")
        rows = [head]
        for r in self.fuzz:
            codes = ", ".join(f"{k} {v}" for k, v in sorted(r.errors.items(), key=lambda kv: -kv[1])[:6])
            rows.append((r.role, str(r.seed), str(r.envelopes), str(r.replies), codes, str(r.internal),
                         f"{r.seconds:.1f}"))
        return _table(rows)


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    fmt = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"  # noqa: E731
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return [fmt(rows[0]), sep, *(fmt(r) for r in rows[1:])]


_REPORT = pytest.StashKey[FaultReport]()


def _report(config: pytest.Config) -> FaultReport:
    if _REPORT not in config.stash:
        config.stash[_REPORT] = FaultReport()
    return config.stash[_REPORT]


@pytest.fixture(scope="session")
def fault_report(pytestconfig: pytest.Config) -> FaultReport:
    return _report(pytestconfig)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    report = config.stash.get(_REPORT, None)
    if report is None:
        return
    if report.kills:
        terminalreporter.section("weft fault injection")
        for line in (
            "lost: jobs not succeeded + outputs not readable; wrong bytes: outputs (through the client,"
            " and every copy on every live storage node) that differ from the bytes computed in Python;",
            "rerun: executions beyond one per job (lineage: of which the coordinator reran a finished job"
            " for a lost output); recovery: from the kill (or SIGSTOP) until every job that was running"
            " at that moment (for a compute node: on it) has succeeded; kill->done: until the whole DAG is.",
        ):
            terminalreporter.write_line(line)
        for line in report.kill_table():
            terminalreporter.write_line(line)
    if report.fuzz:
        terminalreporter.section("weft wire fuzzer")
        for line in report.fuzz_table():
            terminalreporter.write_line(line)


# -- clusters ------------------------------------------------------------------------


@pytest.fixture
def make_cluster(tmp_path: Path) -> Iterator[Callable[..., LocalCluster]]:
    """`make_cluster(compute=2, storage=2, slots=2, coordinator_args=[...])`, stopped at the end."""
    with ExitStack() as stack:
        n = 0

        def make(**kw: Any) -> LocalCluster:
            nonlocal n
            n += 1
            cluster = LocalCluster(tmp_path / f"cluster-{n}", log_level="info", **kw)
            cluster.start(timeout=START_TIMEOUT)
            stack.callback(stop_cluster, cluster)
            return cluster

        yield make


def stop_cluster(cluster: LocalCluster) -> None:
    # A node left SIGSTOPped would ignore SIGTERM until its grace ran out.
    for p in cluster.procs:
        p.signal(signal.SIGCONT)
    cluster.stop(grace=5.0)


def kill(proc: Proc, sig: int = signal.SIGKILL, timeout: float = 10.0) -> None:
    """Send `sig` (SIGKILL: and reap the process, closing its log handle)."""
    proc.signal(sig)
    if sig == signal.SIGKILL:
        proc.popen.wait(timeout)
        proc._log.close()


# -- reading storage directly --------------------------------------------------------


def storage_copies(endpoints: list[str], prefix: str = "", timeout: float = 60.0) -> dict[str, dict[str, Any]]:
    """{storage endpoint: {object name: info + "data" for finished objects}}."""

    async def one(endpoint: str, out: dict[str, dict[str, Any]]) -> None:
        async with connect(endpoint, "faults-reader", timeout=10.0) as peer:
            listing = await peer.call("list", {"prefix": prefix})
            objs: dict[str, Any] = {}
            for info in listing["objects"]:
                if info["state"] == "finished":
                    info = dict(info, data=await read_all(peer, info["name"]))
                objs[info["name"]] = info
            out[endpoint] = objs

    async def main() -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        with trio.fail_after(timeout):
            for ep in endpoints:
                await one(ep, out)
        return out

    return trio.run(main)


def node_call(endpoint: str, op: str, body: Any = None, timeout: float = 10.0) -> Any:
    """One call to one daemon, from synchronous test code."""

    async def main() -> Any:
        async with connect(endpoint, "faults-probe", timeout=timeout) as peer:
            return await peer.call(op, body if body is not None else {})

    try:
        return trio.run(main)
    except BaseExceptionGroup as eg:  # connect's nursery wraps what the call raised
        if len(eg.exceptions) == 1:
            raise eg.exceptions[0] from None
        raise


def live_storage_endpoints(cluster: LocalCluster) -> list[str]:
    return [p.endpoint for p in cluster.storages if p.alive() and p.endpoint]


def stuck_report(cluster: LocalCluster, client: Any, jobs: list[str]) -> str:
    """Why jobs are stuck, for a failure message: the coordinator's view of
    each, what every live compute node holds of them, and the daemons' log
    lines that name them (the last few of each)."""
    lines = [f"status: {client.status(jobs)}", f"nodes: {client.nodes()}"]
    for p in cluster.computes:
        if p.alive() and p.endpoint:
            try:
                tasks = node_call(p.endpoint, "list", {}, timeout=5.0).get("tasks") or []
            except Exception as e:  # noqa: BLE001 (a diagnostic: say what failed, go on)
                lines.append(f"{p.node_id} list: {e}")
                continue
            lines.append(f"{p.node_id} holds: {[t for t in tasks if t.get('job') in jobs]}")
    for f in sorted((cluster.data_dir / "logs").glob("*.log")):
        hits = [ln for ln in f.read_text(errors="replace").splitlines() if any(j in ln for j in jobs)]
        lines += [f"{f.name}: {ln}" for ln in hits[-8:]]
    return "\n".join(lines)


# -- logs ----------------------------------------------------------------------------

_PROBLEM = re.compile(r"^\S+ (error|critical) |Traceback|internal error")


def log_problems(cluster: LocalCluster, limit: int = 12) -> list[str]:
    """Lines of the daemons' logs that say something went wrong inside a daemon."""
    out = []
    for f in sorted((cluster.data_dir / "logs").glob("*.log")):
        for line in f.read_text(errors="replace").splitlines():
            if _PROBLEM.search(line):
                out.append(f"{f.stem}: {line.strip()[:300]}")
    return out[:limit]


def log_sizes(cluster: LocalCluster) -> dict[Path, int]:
    return {f: f.stat().st_size for f in (cluster.data_dir / "logs").glob("*.log")}


def log_errors(cluster: LocalCluster, since: dict[Path, int] | None = None,
               known: list[tuple[str, str]] | tuple = ()) -> list[str]:
    """Error and critical lines the daemons logged (after `since`), each with
    the last line of its traceback, other than the `known` (line, exception)
    substring pairs."""
    out = []
    for f in sorted((cluster.data_dir / "logs").glob("*.log")):
        with open(f, "rb") as fh:
            fh.seek((since or {}).get(f, 0))
            lines = fh.read().decode(errors="replace").splitlines()
        for i, line in enumerate(lines):
            if not re.match(r"^\S+ (error|critical) ", line):
                continue
            exc = ""
            for nxt in lines[i + 1:i + 60]:
                if re.match(r"^\d\d:\d\d:", nxt):
                    break  # the next log line
                text = nxt.strip()
                if text and not nxt.startswith((" ", "\t", "Traceback", "+", "|")):
                    exc = text
                elif text.startswith("| ") and "Error" in text:
                    exc = text
            if not any(a in line and b in exc for a, b in known):
                out.append(f"{f.stem}: {line.strip()[:200]} / {exc[:200]}")
    return out


