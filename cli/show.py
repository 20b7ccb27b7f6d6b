"""How the client commands show jobs to a person: state lines, one job's
details, what a resubmission did, a finished job's main output."""

from __future__ import annotations

import datetime
from typing import Any

from weft.actors.model import JobSpec

DONE = ("succeeded", "failed", "cancelled")
# `submit --wait` prints a main output up to this size; past it (or when it
# is not text) it says how to fetch it, so a terminal is not flooded.
PRINT_LIMIT = 256 * 1024

# A setting of an existing job that a resubmission did not change: how the
# user asked for it (flag, spec attribute).
_SETTINGS = {"time_limit": ("--time-limit", "timeout"), "priority": ("--priority", "priority"),
             "class": ("--class", "job_class")}


def final_of(st: dict[str, Any]) -> dict[str, Any]:
    return st.get("final", st)


def state_line(st: dict[str, Any]) -> str:
    final = final_of(st)
    line = f"{st['job']}  {final['state']}"
    if final.get("waiting"):
        line += f": {final['waiting']}"  # `waiting: host gpu7 unknown`
    if final.get("outcome") and final["outcome"] != "success":
        line += f" ({final['outcome']})"
    if final is not st:
        line += f"  via {final['job']}"
    if final.get("code") and final["state"] != "succeeded":
        line += f"  [{final['code']}]"
    if final.get("cause") and final["state"] != "succeeded":
        line += f"  {final['cause']}"
    if final.get("late"):
        line += "  late"
    return line


def why_not(st: dict[str, Any]) -> str:
    """`job X failed: cause` for a job that did not succeed."""
    final = final_of(st)
    what = "was cancelled" if final["state"] == "cancelled" else final["state"]
    line = f"job {st['job']} {what}"
    if final is not st:
        line += f" (via {final['job']})"
    cause = final.get("cause") or final.get("outcome")
    return f"{line}: {cause}" if cause else line


def _when(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts).astimezone().isoformat(sep=" ", timespec="seconds")


def _value(v: Any) -> str:
    if isinstance(v, bytes):
        return repr(v)
    if isinstance(v, list):
        return " ".join(map(str, v))
    if isinstance(v, dict):
        return ", ".join(f"{k}={_value(x)}" for k, x in v.items()) or "-"
    if isinstance(v, float):
        return f"{v:g}"  # 5.0 was typed as 5
    return str(v)


# The order a person reads a job in; fields the coordinator adds later are
# shown after these, as they come.
_ORDER = ("job", "flow", "name", "state", "late", "outcome", "code", "detail", "message", "command", "cmd", "call",
          "inputs", "refs", "node", "exit_code", "submitted", "started", "finished", "waited", "ran", "attempts",
          "retries", "retried", "priority", "time_limit", "pending_timeout", "on_exit", "cause", "delegate", "parent",
          "outputs")
_HIDDEN = {"final", "demand", "attempt_list", "stderr_tail", "waiting"}  # (waiting: shown with the state)


def status_lines(st: dict[str, Any]) -> list[str]:
    keys = [k for k in _ORDER if k in st] + sorted(k for k in st if k not in _ORDER and k not in _HIDDEN)
    width = max(9, *(len(k) for k in keys))
    lines = []
    for key in keys:
        v = st[key]
        if key in ("submitted", "started", "finished", "next_start") and isinstance(v, int | float):
            v = _when(v)
        elif key in ("waited", "ran") and isinstance(v, int | float):
            v = f"{v:.3f}s"
        elif key in ("time_limit", "pending_timeout") and isinstance(v, int | float):
            v = f"{v:g}s"
        elif key == "state" and st.get("waiting"):
            v = f"{v}: {st['waiting']}"  # `waiting: host gpu7 unknown`
        else:
            v = _value(v)
        lines.append(f"{key:{width}} {v}")
        if key == "cause":
            lines += tail_lines(st, width)
    if "cause" not in st:
        lines += tail_lines(st, width)
    if "final" in st:
        lines.append(f"{'final':{width}} {state_line(st['final'])}")
    return lines


def tail_lines(st: dict[str, Any], width: int = 9, indent: str = "") -> list[str]:
    """A failed command's last lines of stderr, under its message: `stderr`
    then each line after a bar, as a compiler printed it."""
    tail = st.get("stderr_tail")
    if not tail:
        return []
    return [f"{indent}{'stderr' if i == 0 else '':{width}} | {line}" for i, line in enumerate(tail.splitlines())]


def attempt_lines(attempts: list[dict[str, Any]]) -> list[str]:
    """`weft status JOB --attempts`: one line per attempt, oldest first."""
    if not attempts:
        return ["no attempts yet"]
    lines = [f"{'#':>3}  {'node':12} {'started':25} {'ran':>9}  {'outcome':11} {'exit':>4}  {'signal':6} code"]
    for a in attempts:
        started, ended = a.get("started"), a.get("ended")
        ran = f"{ended - started:.3f}s" if isinstance(started, int | float) and isinstance(ended, int | float) else "-"
        code = a.get("code") or ""
        if a.get("detail") and code not in ("exit-status", "crashed"):
            code += f" ({a['detail']})"
        sig = a.get("signal")
        lines.append(f"{a.get('n', '?'):>3}  {a.get('node') or '-':12} {_when(started) if started else '-':25} "
                     f"{ran:>9}  {a.get('outcome', '-'):11} {a.get('exit_code', '-')!s:>4}  "
                     f"{'-' if sig is None else sig!s:6} {code}".rstrip())
    return lines


def resubmission_line(job: str, state: str, differs: list[str], spec: JobSpec,
                      existing: dict[str, Any] | None, label: str = "") -> str:
    """One line for a job that already existed: what the user asked for that
    it does not take on (`differs`), and what it keeps instead."""
    where = "finished" if state == "succeeded" else state
    head = f"{label}job {job} already exists ({where})"
    if not differs:
        return head + (": not run again" if state == "succeeded" else ": joined it")
    asked, kept = [], []
    for name in differs:
        flag, attr = _SETTINGS.get(name, ("--" + name.replace("_", "-"), name))
        if label:  # a workflow file: its key, not a flag
            flag = name
        value = getattr(spec, attr, None)
        asked.append(f"{flag} {'none' if value is None else _value(value)}")
        if existing is not None and name in existing:
            kept.append("none" if existing[name] is None else _value(existing[name]))
    line = f"{head}: your {' and '.join(asked)} {'was' if len(asked) == 1 else 'were'} not applied"
    if len(kept) == len(asked):
        line += f"; it keeps {' and '.join(kept)}"
    return line


def printable(data: bytes) -> str | None:
    """`data` as text for a terminal, or None when it is binary."""
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def paused_text(paused: dict[str, Any]) -> str:
    """`cluster paused since ...; group g paused since ...`, or `nothing paused`."""
    def when(ts: float) -> str:
        return datetime.datetime.fromtimestamp(ts).astimezone().isoformat(sep=" ", timespec="seconds")
    parts = []
    if "cluster" in paused:
        parts.append(f"cluster paused since {when(paused['cluster'])}")
    for g, ts in sorted((paused.get("groups") or {}).items()):
        parts.append(f"group {g} paused since {when(ts)}")
    return "; ".join(parts) or "nothing paused"
