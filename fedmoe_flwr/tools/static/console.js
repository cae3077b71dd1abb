// fedmoe console: polls /console/api/state every 2 s and redraws in place (no page reload).
// Plain JS, no library: the charts are small SVG line charts drawn below.
"use strict";

const POLL_MS = 2000;
const MAX_POINTS = 3000;  // per series kept in the page; older points thinned past that
const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf",
                 "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22"];
const SVG_NS = "http://www.w3.org/2000/svg";

// The API key: taken from ?key= once, then dropped from the address bar and kept only here.
let apiKey = null;
const store = { cursor: null, view: null, series: {}, skew: 0, polls: 0, colors: {} };

function takeKeyFromUrl() {
  const params = new URLSearchParams(location.search);
  if (!params.has("key")) return;
  apiKey = params.get("key") || null;
  params.delete("key");
  const rest = params.toString();
  history.replaceState(null, "", location.pathname + (rest ? "?" + rest : "") + location.hash);
}

// ---------------------------------------------------------------- polling

async function poll() {
  const url = "api/state" + (store.cursor ? "?since=" + encodeURIComponent(store.cursor) : "");
  const headers = apiKey ? { Authorization: "Bearer " + apiKey } : {};
  let response;
  try {
    response = await fetch(url, { headers, cache: "no-store" });
  } catch (err) {
    setStatus("offline", "console server unreachable: retrying");
    return schedule();
  }
  if (response.status === 401) return askForKey(apiKey ? "That key was refused." : "");
  if (!response.ok) {
    setStatus("offline", "HTTP " + response.status + ": retrying");
    return schedule();
  }
  apply(await response.json());
  schedule();
}

function schedule() { setTimeout(poll, POLL_MS); }

function apply(delta) {
  if (delta.reset) {  // first poll, another run, or a rewritten file: start over
    store.series = {};
    document.querySelectorAll("#experts .card").forEach((card) => card.remove());
  }
  for (const [name, points] of Object.entries(delta.series || {})) {
    const kept = (store.series[name] = (store.series[name] || []).concat(points));
    if (kept.length > MAX_POINTS) {
      const half = Math.floor(kept.length / 2);
      store.series[name] = kept.slice(0, half).filter((_, i) => i % 2 === 0)
        .concat(kept.slice(half));
    }
  }
  store.cursor = delta.cursor;
  store.view = delta;
  store.skew = delta.run.server_time - Date.now() / 1000;
  store.polls += 1;
  document.body.dataset.cursor = delta.cursor;
  document.body.dataset.polls = String(store.polls);
  render(delta);
}

function askForKey(message) {
  setStatus("key", "API key needed");
  const form = document.getElementById("key-form");
  form.hidden = false;
  document.getElementById("key-error").textContent = message;
  document.getElementById("key-input").focus();
}

function onKeySubmit(event) {
  event.preventDefault();
  const input = document.getElementById("key-input");
  apiKey = input.value.trim() || null;
  input.value = "";
  document.getElementById("key-form").hidden = true;
  poll();
}

// ---------------------------------------------------------------- helpers

function el(tag, attrs, ...children) {
  const node = tag.startsWith("svg:") ? document.createElementNS(SVG_NS, tag.slice(4))
    : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "text") node.textContent = v;
    else node.setAttribute(k, v);
  }
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
}

function nowServer() { return Date.now() / 1000 + store.skew; }

function fmtDuration(s) {
  if (s === null || s === undefined || !isFinite(s)) return "—";
  const sign = s < 0 ? "-" : "";
  s = Math.abs(s);
  if (s < 60) return sign + s.toFixed(s < 10 ? 1 : 0) + " s";
  const m = Math.floor(s / 60), sec = Math.floor(s % 60);
  if (m < 60) return sign + m + "m " + String(sec).padStart(2, "0") + "s";
  return sign + Math.floor(m / 60) + "h " + String(m % 60).padStart(2, "0") + "m";
}

function fmtBytes(n) {
  if (n === null || n === undefined) return "—";
  if (n >= 1e9) return (n / 1e9).toFixed(2) + " GB";
  if (n >= 1e6) return (n / 1e6).toFixed(2) + " MB";
  if (n >= 1e3) return (n / 1e3).toFixed(1) + " KB";
  return n + " B";
}

function fmtNum(x, digits = 3) {
  return x === null || x === undefined || !isFinite(x) ? "—" : Number(x).toFixed(digits);
}

