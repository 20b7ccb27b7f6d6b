"""What the dashboard shows, read from the coordinator's state through the views its ops use.

Every function here is plain (no await) and runs on the coordinator's trio
loop between its other work, so it sees one consistent state; nothing is
copied or kept between requests, so an idle dashboard costs nothing. Lists
are filtered and paged here, on the server: a page of a 100,000-job
listing sends only that page.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from typing import Any

# Shown per page at most, and jobs drawn in one DAG at most.
MAX_PAGE = 500
MAX_DAG = 400
RECENT_FAILURES = 200


class NotFound(LookupError):
    """No such job (or flow or group): the message says which."""


def stats(node: Any) -> dict[str, Any]:
    # The `stats` op's own answer (one pass over the jobs).
    return {**node._op_stats({}, None), "time": time.time()}


_shared: dict[int, tuple[float, dict[str, Any]]] = {}
# Counts by state over time, as the streams computed them (while any page was open): a page opened
# later draws what came before it. HISTORY samples at most (10 minutes at one a second).
HISTORY = 600
_history: dict[int, deque] = {}


def shared_stats(node: Any, fresh: float = 0.5) -> dict[str, Any]:
    """stats(), shared by every open page's stream for `fresh` seconds: one pass a tick, not one per page."""
    now = time.monotonic()
    hit = _shared.get(id(node))
    if hit is None or now - hit[0] > fresh:
        hit = _shared[id(node)] = (now, stats(node))
        _history.setdefault(id(node), deque(maxlen=HISTORY)).append(
            {"time": hit[1]["time"], "jobs": hit[1]["jobs"]})
    return hit[1]


def history(node: Any) -> list[dict[str, Any]]:
    return list(_history.get(id(node), ()))


def brief(node: Any, jid: str) -> dict[str, Any]:
    """A job's summary (state, node, attempts, ...), as `weft status` starts it."""
    from weft.bus.errors import BusError

    try:
        return node._job(jid, None).summary()
    except BusError as e:
        raise NotFound(e.message) from None


def nodes(node: Any) -> list[dict[str, Any]]:
    now = time.time()
    out = node._op_nodes({}, None)["nodes"]
    for n in out:
        n["quiet"] = round(max(0.0, now - n.get("last_seen", now)), 3)
    return out


def _matches(j: Any, labels: dict[str, str], states: set[str], group: str | None, flow: str | None,
             name: str | None) -> bool:
    if states and j.shown_state not in states:
        return False
    if group is not None and group not in j.spec.groups:
        return False
    if flow is not None and not labels.get(j.id, "").startswith(flow + ":"):
        return False
    if name is not None:
        shown = j.spec.name or ""
        if name not in shown and name not in j.id and name not in labels.get(j.id, ""):
            return False
    return True


def row(j: Any, labels: dict[str, str], now: float) -> dict[str, Any]:
    """One line of the jobs table: the `jobs` op's view, plus where it belongs."""
    v = j.summary(now)
    if j.ran_on is not None and "node" not in v:
        v["node"] = j.ran_on
    if j.spec.groups:
        v["groups"] = j.spec.groups
    label = labels.get(j.id)
    if label is not None:
        v["flow"] = label
    v["age"] = round(max(0.0, now - j.submitted), 3)
    return v


def jobs(node: Any, *, state: str | None = None, group: str | None = None, flow: str | None = None,
         name: str | None = None, offset: int = 0, limit: int = 50) -> dict[str, Any]:
    """The newest jobs first, filtered; `total` is how many match.

    One pass, newest first (the jobs table holds jobs in submit order), with
    no sort and no list of all matches: only the page is kept.
    """
    g = node.graph
    labels = g.labels
    states = {s for s in (state or "").split(",") if s}
    limit = max(1, min(limit, MAX_PAGE))
    offset = max(0, offset)
    page = []
    if not (states or group or flow or name):
        total = len(g.jobs)
        for j in reversed(g.jobs.values()):
            if len(page) >= offset + limit:
                break
            page.append(j)
        page = page[offset:]
    else:
        total = 0
        for j in reversed(g.jobs.values()):
            if _matches(j, labels, states, group, flow, name):
                total += 1
                if offset < total <= offset + limit:
                    page.append(j)
    now = time.time()
    return {"jobs": [row(j, labels, now) for j in page], "total": total, "offset": offset, "limit": limit}


def _producer(g: Any, ref: str) -> str | None:
    obj = g.objects.get(g.names.resolve_object(ref)) if "/" in ref else None
    if obj is not None:
        return obj.producer
    return ref.split("/", 1)[0] or None


