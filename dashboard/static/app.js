// weft dashboard: one page, views by URL hash, data from /api/, live updates by server-sent events.
// No framework and no CDN: the machines it runs on may have no internet.
"use strict";

// Errors the page meets are kept in #console-errors (the browser tests read it from the DOM).
const seenErrors = [];
function noteError(text) {
  seenErrors.push(String(text));
  const el = document.getElementById("console-errors");
  if (el) { el.textContent = seenErrors.join("\n"); el.hidden = false; }
}
window.addEventListener("error", (e) => noteError(e.message || ("failed to load " + (e.target && (e.target.src || e.target.href)))), true);
window.addEventListener("unhandledrejection", (e) => noteError("unhandled: " + (e.reason && e.reason.message || e.reason)));
const consoleError = console.error.bind(console);
console.error = (...args) => { noteError(args.join(" ")); consoleError(...args); };

const STATES = ["waiting", "runnable", "running", "succeeded", "failed", "cancelled"];
const COLORS = { waiting: "#9aa3ad", runnable: "#d9a400", running: "#2d6cdf", succeeded: "#2e9e5b",
  failed: "#d64545", cancelled: "#8a5cc2", forgotten: "#c8ccd1" };
const SVGNS = "http://www.w3.org/2000/svg";

// h("td", {class: "num"}, "text", child...): elements built from text, never from HTML strings.
function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v); else el.setAttribute(k, v);
  }
  for (const kid of kids.flat(Infinity)) if (kid !== undefined && kid !== null) el.append(kid instanceof Node ? kid : String(kid));
  return el;
}
function s(tag, attrs, ...kids) {
  const el = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  for (const kid of kids.flat(Infinity)) if (kid !== undefined && kid !== null) el.append(kid instanceof Node ? kid : String(kid));
  return el;
}
function progressBar(p) {
  if (!p) return "";
  const pct = Math.max(0, Math.min(100, p[0]));
  return h("span", { class: "progress", title: p[1] || "", "data-progress": pct },
    h("span", { class: "bar" }, h("span", { class: "fill", style: `width:${pct}%` })), ` ${pct.toFixed(0)}% ${p[1] || ""}`);
}
const stateBadge = (st) => h("span", { class: "state " + st, "data-state": st }, st);
const jobLink = (id, text) => h("a", { href: "#/job/" + encodeURIComponent(id) }, text || id);
function secs(v) {
  if (v === undefined || v === null) return "";
  if (v < 1) return (v * 1000).toFixed(0) + " ms";
  if (v < 120) return v.toFixed(1) + " s";
  if (v < 7200) return (v / 60).toFixed(1) + " min";
  return (v / 3600).toFixed(1) + " h";
}
function bytes(n) {
  if (n === undefined || n === null) return "";
  const u = ["B", "KiB", "MiB", "GiB", "TiB"]; let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + " " + u[i];
}
async function api(path) {
  const r = await fetch(path, { headers: { Accept: "application/json" } });
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}
function table(heads, rows) {
  return h("table", {}, h("thead", {}, h("tr", {}, heads.map((x) => h("th", { class: x.num ? "num" : null }, x.t || x)))),
    h("tbody", {}, rows));
}
const main = () => document.getElementById("main");
function show(...kids) { main().replaceChildren(...kids.flat(Infinity)); }
function ready(view) { document.body.dataset.view = view; document.body.dataset.ready = "1"; }