function colorOf(name) {
  if (!(name in store.colors)) {
    store.colors[name] = PALETTE[Object.keys(store.colors).length % PALETTE.length];
  }
  return store.colors[name];
}

function setStatus(kind, text) {
  const pill = document.getElementById("run-status");
  pill.className = "pill pill-" + kind;
  pill.textContent = text;
  document.body.dataset.status = kind;
}

// ---------------------------------------------------------------- charts

function niceTicks(lo, hi, count) {
  if (!(hi > lo)) { hi = lo + 1; }
  const raw = (hi - lo) / count, mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 2.5, 5, 10].map((f) => f * mag).find((s) => s >= raw) || raw;
  const ticks = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) ticks.push(t);
  return ticks;
}

function extent(lines, pick) {
  let lo = Infinity, hi = -Infinity;
  for (const line of lines) for (const p of line.points) {
    const v = pick(p);
    if (v === null || !isFinite(v)) continue;
    lo = Math.min(lo, v); hi = Math.max(hi, v);
  }
  return lo === Infinity ? null : [lo, hi];
}

// lines: [{label, color, points: [[x, y]], width, dots, axis: "left"|"right"}]
function drawChart(svg, lines, opts = {}) {
  const width = Math.max(200, Math.round(svg.getBoundingClientRect().width || 320));
  const height = Math.round(svg.getBoundingClientRect().height || 150);
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.replaceChildren();
  const total = lines.reduce((n, l) => n + l.points.length, 0);
  svg.dataset.points = String(total);
  if (!total) {
    svg.append(el("svg:text", { x: width / 2, y: height / 2, "text-anchor": "middle",
      class: "empty-text", text: opts.empty || "no data yet" }));
    return;
  }
  const pad = { l: 44, r: opts.right ? 40 : 10, t: 8, b: 20 };
  const xs = extent(lines, (p) => p[0]);
  const x = scale(xs[0], xs[1] > xs[0] ? xs[1] : xs[0] + 1, pad.l, width - pad.r);
  const left = lines.filter((l) => l.axis !== "right"), right = lines.filter((l) => l.axis === "right");
  const yl = axisScale(left, opts.left || {}, height - pad.b, pad.t);
  const yr = right.length ? axisScale(right, opts.right || {}, height - pad.b, pad.t) : null;
  drawGrid(svg, x, yl, yr, { width, height, pad, xFormat: opts.xFormat || fmtDuration,
    yFormat: (opts.left || {}).format, rFormat: (opts.right || {}).format });
  for (const line of lines) drawLine(svg, line, x, line.axis === "right" ? yr : yl);
}

function scale(d0, d1, r0, r1) {
  const f = (v) => r0 + ((v - d0) / (d1 - d0 || 1)) * (r1 - r0);
  f.domain = [d0, d1];
  return f;
}

function axisScale(lines, axis, bottom, top) {
  const ys = extent(lines, (p) => p[1]) || [0, 1];
  let lo = axis.min !== undefined ? Math.min(axis.min, ys[0]) : ys[0];
  let hi = axis.max !== undefined ? Math.max(axis.max, ys[1]) : ys[1];
  if (hi - lo < 1e-9) { const d = Math.abs(hi) * 0.1 || 0.5; lo -= d; hi += d; }
  const span = hi - lo;
  if (axis.min === undefined) lo -= span * 0.05;
  hi += span * 0.05;
  return scale(lo, hi, bottom, top);
}

function drawGrid(svg, x, yl, yr, g) {
  const fmt = g.yFormat || ((v) => +v.toPrecision(3));
  for (const t of niceTicks(yl.domain[0], yl.domain[1], 4)) {
    const y = yl(t);
    svg.append(el("svg:line", { x1: g.pad.l, x2: g.width - g.pad.r, y1: y, y2: y, class: "gridline" }));
    svg.append(el("svg:text", { x: g.pad.l - 4, y: y + 3, "text-anchor": "end", text: fmt(t) }));
  }
  if (yr) {
    const rfmt = g.rFormat || ((v) => +v.toPrecision(3));
    for (const t of niceTicks(yr.domain[0], yr.domain[1], 4)) {
      svg.append(el("svg:text", { x: g.width - g.pad.r + 4, y: yr(t) + 3, text: rfmt(t) }));
    }
  }
  for (const t of niceTicks(x.domain[0], x.domain[1], 5)) {
    svg.append(el("svg:text", { x: x(t), y: g.height - 5, "text-anchor": "middle",
      text: g.xFormat(t) }));
  }
  svg.append(el("svg:line", { x1: g.pad.l, x2: g.width - g.pad.r, y1: g.height - g.pad.b,
    y2: g.height - g.pad.b, class: "axis" }));
  svg.append(el("svg:line", { x1: g.pad.l, x2: g.pad.l, y1: g.pad.t, y2: g.height - g.pad.b,
    class: "axis" }));
}

