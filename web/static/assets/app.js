// telehub dashboard: the live view of a hub for an operator.
//
// Data: the page starts from the hub's history and then follows one
// EventSource (stream.js) on telemetry/#, presence/# and errors/#, and
// commands/# when the token may watch it; load.js joins the two. The
// selected device's commands are commands.js's own panel. Events update the model (model.js) only; a
// requestAnimationFrame loop renders what changed: the selected device
// every frame, the device list and logs at most four times a second, so a
// busy hub cannot make the page fall behind. Every string from a device
// goes into the DOM as text (dom.js), never as markup.

import { Stream } from "./stream.js";
import { TimeChart, sparkline, theme, trimZeros } from "./chart.js";
import { el, setText, formatFixed, formatUnit, formatValue, valueClass, ago, clock } from "./dom.js";
import { TOKEN, REJECTED_METRIC } from "./api.js";
import {
  model, view, dirty, seriesKey, firstChartable, landing, logMatches, visibleIds, metricNames, clearModel, SPARK_POINTS,
} from "./model.js";
import * as load from "./load.js";
import { authAdvice, showNotice, hideNotice } from "./notice.js";
import { wireDelete, closeDelete } from "./remove.js";
import {
  wireCommands, showCommands, reloadCommands, resetCommands, commandsLive, onCommand, renderCommands,
} from "./commands.js";

const LIST_EVERY = 250; // ms between device list and log renders

const $ = (id) => document.getElementById(id);
const ui = {
  conn: $("conn"), connText: $("conn-text"), filter: $("filter"),
  online: $("stat-online"), offline: $("stat-offline"), rate: $("stat-rate"), rejected: $("stat-errors"),
  rows: $("device-rows"), devicesEmpty: $("devices-empty"), devicesCount: $("devices-count"),
  statusSeg: $("status-filter"), windowSeg: $("window-select"),
  detailTitle: $("detail-title"), detailMeta: $("detail-meta"), grid: $("metric-grid"),
  chartTitle: $("chart-title"), chartStats: $("chart-stats"), chart: $("chart"), chartEmpty: $("chart-empty"),
  errors: $("error-list"), errorsEmpty: $("errors-empty"), errorsCount: $("errors-count"),
  presence: $("presence-list"), presenceEmpty: $("presence-empty"), del: $("delete"),
};

function readSetting(key) {
  try {
    return localStorage.getItem("telehub." + key);
  } catch {
    return null;
  }
}

function writeSetting(key, value) {
  try {
    localStorage.setItem("telehub." + key, String(value));
  } catch {
    // private mode or storage disabled: the setting lasts for this page only
  }
}

/** unitOf is the unit to show with a metric: numbers only (a SenML base
 * unit also lands on the pack's booleans and strings). */
function unitOf(m) {
  return typeof m.value === "number" ? formatUnit(m.unit) : "";
}

// ---- selection ------------------------------------------------------------

function select(id, metric) {
  if (!id) return;
  const d = model.devices.get(id);
  if (view.selected !== id) {
    if (view.selected) dirty.rows.add(view.selected);
    view.selected = id;
    view.metric = metric || (d ? firstChartable(d) : "");
    cards.clear();
    ui.grid.replaceChildren();
    closeDelete();
    showCommands(id);
  } else if (metric) {
    view.metric = metric;
  }
  dirty.rows.add(id);
  dirty.detail = dirty.cards = dirty.chart = true;
  const hash = "#" + new URLSearchParams({ device: id, metric: view.metric }).toString();
  if (location.hash !== hash) history.replaceState(null, "", hash);
  if (d && !d.loaded) load.loadDevice(id);
  load.loadSelected();
  schedule();
}

/** forget drops a deleted device from the page and selects another. */
function forget(id) {
  load.forget(id);
  rows.get(id)?.tr.remove();
  rows.delete(id);
  if (view.selected === id) {
    view.selected = view.metric = "";
    view.chose = false;
    showCommands("");
    cards.clear();
    ui.grid.replaceChildren();
    dirty.detail = dirty.cards = dirty.chart = true;
    history.replaceState(null, "", location.pathname + location.search);
    select(landing());
  }
  lastList = 0;
  schedule();
}

// ---- rendering: device list ------------------------------------------

/** @type {Map<string, {tr: HTMLElement, via: HTMLElement, values: HTMLElement, seen: HTMLElement, sig: string}>} */
const rows = new Map();
let order = [];