def job(node: Any, jid: str) -> dict[str, Any]:
    """One job as `weft status JOB --attempts` shows it, with its neighbours, outputs and provenance."""
    from weft.bus.errors import BusError

    try:
        j = node._job(jid, None)
    except BusError as e:
        raise NotFound(e.message) from None
    g = node.graph
    now = time.time()
    d = node._view(j, now, detail=True, tries=True)
    d["spec"] = {k: v for k, v in (("command", j.spec.command), ("call", j.spec.call),
                                   ("outputs", list(j.spec.outputs)), ("priority", j.spec.priority))
                 if v is not None}
    deps = [p for p in (_producer(g, r) for r in j.spec.refs.values()) if p] if j.spec.refs else []
    deps += [g.names.resolve(a) for a in j.spec.after or ()]
    mine = set(j.outputs())
    dependents = []
    for other in g.jobs.values():
        refs = other.spec.refs
        if (refs and any(g.names.resolve_object(r) in mine for r in refs.values())) or (
                other.spec.after and j.id in (g.names.resolve(a) for a in other.spec.after)):
            dependents.append(other.id)
            if len(dependents) >= MAX_DAG:
                break
    d["dependencies"] = [_brief(g, x) for x in dict.fromkeys(deps)]
    d["dependents"] = [_brief(g, x) for x in dependents]
    chain = []
    cur = j
    while cur.parent and len(chain) < 50:  # who delegated to it, up to the first
        cur = g.jobs.get(cur.parent)
        if cur is None:
            break
        chain.insert(0, cur.id)
    chain.append(j.id)
    cur = j
    while cur.delegate and len(chain) < 100:  # whom it handed its output to, down to the last
        cur = g.jobs.get(cur.delegate)
        if cur is None:
            break
        chain.append(cur.id)
    d["delegation"] = chain if len(chain) > 1 else []
    d["outputs_detail"] = [_object(node, name) for name in j.outputs()]
    d["provenance"] = provenance(j, d.get("attempt_list") or [])
    return d


def provenance(j: Any, attempts: list[dict[str, Any]]) -> str:
    """How its outputs came to be: made once, remade by lineage, or not made (yet)."""
    made = [a for a in attempts if a.get("outcome") in ("success", "succeeded")]
    if j.state != "succeeded":
        return "not made yet" if not j.done else "not made: the job did not succeed"
    if len(made) > 1 or (j.cause or "").startswith("output "):
        return f"remade by lineage (attempt {len(attempts)}): {j.cause or 'an output was lost'}"
    if j.delegate:
        return f"delegated: its output is the one {j.delegate} made"
    return "made by its own run" + (f" on {j.ran_on}" if j.ran_on else "") + "; later submits of it are answered from it (cached)"


def _brief(g: Any, jid: str) -> dict[str, Any]:
    j = g.jobs.get(jid)
    if j is None:
        return {"job": jid, "state": "forgotten"}
    out = {"job": jid, "state": j.shown_state}
    name = g.labels.get(jid) or j.spec.name
    if name:
        out["name"] = name
    return out


def _object(node: Any, name: str) -> dict[str, Any]:
    obj = node.graph.objects.get(name)
    if obj is None:
        return {"object": name, "state": "unknown"}
    return {"object": name, "state": obj.state, "size": obj.size, "copies": list(obj.locs)}


def dag(node: Any, *, flow: str | None = None, group: str | None = None) -> dict[str, Any]:
    """A flow's or group's jobs and the edges among them (input and `after`), oldest first."""
    if not flow and not group:
        raise NotFound("give a flow or a group")
    g = node.graph
    labels = g.labels
    members = [j for j in g.jobs.values() if _matches(j, labels, set(), group, flow, None)]
    if not members:
        raise NotFound(f"no jobs in {'flow' if flow else 'group'} {flow or group!r}")
    members.sort(key=lambda j: j.seq)
    total = len(members)
    members = members[-MAX_DAG:]
    ids = {j.id for j in members}
    edges = []
    for j in members:
        for r in (j.spec.refs or {}).values():
            p = _producer(g, r)
            if p in ids:
                edges.append([p, j.id])
        for a in j.spec.after or ():
            p = g.names.resolve(a)
            if p in ids:
                edges.append([p, j.id])
    jobs_out = []
    for j in members:
        item = _brief(g, j.id)
        item["label"] = labels.get(j.id, j.spec.name or j.id).split(":", 1)[-1]
        jobs_out.append(item)
    return {"jobs": jobs_out, "edges": edges, "total": total,
            "counts": dict(Counter(str(j.shown_state) for j in members))}


def failures(node: Any) -> dict[str, Any]:
    """Failed and cancelled jobs grouped by code, the newest of each first."""
    now = time.time()
    labels = node.graph.labels
    by: dict[str, list[Any]] = {}
    for j in node.graph.jobs.values():
        if j.code is not None:
            by.setdefault(str(j.code), []).append(j)
    out = []
    for code, js in sorted(by.items(), key=lambda kv: -len(kv[1])):
        js.sort(key=lambda j: j.finished or 0, reverse=True)
        out.append({"code": code, "count": len(js), "recent": [row(j, labels, now) for j in js[:20]]})
    return {"codes": out}