function drawLine(svg, line, x, y) {
  const pts = line.points.filter((p) => p[1] !== null && isFinite(p[1]));
  if (!pts.length) return;
  const d = pts.map((p, i) => (i ? "L" : "M") + x(p[0]).toFixed(1) + " " + y(p[1]).toFixed(1)).join("");
  svg.append(el("svg:path", { d, fill: "none", stroke: line.color, "stroke-width": line.width || 1.5,
    "stroke-opacity": line.opacity || 1, "stroke-linejoin": "round", "stroke-dasharray": line.dash }));
  if (line.dots) {
    for (const p of pts) svg.append(el("svg:circle", { cx: x(p[0]), cy: y(p[1]), r: 2.6,
      fill: line.color }));
  }
}

function legend(container, lines) {
  container.replaceChildren(...lines.map((l) => el("span", {},
    el("span", { class: "swatch", "data-color": l.color }), l.label)));
  container.querySelectorAll(".swatch").forEach((s) => { s.style.background = s.dataset.color; });
}

function bars(container, entries, fmt = String) {
  // entries: [[label, value]]; widths relative to the largest value.
  const max = Math.max(1e-12, ...entries.map((e) => Math.abs(e[1])));
  container.replaceChildren();
  for (const [label, value] of entries) {
    const fill = el("div", { class: "fill" });
    fill.style.width = (100 * Math.abs(value) / max).toFixed(1) + "%";
    container.append(el("span", { class: "label", title: label, text: label }),
      el("div", { class: "track" }, fill), el("span", { class: "num", text: fmt(value) }));
  }
  if (!entries.length) container.append(el("span", { class: "note", text: "—" }));
}

// ---------------------------------------------------------------- sections

function render(view) {
  renderHeader(view.run);
  renderExperts(view);
  renderNodes(view.nodes, view.run);
  renderGateway(view.gateway);
  renderLoad(view.load);
  renderBytes(view.run);
  renderRejected(view.rejected);
  renderEvals(view.evals);
}

function renderHeader(run) {
  document.getElementById("run-name").textContent = run.name || run.given;
  const text = { live: "live", finished: "finished", waiting: "waiting for a run" }[run.status];
  setStatus(run.status, text || run.status);
  const ago = run.last_event ? fmtDuration(nowServer() - run.last_event) + " ago" : "—";
  const facts = [["strategy", run.strategy || "—"], ["training", fmtDuration(run.elapsed)],
    ["updates", run.updates], ["nodes", run.nodes || "—"], ["in", fmtBytes(run.bytes_in)],
    ["out", fmtBytes(run.bytes_out)], ["last event", ago]];
  if (run.damaged_lines) facts.push(["damaged lines", run.damaged_lines]);
  if (run.resumed_from) facts.push(["resumed from", run.resumed_from.split(/[\\/]/).pop()]);
  document.getElementById("totals").replaceChildren(...facts.map(([k, v]) =>
    el("div", {}, el("dt", { text: k }), el("dd", { text: String(v) }))));
  document.title = (run.name || "fedmoe") + " — fedmoe console";
}

function renderExperts(view) {
  const box = document.getElementById("experts");
  const empty = box.querySelector(".empty");
  if (!view.experts.length) {
    if (!empty) box.append(el("p", { class: "empty", text: "No expert yet: nodes register first." }));
    return;
  }
  empty?.remove();
  for (const expert of view.experts) {
    let card = box.querySelector(`.card[data-expert="${CSS.escape(expert.name)}"]`);
    if (!card) box.append(card = expertCard(expert.name));
    fillExpertCard(card, expert);
  }
}

function expertCard(name) {
  const swatch = el("span", { class: "swatch" });
  swatch.style.background = colorOf(name);
  return el("div", { class: "card", "data-expert": name },
    el("h3", {}, swatch, el("span", { text: name }), el("span", { class: "version" })),
    el("p", { class: "facts" }),
    el("svg:svg", { class: "chart", role: "img", "aria-label": name + " losses" }),
    el("div", { class: "legend" }),
    el("div", { class: "minis" },
      el("div", { class: "mini" }, el("h4", { text: "staleness histogram (versions)" }),
        el("div", { class: "bars stale-bars" })),
      el("div", { class: "mini" }, el("h4", { text: "updates by node" }),
        el("div", { class: "bars node-bars" }))));
}