function rowFor(id) {
  let r = rows.get(id);
  if (r) return r;
  const tr = el("tr");
  tr.dataset.device = id;
  const status = el("td", "c-status");
  status.append(el("span", "status-dot"));
  const name = el("td");
  const via = el("span", "via");
  name.append(el("span", "id", id), via);
  name.title = id;
  const values = el("td", "values");
  const seen = el("td", "seen");
  tr.append(status, name, values, seen);
  r = { tr, via, values, seen, sig: "" };
  rows.set(id, r);
  return r;
}

function renderRow(id, now) {
  const d = model.devices.get(id);
  const r = rows.get(id);
  if (!d || !r) return;
  r.tr.dataset.online = String(d.online);
  r.tr.setAttribute("aria-selected", String(id === view.selected));
  setText(r.via, d.transport);
  setText(r.seen, ago(d.lastSeen, now));
  const names = metricNames(d);
  const sig = names.join("\n");
  if (sig !== r.sig) {
    r.sig = sig;
    r.values.replaceChildren(...names.map((n) => {
      const kv = el("span", "kv");
      kv.dataset.metric = n;
      kv.append(el("span", "k", n), el("span", "v"));
      return kv;
    }));
  }
  let i = 0;
  for (const kv of r.values.children) {
    const m = d.metrics.get(names[i++]);
    setText(kv.lastChild, formatValue(m.value) + unitOf(m));
  }
  r.values.title = names.map((n) => n + " " + formatValue(d.metrics.get(n).value)).join(", ");
}

function renderDevices(now) {
  if (dirty.order) {
    order = visibleIds();
    ui.rows.replaceChildren(...order.map((id) => rowFor(id).tr));
    for (const id of order) renderRow(id, now);
    dirty.order = false;
    const total = model.devices.size;
    setText(ui.devicesCount, order.length === total ? String(total) : order.length + " / " + total);
    ui.devicesEmpty.hidden = order.length > 0;
    setText(ui.devicesEmpty, total ? "No devices match the filter." : "Waiting for devices…");
  } else {
    for (const id of dirty.rows) renderRow(id, now);
  }
  dirty.rows.clear();
  if (!view.selected && order.length) select(landing());
}

function renderSeen(now) {
  for (const id of order) {
    const d = model.devices.get(id);
    const r = rows.get(id);
    if (d && r) setText(r.seen, ago(d.lastSeen, now));
  }
}

// ---- rendering: detail, cards and chart --------------------------------

/** @type {Map<string, {btn: HTMLElement, value: HTMLElement, num: HTMLElement, unit: HTMLElement, ts: HTMLElement, spark: HTMLCanvasElement}>} */
const cards = new Map();
const chart = new TimeChart(ui.chart);
const colors = theme();

function renderDetail(now) {
  const d = model.devices.get(view.selected);
  ui.del.hidden = !d;
  if (!d) {
    setText(ui.detailTitle, "Select a device");
    ui.detailMeta.replaceChildren();
    return;
  }
  setText(ui.detailTitle, d.id);
  ui.detailTitle.title = d.id;
  const badge = el("span", "badge " + (d.online ? "online" : "offline"), d.online ? "online" : "offline");
  const parts = [badge];
  const meta = (label, value) => {
    const span = el("span", "m");
    span.append(el("b", "", label), document.createTextNode(value));
    return span;
  };
  if (d.transport) parts.push(meta("via", d.transport));
  if (d.session) parts.push(meta("session", "#" + d.session));
  parts.push(meta("seen", d.lastSeen ? ago(d.lastSeen, now) + (ago(d.lastSeen, now) === "now" ? "" : " ago") : "never"));
  ui.detailMeta.replaceChildren(...parts);
}

function cardFor(name) {
  let c = cards.get(name);
  if (c) return c;
  const btn = el("button", "metric");
  btn.type = "button";
  btn.dataset.metric = name;
  const value = el("span", "value");
  const num = el("span", "num");
  const unit = el("span", "unit");
  value.append(num, unit);
  const ts = el("span", "ts");
  const spark = el("canvas");
  btn.append(el("span", "name", name), value, ts, spark);
  c = { btn, value, num, unit, ts, spark };
  cards.set(name, c);
  return c;
}