// -- live updates -------------------------------------------------------------------------------
let stream = null;
const countsHistory = [];  // counts by state over time, since the page was opened
let onStats = null, onJob = null, onLog = null;
function openStream(params) {
  if (stream) stream.close();
  stream = new EventSource("/api/stream" + (params ? "?" + params : ""));
  const live = document.getElementById("live");
  stream.onopen = () => { live.textContent = "live"; live.className = "live on"; };
  stream.onerror = () => { live.textContent = "reconnecting"; live.className = "live off"; };
  stream.addEventListener("stats", (e) => {
    const d = JSON.parse(e.data);
    countsHistory.push(d); if (countsHistory.length > 600) countsHistory.shift();
    if (onStats) onStats(d);
  });
  stream.addEventListener("history", (e) => {
    // What the coordinator kept from earlier pages: drawn before this page's own samples.
    const earlier = JSON.parse(e.data).filter((p) => !countsHistory.length || p.time < countsHistory[0].time);
    countsHistory.unshift(...earlier);
    while (countsHistory.length > 600) countsHistory.shift();
  });
  stream.addEventListener("job", (e) => onJob && onJob(JSON.parse(e.data)));
  stream.addEventListener("log", (e) => onLog && onLog(JSON.parse(e.data)));
}

// -- views ------------------------------------------------------------------------------------
async function clusterView() {
  const [st, nd] = await Promise.all([api("/api/stats"), api("/api/nodes")]);
  const tiles = h("div", { class: "tiles", id: "tiles" });
  const nodes = h("div", { id: "nodes" });
  const fill = (st, nodesList) => {
    tiles.replaceChildren(
      ...STATES.map((k) => h("div", { class: "tile", "data-count": k }, h("b", {}, st.jobs[k] || 0), h("span", {}, k))),
      h("div", { class: "tile" }, h("b", {}, `${st.busy}/${st.slots}`), h("span", {}, "slots busy")),
      h("div", { class: "tile" }, h("b", {}, st.computes), h("span", {}, "compute nodes")),
      h("div", { class: "tile" }, h("b", {}, st.storages), h("span", {}, "storage nodes")));
    if (nodesList) nodes.replaceChildren(nodesTable(nodesList));
  };
  fill(st, nd.nodes);
  show(h("h1", {}, "Cluster"), tiles, h("h2", {}, "Nodes"), nodes);
  let pending = false;
  onStats = async (d) => {
    if (pending) return; pending = true;
    try { fill(d, (await api("/api/nodes")).nodes); } finally { pending = false; }
  };
  openStream("");
  ready("cluster");
}
function nodesTable(list) {
  list.sort((a, b) => (a.role + a.node).localeCompare(b.role + b.node));
  const state = (n) => !n.ready ? "not ready" : n.drained ? "drained" : n.role === "compute" ? (n.busy ? "busy" : "idle") : "ready";
  return table(["node", "role", "host", "endpoint", { t: "slots busy", num: 1 }, { t: "memory used", num: 1 }, { t: "objects", num: 1 }, { t: "disk used / free", num: 1 }, "state", { t: "last heard", num: 1 }],
    list.map((n) => h("tr", { "data-node": n.node, "data-state": state(n) },
      h("td", { class: "mono" }, n.node), h("td", {}, n.role), h("td", { class: "mono" }, n.host || ""),
      h("td", { class: "mono" }, n.endpoint || ""),
      h("td", { class: "num" }, n.role === "compute" ? `${n.busy}/${n.slots}` : ""),
      h("td", { class: "num" }, n.role === "compute" && n.memory ? `${bytes(n.memory_used || 0)} / ${bytes(n.memory)}` : ""),
      h("td", { class: "num" }, n.role === "storage" ? n.objects : ""),
      h("td", { class: "num" }, n.role === "storage" ? `${bytes(n.bytes || 0)} / ${bytes(n.free)}` : ""),
      h("td", {}, state(n)), h("td", { class: "num" }, secs(n.quiet) + " ago"))));
}