function fillExpertCard(card, e) {
  card.dataset.version = String(e.version);
  card.querySelector(".version").textContent = "v" + e.version;
  card.querySelector(".version").classList.toggle("damaged", !!e.damaged);
  card.querySelector(".facts").textContent = [
    ...(e.damaged ? ["checkpoint damaged: " + e.damaged] : []), e.updates + " updates",
    (e.examples ?? "—") + " examples", "train " + fmtNum(e.train_loss),
    "held-out " + fmtNum(e.held_out)].join(" · ");
  const color = colorOf(e.name);
  const lines = [
    { label: "train loss", color, width: 1, opacity: 0.55,
      points: store.series["train_loss|" + e.name] || [] },
    { label: "held-out loss", color, width: 2.2, dots: true,
      points: store.series["held_out|" + e.name + "|" + e.name] || [] }];
  drawChart(card.querySelector("svg"), lines, { empty: "no update yet" });
  legend(card.querySelector(".legend"), lines);
  const hist = Object.entries(e.staleness_histogram || {}).sort((a, b) => +a[0] - +b[0]);
  bars(card.querySelector(".stale-bars"), hist.map(([k, v]) => ["τ=" + k, v]));
  bars(card.querySelector(".node-bars"), Object.entries(e.by_node || {}).map(([k, v]) =>
    ["node " + k, v]));
}

function renderNodes(nodes, run) {
  const table = document.getElementById("nodes");
  const private_ = nodes.some((n) => n.epsilon !== null && n.epsilon !== undefined);
  const head = ["node", "specialty", "status", "updates", "per min", "last update",
    "staleness (last / mean)", "train loss", ...(private_ ? ["epsilon"] : []), "device",
    "examples", "reason"];
  const live = run.status === "live";
  const rows = nodes.map((n) => {
    const age = n.last_update ? nowServer() - n.last_update : null;
    const cells = [el("td", { text: n.node }), el("td", { class: "left", text: n.specialty }),
      el("td", { class: "left" }, el("span", { class: "pill pill-" + n.status, text: n.status })),
      el("td", { text: n.updates }), el("td", { text: n.per_minute }),
      el("td", { class: live && n.status === "registered" && age > 60 ? "stale" : null,
        text: age === null ? "never" : fmtDuration(age) + " ago" }),
      el("td", { text: n.staleness === null ? "—" : n.staleness + " / " + fmtNum(n.mean_staleness, 2) }),
      el("td", { text: fmtNum(n.train_loss) })];
    if (private_) cells.push(el("td", { text: fmtNum(n.epsilon, 2) }));
    cells.push(el("td", { text: n.device || "—" }), el("td", { text: n.num_train || "—" }),
      el("td", { class: "reason", text: n.reason || "" }));
    return el("tr", { "data-node": n.node, "data-status": n.status }, ...cells);
  });
  table.replaceChildren(el("thead", {}, el("tr", {}, ...head.map((h) =>
    el("th", { class: h === "reason" || h === "specialty" || h === "status" ? "left" : null,
      text: h })))), el("tbody", {}, ...rows));
  const counts = {};
  for (const n of nodes) counts[n.status] = (counts[n.status] || 0) + 1;
  document.getElementById("nodes-note").textContent =
    Object.entries(counts).map(([k, v]) => v + " " + k).join(", ");
}

function renderGateway(gw) {
  const box = document.getElementById("gateway");
  if (!gw) {
    box.replaceChildren(el("p", { class: "empty", text: "Not built yet." }));
    delete box.dataset.version;
    return;
  }
  box.dataset.version = String(gw.version);
  const coef = Object.entries(gw.coefficients || {});
  const versions = gw.expert_versions || {};
  const losses = Object.entries(gw.eval_losses || {});
  const coefBars = el("div", { class: "bars" });
  bars(coefBars, coef.map(([k, v]) => [k + (k in versions ? " v" + versions[k] : ""), v]),
    (v) => fmtNum(v, 3));
  const lossBars = el("div", { class: "bars" });
  bars(lossBars, losses, (v) => fmtNum(v, 3));
  box.replaceChildren(
    el("p", {}, el("span", { class: "version", text: "v" + gw.version }), " method ",
      el("strong", { text: gw.method || "—" }), gw.lora_r ? ", LoRA r=" + gw.lora_r : ""),
    ...(gw.damaged ? [el("p", { class: "damaged", text: "checkpoint damaged: " + gw.damaged })]
      : []),
    el("h4", { text: "coefficients (expert version merged)" }), coefBars,
    el("h4", { text: "held-out loss on each domain" }), lossBars);
}