function renderCards(now) {
  const d = model.devices.get(view.selected);
  if (!d) return;
  const names = metricNames(d);
  if (names.length !== ui.grid.children.length || names.some((n, i) => ui.grid.children[i].dataset.metric !== n)) {
    ui.grid.replaceChildren(...names.map((n) => cardFor(n).btn));
  }
  for (const n of names) {
    const m = d.metrics.get(n);
    const c = cardFor(n);
    c.btn.setAttribute("aria-pressed", String(n === view.metric));
    c.value.className = "value " + valueClass(m.value);
    setText(c.num, formatValue(m.value));
    setText(c.unit, unitOf(m));
    setText(c.ts, m.ts ? clock(m.ts) + " · " + ago(m.ts, now) : "–");
    c.value.title = formatValue(m.value);
  }
}

function renderSparks() {
  for (const [name, c] of cards) {
    const s = model.series.get(seriesKey(view.selected, name));
    const m = model.devices.get(view.selected)?.metrics.get(name);
    sparkline(c.spark, s, SPARK_POINTS, colors, typeof m?.value === "boolean");
  }
}

function renderChart(now) {
  const d = model.devices.get(view.selected);
  const m = d?.metrics.get(view.metric);
  const s = d ? model.series.get(seriesKey(d.id, view.metric)) : undefined;
  const unit = m ? unitOf(m) : "";
  ui.chartTitle.replaceChildren();
  if (d && view.metric) {
    ui.chartTitle.append(document.createTextNode(d.id + " · " + view.metric));
    if (unit) ui.chartTitle.append(el("span", "unit", " (" + unit + ")"));
  } else {
    ui.chartTitle.append(document.createTextNode("No metric selected"));
  }
  const stepped = typeof m?.value === "boolean";
  const drawn = chart.draw(s, { windowMs: view.windowMs, now, stepped, unit });
  // What the canvas shows, for tests and assistive tools: readings in the
  // window, readings held, and the y-axis labels.
  ui.chart.dataset.points = String(drawn.points);
  ui.chart.dataset.total = String(s ? s.length : 0);
  ui.chart.dataset.ticks = drawn.ticks.join(" ");
  renderChartStats(drawn, stepped);
  ui.chart.dataset.series = d && view.metric ? seriesKey(d.id, view.metric) : "";
  ui.chartEmpty.hidden = !!(s && s.length);
  if (!d) setText(ui.chartEmpty, "Pick a device to see its metrics.");
  else if (m && typeof m.value === "string") setText(ui.chartEmpty, "“" + view.metric + "” is a text metric: its latest value is " + m.value + ".");
  else setText(ui.chartEmpty, "No readings of “" + view.metric + "” retained yet: waiting for new ones…");
}

/** renderChartStats shows the window's min, mean and max next to the title. */
function renderChartStats(drawn, stepped) {
  if (!drawn.points || stepped) {
    ui.chartStats.replaceChildren();
    return;
  }
  const parts = [["min", drawn.min], ["avg", drawn.mean], ["max", drawn.max]];
  if (ui.chartStats.children.length !== parts.length) {
    ui.chartStats.replaceChildren(...parts.map(([k]) => {
      const span = el("span", "st");
      span.append(el("b", "", k), el("span", "n"));
      return span;
    }));
  }
  parts.forEach(([, v], i) => setText(ui.chartStats.children[i].lastChild, trimZeros(formatFixed(v, drawn.decimals))));
  ui.chartStats.title = drawn.points + " readings in the window";
}

// ---- rendering: logs and stats ----------------------------------------

function renderErrors() {
  const shown = model.errors.filter(logMatches);
  ui.errors.replaceChildren(...shown.map((e) => {
    const li = el("li");
    li.dataset.device = e.device;
    const line = el("div", "line1");
    const t = el("time", "", clock(e.ts));
    t.dateTime = new Date(e.ts).toISOString();
    const src = el("span", "src", sourceLabel(e.source, e.device));
    src.title = e.source;
    line.append(t, el("span", "dev", e.device), el("span", "code", e.code), src);
    li.append(line, el("div", "msg", e.message));
    if (e.suppressed) li.append(el("div", "sup", "+" + e.suppressed + " similar suppressed"));
    return li;
  }));
  ui.errorsEmpty.hidden = shown.length > 0;
  setText(ui.errorsCount, model.errors.length ? String(model.errors.length) : "");
}

/** sourceLabel shortens devices/{device}/telemetry to telemetry: the device is named beside it. */
function sourceLabel(source, device) {
  const prefix = "devices/" + device + "/";
  return source.startsWith(prefix) ? source.slice(prefix.length) : source;
}