function countsChart() {
  const W = Math.max(400, (main().clientWidth || 940) - 40), H = 160, svg = s("svg", { width: W, height: H + 20, id: "counts-chart", role: "img" });
  if (countsHistory.length < 2) { svg.append(s("text", { x: 8, y: 20, fill: "#6b7480" }, "counts by state over time: gathering…")); return svg; }
  const pts = countsHistory.slice(-300), t0 = pts[0].time, t1 = pts[pts.length - 1].time || t0 + 1;
  const total = Math.max(1, ...pts.map((p) => STATES.reduce((a, k) => a + (p.jobs[k] || 0), 0)));
  const x = (t) => 40 + (W - 50) * (t - t0) / Math.max(1e-9, t1 - t0), y = (v) => H - (H - 10) * v / total;
  let below = pts.map(() => 0);
  for (const k of STATES) {
    const top = pts.map((p, i) => below[i] + (p.jobs[k] || 0));
    const d = pts.map((p, i) => `${i ? "L" : "M"}${x(p.time).toFixed(1)},${y(top[i]).toFixed(1)}`).join("") +
      pts.slice().reverse().map((p, j) => `L${x(p.time).toFixed(1)},${y(below[pts.length - 1 - j]).toFixed(1)}`).join("") + "Z";
    svg.append(s("path", { d, fill: COLORS[k], opacity: 0.85 }));
    below = top;
  }
  svg.append(s("text", { x: 2, y: 12 }, String(total)), s("text", { x: 2, y: H }, "0"),
    s("text", { x: 40, y: H + 16, fill: "#6b7480" }, `last ${secs(t1 - t0)}`));
  return svg;
}
function legend() { return h("div", { class: "legend" }, STATES.map((k) => h("span", {}, h("span", { class: "state " + k }, k)))); }

async function jobsView(params) {
  const q = new URLSearchParams(params);
  const offset = Number(q.get("offset") || 0), limit = 50;
  const form = h("form", { class: "filters", id: "filters" },
    h("select", { name: "state" }, h("option", { value: "" }, "any state"),
      STATES.map((k) => h("option", { value: k, selected: q.get("state") === k ? "selected" : null }, k))),
    h("input", { name: "name", placeholder: "name or id", value: q.get("name") || "" }),
    h("input", { name: "flow", placeholder: "flow", value: q.get("flow") || "" }),
    h("input", { name: "group", placeholder: "group", value: q.get("group") || "" }),
    h("button", { type: "submit" }, "filter"));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const p = new URLSearchParams();
    for (const [k, v] of new FormData(form)) if (v) p.set(k, v);
    location.hash = "#/jobs?" + p.toString();
  });
  const chart = h("div", { class: "graph", id: "chart" }, countsChart());
  const body = h("div", { id: "jobs-table" });
  const load = async () => {
    const p = new URLSearchParams(q); p.set("offset", offset); p.set("limit", limit);
    const d = await api("/api/jobs?" + p.toString());
    const now = Date.now() / 1000;
    const rows = d.jobs.map((j) => h("tr", { "data-job": j.job, "data-state": j.state },
      h("td", { class: "mono" }, jobLink(j.job, j.flow || j.name || j.job)), h("td", {}, stateBadge(j.state)),
      h("td", { class: "mono" }, j.node || ""), h("td", { class: "num" }, secs(j.age)),
      h("td", { class: "num" }, secs(j.ran)), h("td", {}, progressBar(j.progress)), h("td", { class: "num" }, j.attempts),
      h("td", {}, j.code ? h("span", { class: "error" }, j.code) : "", " ", j.cause || "")));
    const pager = h("div", { class: "pager" },
      offset > 0 ? h("a", { href: "#/jobs?" + withParam(q, "offset", Math.max(0, offset - limit)) }, "← newer") : "",
      h("span", { id: "total", "data-total": d.total }, `${d.total ? offset + 1 : 0}–${offset + d.jobs.length} of ${d.total}`),
      offset + limit < d.total ? h("a", { href: "#/jobs?" + withParam(q, "offset", offset + limit) }, "older →") : "");
    body.replaceChildren(pager, table(["job", "state", "node", { t: "age", num: 1 }, { t: "runtime", num: 1 }, "progress", { t: "tries", num: 1 }, "cause"], rows));
    void now;
  };
  await load();
  show(h("h1", {}, "Jobs"), h("h2", {}, "Counts by state"), legend(), chart, h("h2", {}, "Jobs"), form, body);
  let last = 0, pending = false;
  onStats = async () => {
    chart.replaceChildren(countsChart());
    if (pending || Date.now() - last < 2000) return;  // the table follows at most every 2 s
    pending = true; last = Date.now();
    try { await load(); } finally { pending = false; }
  };
  openStream("");
  ready("jobs");
}
function withParam(q, k, v) { const p = new URLSearchParams(q); p.set(k, v); return p.toString(); }