function renderLoad(load) {
  const points = store.series["load"] || [];
  const lines = [
    { label: "replies/s", color: "#1f4e79", width: 2, points: points.map((p) => [p[0], p[1]]) },
    { label: "busy %", color: "#c77c02", width: 1.5, axis: "right",
      points: points.map((p) => [p[0], 100 * p[2]]) }];
  const svg = document.getElementById("chart-load");
  drawChart(svg, lines, { empty: "no load window yet (one every 30 s)",
    left: { min: 0 }, right: { min: 0, max: 100, format: (v) => v + "%" } });
  ensureLegend(svg, lines);
  document.getElementById("load-line").textContent = load ? load.line
    : "No load window reported yet (the server reports one every 30 s).";
}

function renderBytes(run) {
  const points = store.series["bytes"] || [];
  const lines = [
    { label: "received (update)", color: "#2a9d5b", width: 1.5, points: points.map((p) => [p[0], p[1]]) },
    { label: "sent (train message)", color: "#9467bd", width: 1.5, dash: "4 3",
      points: points.map((p) => [p[0], p[2]]) }];
  const svg = document.getElementById("chart-bytes");
  drawChart(svg, lines, { empty: "no update yet", left: { min: 0, format: fmtBytes } });
  ensureLegend(svg, lines);
  const n = run.updates || 0;
  document.getElementById("bytes-note").textContent = n ? "mean per update: " +
    fmtBytes(Math.round(run.bytes_in / n)) + " in, " + fmtBytes(Math.round(run.bytes_out / n)) +
    " out" : "";
}

function ensureLegend(svg, lines) {
  let box = svg.nextElementSibling;
  if (!box || !box.classList.contains("legend")) svg.after(box = el("div", { class: "legend" }));
  legend(box, lines);
}

function renderRejected(rejected) {
  const reasons = Object.entries(rejected.by_reason || {});
  document.getElementById("rejected-reasons").replaceChildren(...(reasons.length
    ? reasons.map(([r, n]) => el("span", { class: "chip", text: r + " × " + n }))
    : [el("span", { class: "note", text: "None: every update passed the checks." })]));
  const head = ["at", "adapter", "node", "reason", "detail"];
  const rows = rejected.recent.slice(0, 50).map((r) => el("tr", {},
    el("td", { text: fmtDuration(r.elapsed) }), el("td", { class: "left", text: r.adapter }),
    el("td", { text: r.node ?? "—" }), el("td", { class: "left", text: r.reason }),
    el("td", { class: "reason", text: r.detail })));
  document.getElementById("rejected").replaceChildren(rows.length ? el("thead", {},
    el("tr", {}, ...head.map((h) => el("th", { class: h === "at" || h === "node" ? null : "left",
      text: h })))) : "", el("tbody", {}, ...rows));
}

function renderEvals(evals) {
  const domains = Object.keys(evals || {}).sort();
  const table = document.getElementById("evals");
  if (!domains.length) {
    table.replaceChildren(el("tbody", {}, el("tr", {}, el("td", { class: "left",
      text: "No evaluation yet." }))));
    return;
  }
  const adapters = [...new Set(domains.flatMap((d) => Object.keys(evals[d].losses)))];
  const head = el("tr", {}, el("th", { text: "domain" }), ...adapters.map((a) =>
    el("th", { text: a })), el("th", { text: "evaluation" }));
  const rows = domains.map((d) => {
    const losses = evals[d].losses;
    const best = Math.min(...adapters.map((a) => losses[a] ?? Infinity));
    return el("tr", {}, el("td", { text: d }), ...adapters.map((a) => el("td", {
      class: losses[a] === best ? "best" : null, text: fmtNum(losses[a]) })),
      el("td", { text: evals[d].tag + " at " + fmtDuration(evals[d].elapsed) }));
  });
  table.replaceChildren(el("thead", {}, head), el("tbody", {}, ...rows));
}

document.addEventListener("DOMContentLoaded", () => {
  takeKeyFromUrl();
  document.getElementById("key-form").addEventListener("submit", onKeySubmit);
  window.addEventListener("resize", () => { if (store.view) render(store.view); });
  poll();
});