function renderPresence() {
  const shown = model.presence.filter(logMatches);
  ui.presence.replaceChildren(...shown.map((p) => {
    const li = el("li");
    li.dataset.device = p.device;
    const line = el("div", "line1");
    const t = el("time", "", clock(p.ts));
    t.dateTime = new Date(p.ts).toISOString();
    const why = [p.reason, p.transport, p.session ? "#" + p.session : ""].filter(Boolean).join(" · ");
    line.append(t, el("span", "state " + (p.online ? "on" : "off"), p.online ? "online" : "offline"),
      el("span", "dev", p.device), el("span", "why", why));
    li.append(line);
    return li;
  }));
  ui.presenceEmpty.hidden = shown.length > 0;
}

let rate = 0;

function renderStats() {
  let online = 0;
  for (const d of model.devices.values()) if (d.online) online++;
  setText(ui.online, online);
  setText(ui.offline, model.devices.size - online);
  setText(ui.rate, rate >= 100 ? Math.round(rate).toLocaleString("en-US") : String(Math.round(rate * 10) / 10));
  const r = load.rejected;
  const n = r.total ?? model.rejectedSeen;
  setText(ui.rejected, n);
  ui.rejected.classList.toggle("has", n > 0);
  ui.rejected.title = r.total !== null
    ? "Payloads rejected since the hub started (" + REJECTED_METRIC + " of /metrics)"
    : "Rejections this page has seen; the hub's own count could not be read from /metrics (" + r.why + ")";
}

// ---- render loop ---------------------------------------------------------

let frame = 0;
let lastList = 0;
let lastChart = 0;
let lastTick = performance.now();

function schedule() {
  if (!frame) frame = requestAnimationFrame(render);
}

function render() {
  frame = 0;
  const now = Date.now();
  const t = performance.now();
  if (t - lastTick >= 1000) tick(t, now);
  if (t - lastList >= LIST_EVERY) {
    lastList = t;
    if (dirty.order || dirty.rows.size) renderDevices(now);
    if (dirty.errors) renderErrors();
    if (dirty.presence) renderPresence();
    if (dirty.stats) renderStats();
    if (dirty.sparks) renderSparks();
    renderCommands();
    dirty.errors = dirty.presence = dirty.stats = dirty.sparks = false;
  }
  // The selected device's values keep pace with the chart: text only,
  // every frame they changed; its sparklines follow with the list.
  if (dirty.detail) renderDetail(now);
  if (dirty.cards) {
    renderCards(now);
    dirty.sparks = true;
  }
  dirty.detail = dirty.cards = false;
  // The chart scrolls about one pixel at a time: redraw when the window has
  // moved by a pixel, or when data or selection changed.
  const msPerPixel = view.windowMs / Math.max(100, ui.chart.clientWidth);
  if (dirty.chart || t - lastChart >= Math.max(33, msPerPixel)) {
    lastChart = t;
    dirty.chart = false;
    renderChart(now);
  }
  if (!document.hidden) schedule();
}

/** tick runs once a second: event rate, relative times, sparklines. */
function tick(t, now) {
  rate = (model.eventsSinceTick * 1000) / (t - lastTick);
  model.eventsSinceTick = 0;
  lastTick = t;
  dirty.stats = true;
  renderSeen(now);
  renderDetail(now);
  renderCards(now);
  renderSparks();
}

// ---- connection -----------------------------------------------------------

const stateText = { connecting: "connecting…", live: "live", reconnecting: "reconnecting…", offline: "offline" };

function showState(state, detail) {
  ui.conn.dataset.state = state;
  setText(ui.connText, stateText[state] + (detail ? " · " + detail : ""));
  ui.conn.title = "Stream " + stateText[state] + " (" + load.TOPICS.join(", ") + ")";
}

const stream = new Stream({
  url: "v1/stream",
  topics: load.TOPICS,
  token: TOKEN,
  onEvent: load.onEvent,
  onState: showState,
  onOpen(lost) {
    failures = 0;
    hideNotice();
    if (lost) restart();
    else load.opened();
    reloadCommands(); // what changed while the stream was down
  },
  onReset: restart,
  onClosed: probe,
});

/** restart drops everything and loads it again (another hub, or events lost). */
function restart() {
  stream.stop();
  clearModel();
  rows.clear();
  ui.rows.replaceChildren();
  cards.clear();
  ui.grid.replaceChildren();
  resetCommands();
  load.start();
}