async function jobView(id) {
  const d = await api("/api/jobs/" + encodeURIComponent(id));
  const head = h("div", { id: "job-head" });
  const fillHead = (v) => head.replaceChildren(h("h1", {}, d.flow || d.name || d.job, " ", stateBadge(v.state)),
    h("p", { class: "muted" }, v.code ? `${v.code}: ${d.message || v.cause || ""}` : (v.cause || "")),
    h("p", {}, d.flow ? ["flow ", h("a", { href: "#/flow/" + encodeURIComponent(d.flow.split(":")[0]), id: "flow-link" }, d.flow.split(":")[0])] : "",
      (d.groups || []).map((g) => [" group ", h("a", { href: "#/group/" + encodeURIComponent(g) }, g)])));
  fillHead(d);
  const kv = (pairs) => h("dl", { class: "kv" }, pairs.filter((p) => p[1] !== undefined && p[1] !== null && p[1] !== "")
    .map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
  const spec = h("div", { id: "spec" }, kv([["id", h("span", { class: "mono" }, d.job)], ["command", d.command ? h("code", {}, d.command.join(" ")) : null],
    ["call", d.call], ["node", d.node || d.ran_on], ["submitted", new Date(d.submitted * 1000).toLocaleString()],
    ["waited", secs(d.waited)], ["runtime", secs(d.ran)], ["progress", d.progress ? progressBar(d.progress) : null], ["groups", (d.groups || []).join(", ")],
    ["exit code", d.exit_code], ["outputs came from", h("span", { id: "provenance" }, d.provenance)]]));
  const byId = Object.fromEntries((d.dependencies || []).map((x) => [x.job, x.name || x.job]));
  const inputs = Object.entries(d.refs || {}).map(([k, v]) => h("tr", {}, h("td", {}, k), h("td", { class: "mono" }, jobLink(v.split("/")[0], (byId[v.split("/")[0]] || v.split("/")[0]) + "/" + v.split("/").slice(1).join("/")))));
  for (const [k, v] of Object.entries(d.inputs || {})) if (!(d.refs || {})[k]) inputs.push(h("tr", {}, h("td", {}, k), h("td", { class: "mono" }, v)));
  const outputs = (d.outputs_detail || []).map((o) => h("tr", {}, h("td", { class: "mono" }, o.object), h("td", {}, o.state),
    h("td", { class: "num" }, bytes(o.size)), h("td", { class: "mono" }, (o.copies || []).join(", "))));
  const attempts = (d.attempt_list || []).map((a) => h("tr", {}, h("td", { class: "num" }, a.n), h("td", { class: "mono" }, a.node || ""),
    h("td", {}, a.outcome || ""), h("td", {}, a.code || ""), h("td", {}, a.exit_code ?? ""),
    h("td", { class: "num" }, a.started && a.ended ? secs(a.ended - a.started) : "")));
  const log = h("pre", { class: "log", id: "log" }, "");
  let logText = "";
  const chain = (d.delegation || []).length ? h("p", { id: "delegation" }, d.delegation.map((x, i) => [i ? " → " : "", jobLink(x)])) : h("p", { class: "muted" }, "none");
  show(head, h("div", { class: "grid2" },
    h("div", {}, h("h2", {}, "Spec"), spec, h("h2", {}, "Inputs"), inputs.length ? table(["input", "from"], inputs) : h("p", { class: "muted" }, "none"),
      h("h2", {}, "Outputs"), outputs.length ? table(["object", "state", { t: "size", num: 1 }, "copies"], outputs) : h("p", { class: "muted" }, "none"),
      h("h2", {}, "Attempts"), attempts.length ? table([{ t: "#", num: 1 }, "node", "outcome", "code", "exit", { t: "ran", num: 1 }], attempts) : h("p", { class: "muted" }, "none yet"),
      h("h2", {}, "Delegation"), chain),
    h("div", {}, h("h2", {}, "Dependencies and dependents"), h("div", { class: "graph", id: "deps" }, depsGraph(d)),
      h("h2", {}, "Log (live tail)"), log)));
  onJob = (v) => fillHead(v);
  onLog = (c) => {
    logText = (logText + c.data).slice(-65536);  // the tail: 64 KiB
    log.textContent = logText; log.dataset.bytes = c.offset; log.scrollTop = log.scrollHeight;
  };
  onStats = null;
  openStream("job=" + encodeURIComponent(d.job) + "&offset=0");
  ready("job");
}

function depsGraph(d) {
  const cols = [d.dependencies || [], [{ job: d.job, state: d.state, name: d.flow || d.name }], d.dependents || []];
  const rows = Math.max(1, ...cols.map((c) => c.length)), W = 620, CW = 180, BH = 26, GAP = 12;
  const svg = s("svg", { width: W, height: rows * (BH + GAP) + 20, id: "deps-svg" }, arrowDefs());
  const pos = cols.map((c, ci) => c.map((n, i) => [20 + ci * (CW + 40), 10 + i * (BH + GAP) + (rows - c.length) * (BH + GAP) / 2]));
  const mid = pos[1][0];
  cols.forEach((c, ci) => c.forEach((n, i) => {
    const [x, y] = pos[ci][i];
    if (ci === 0) svg.append(s("path", { d: `M${x + CW},${y + BH / 2}C${x + CW + 20},${y + BH / 2} ${mid[0] - 20},${mid[1] + BH / 2} ${mid[0]},${mid[1] + BH / 2}`, stroke: "#9aa3ad", fill: "none", "marker-end": "url(#arrow)" }));
    if (ci === 2) svg.append(s("path", { d: `M${mid[0] + CW},${mid[1] + BH / 2}C${mid[0] + CW + 20},${mid[1] + BH / 2} ${x - 20},${y + BH / 2} ${x},${y + BH / 2}`, stroke: "#9aa3ad", fill: "none", "marker-end": "url(#arrow)" }));
  }));
  cols.forEach((c, ci) => c.forEach((n, i) => svg.append(box(pos[ci][i][0], pos[ci][i][1], CW, BH, n, (n.name || n.job)))));
  return svg;
}
// An arrowhead for edges (dependency -> dependent).
function arrowDefs() {
  return s("defs", {}, s("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
    s("path", { d: "M0,0L10,5L0,10z", fill: "#9aa3ad" })));
}
function box(x, y, w, hgt, n, label) {
  const a = s("a", { href: "#/job/" + encodeURIComponent(n.job), "data-job": n.job, "data-state": n.state });
  const text = label.length > 26 ? label.slice(0, 25) + "…" : label;
  a.append(s("rect", { x, y, width: w, height: hgt, rx: 5, fill: COLORS[n.state] || "#9aa3ad" }),
    s("text", { x: x + 8, y: y + hgt / 2 + 4, fill: "#fff" }, text), s("title", {}, `${n.job} (${n.state})`));
  return a;
}

async function dagView(kind, name) {
  const d = await api(`/api/dag?${kind}=` + encodeURIComponent(name));
  // Layers by longest path from a job with no dependency in the set.
  const layer = {}, ins = {};
  for (const [a, b] of d.edges) (ins[b] = ins[b] || []).push(a);
  const depth = (id, seen = new Set()) => {
    if (layer[id] !== undefined) return layer[id];
    if (seen.has(id)) return 0;
    seen.add(id);
    layer[id] = (ins[id] || []).reduce((m, p) => Math.max(m, depth(p, seen) + 1), 0);
    return layer[id];
  };
  d.jobs.forEach((j) => depth(j.job));
  const byLayer = [];
  d.jobs.forEach((j) => (byLayer[layer[j.job]] = byLayer[layer[j.job]] || []).push(j));
  const BW = 150, BH = 26, GX = 60, GY = 12, pos = {};
  byLayer.forEach((js, li) => js.forEach((j, i) => { pos[j.job] = [20 + li * (BW + GX), 10 + i * (BH + GY)]; }));
  const rows = Math.max(1, ...byLayer.map((js) => (js || []).length));
  const svg = s("svg", { width: 40 + byLayer.length * (BW + GX), height: 20 + rows * (BH + GY), id: "dag-svg" }, arrowDefs());
  for (const [a, b] of d.edges) {
    const [x1, y1] = pos[a], [x2, y2] = pos[b];
    svg.append(s("path", { d: `M${x1 + BW},${y1 + BH / 2}C${x1 + BW + 30},${y1 + BH / 2} ${x2 - 30},${y2 + BH / 2} ${x2},${y2 + BH / 2}`, stroke: "#9aa3ad", fill: "none", "marker-end": "url(#arrow)" }));
  }
  for (const j of d.jobs) svg.append(box(pos[j.job][0], pos[j.job][1], BW, BH, j, j.label));
  const counts = h("div", { class: "tiles", id: "dag-counts" }, Object.entries(d.counts).map(([k, v]) =>
    h("div", { class: "tile", "data-count": k }, h("b", {}, v), h("span", {}, k))));
  show(h("h1", {}, `${kind} ${name}`), counts, legend(),
    d.total > d.jobs.length ? h("p", { class: "muted" }, `the newest ${d.jobs.length} of ${d.total} jobs`) : "",
    h("div", { class: "graph" }, svg),
    h("p", {}, h("a", { href: `#/jobs?${kind}=` + encodeURIComponent(name) }, "as a table")));
  let pending = false;
  onStats = async () => {
    if (pending) return; pending = true;
    try {
      const n = await api(`/api/dag?${kind}=` + encodeURIComponent(name));
      for (const j of n.jobs) {
        const el = svg.querySelector(`a[data-job="${CSS.escape(j.job)}"]`);
        if (el && el.dataset.state !== j.state) { el.dataset.state = j.state; el.querySelector("rect").setAttribute("fill", COLORS[j.state] || "#9aa3ad"); }
      }
    } finally { pending = false; }
  };
  openStream("");
  ready("dag");
}

async function failuresView() {
  const d = await api("/api/failures");
  const sections = d.codes.map((c) => h("section", { "data-code": c.code },
    h("h2", {}, h("span", { class: "error" }, c.code), ` — ${c.count} job${c.count === 1 ? "" : "s"}`),
    table(["job", "state", "node", "cause"], c.recent.map((j) => h("tr", { "data-job": j.job },
      h("td", { class: "mono" }, jobLink(j.job, j.flow || j.name || j.job)), h("td", {}, stateBadge(j.state)),
      h("td", { class: "mono" }, j.node || ""), h("td", {}, j.cause || ""))))));
  show(h("h1", {}, "Recent failures by code"), sections.length ? sections : h("p", { class: "muted" }, "no failures"));
  onStats = null;
  openStream("");
  ready("failures");
}

// -- routing ------------------------------------------------------------------------------------
async function route() {
  onStats = onJob = onLog = null;
  document.body.dataset.ready = "";
  const hash = location.hash.slice(1) || "/";
  const [path, query] = hash.split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  for (const a of document.querySelectorAll("header nav a")) a.classList.toggle("active", a.dataset.view === (parts[0] || "cluster"));
  try {
    if (!parts.length) await clusterView();
    else if (parts[0] === "jobs") await jobsView(query || "");
    else if (parts[0] === "job") await jobView(parts.slice(1).join("/"));
    else if (parts[0] === "flow" || parts[0] === "group") await dagView(parts[0], parts.slice(1).join("/"));
    else if (parts[0] === "failures") await failuresView();
    else show(h("p", { class: "error" }, "no such page: " + hash));
  } catch (e) {
    show(h("p", { class: "error", id: "load-error" }, String(e.message || e)));
    ready("error");
  }
}
window.addEventListener("hashchange", route);
route();