/**
 * refused stops the page when the hub turned its token away: retrying
 * cannot help, a new address can. The page says why and what to do.
 */
function refused(err) {
  stream.stop();
  clearTimeout(retryTimer);
  const advice = authAdvice(err, TOKEN, load.TOPICS);
  showNotice(advice);
  showState("offline", advice.state);
}

/** probe asks the hub why the stream was refused: a token problem stops the page. */
async function probe() {
  try {
    await load.probe();
  } catch (err) {
    if (err.auth) refused(err);
  }
}

let retryTimer = 0;
let failures = 0;

/** failed handles a start that could not reach the hub: say so and retry. */
function failed(err, retry) {
  if (err.auth) {
    refused(err);
    return;
  }
  console.warn("telehub: starting failed, retrying", err);
  failures++;
  const delay = Math.min(30000, 1000 * 2 ** Math.min(failures - 1, 5));
  showState("offline", "retry in " + Math.round(delay / 1000) + "s");
  clearTimeout(retryTimer);
  retryTimer = setTimeout(retry, delay);
}

// ---- input ---------------------------------------------------------------

function pressed(seg, attr, value) {
  for (const b of seg.querySelectorAll("button")) b.setAttribute("aria-pressed", String(b.dataset[attr] === value));
}

function wire() {
  ui.rows.addEventListener("click", (e) => {
    const tr = e.target.closest("tr[data-device]");
    if (!tr) return;
    view.chose = true;
    select(tr.dataset.device);
  });
  ui.grid.addEventListener("click", (e) => {
    const btn = e.target.closest("[data-metric]");
    if (btn) select(view.selected, btn.dataset.metric);
  });
  ui.filter.addEventListener("input", () => {
    view.filter = ui.filter.value.trim().toLowerCase();
    dirty.order = dirty.errors = dirty.presence = true;
    lastList = 0;
    schedule();
  });
  ui.statusSeg.addEventListener("click", (e) => {
    const b = e.target.closest("button[data-status]");
    if (!b) return;
    view.status = b.dataset.status;
    pressed(ui.statusSeg, "status", view.status);
    dirty.order = true;
    lastList = 0;
    schedule();
  });
  ui.windowSeg.addEventListener("click", (e) => {
    const b = e.target.closest("button[data-window]");
    if (!b) return;
    view.windowMs = Number(b.dataset.window);
    writeSetting("windowMs", view.windowMs);
    pressed(ui.windowSeg, "window", b.dataset.window);
    dirty.chart = dirty.cards = true;
    schedule();
  });
  document.addEventListener("keydown", keys);
  document.addEventListener("visibilitychange", schedule);
  new ResizeObserver(() => {
    dirty.chart = dirty.cards = true;
    schedule();
  }).observe(ui.chart);
}

function keys(e) {
  if (e.target === ui.filter) {
    if (e.key === "Escape") {
      ui.filter.value = "";
      ui.filter.dispatchEvent(new Event("input"));
      ui.filter.blur();
    }
    return;
  }
  if (e.target.closest?.("input, textarea, select")) return; // typing in a form, e.g. a command's params
  if (e.key === "/" && !e.ctrlKey && !e.metaKey) {
    e.preventDefault();
    ui.filter.focus();
  } else if ((e.key === "ArrowDown" || e.key === "ArrowUp") && order.length) {
    e.preventDefault();
    const i = order.indexOf(view.selected);
    const next = e.key === "ArrowDown" ? Math.min(order.length - 1, i + 1) : Math.max(0, i - 1);
    view.chose = true;
    select(order[next]);
    rows.get(order[next])?.tr.scrollIntoView({ block: "nearest" });
  }
}

function restoreSelection() {
  const q = new URLSearchParams(location.hash.slice(1));
  const id = q.get("device");
  if (id) {
    view.selected = id;
    view.metric = q.get("metric") || "";
    view.chose = true;
  }
  view.windowMs = Number(readSetting("windowMs")) || 60000;
  pressed(ui.windowSeg, "window", String(view.windowMs));
}

restoreSelection();
wire();
load.init({ stream, schedule, select, refused, failed, command: onCommand, commandsLive });
wireDelete({ removed: forget });
wireCommands({ schedule });
showCommands(view.selected);
load.start();
load.watchRejected(false);
schedule();
