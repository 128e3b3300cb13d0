// The dashboard's model: devices with their latest values, the chart
// series, and the logs of rejected payloads and presence changes. Live
// events, history and REST answers change it and mark what changed in
// dirty; app.js renders what is dirty. Nothing here touches the DOM.
//
// History and live events meet here: history is always older than every
// live event (see load.js), so a history entry goes to the end of a log
// and a live one to its front.

import { Series } from "./series.js";
import { parseTime, naturalCompare } from "./dom.js";

export const MAX_LOG = 200; // errors and presence changes kept
export const SERIES_CAP = 2000; // points kept per device metric
export const SPARK_POINTS = 60; // readings in a metric card's sparkline

/** @typedef {{value: any, unit: string, ts: number}} Metric */
/** @typedef {{id: string, online: boolean, transport: string, lastSeen: number, session: number, metrics: Map<string, Metric>, loaded: boolean}} Device */

export const model = {
  /** @type {Map<string, Device>} */ devices: new Map(),
  /** @type {Map<string, Series>} */ series: new Map(),
  errors: [], // newest first
  presence: [], // newest first
  rejectedSeen: 0, // rejections this page saw in history and live, suppressed ones included
  generation: 0, // bumped by a reset: answers to older requests are dropped
  eventsSinceTick: 0,
};

export const view = {
  selected: "",
  metric: "",
  chose: false, // the operator picked a device: no more auto-selection
  filter: "",
  status: "all",
  windowMs: 60000,
};

export const dirty = {
  order: true, rows: new Set(), detail: true, cards: true, chart: true,
  errors: true, presence: true, stats: true, sparks: true,
};

export const seriesKey = (device, metric) => device + "\n" + metric;

export function device(id) {
  let d = model.devices.get(id);
  if (!d) {
    d = { id, online: false, transport: "", lastSeen: 0, session: 0, metrics: new Map(), loaded: false };
    model.devices.set(id, d);
    dirty.order = true;
    dirty.stats = true;
  }
  return d;
}

function touched(d, metric) {
  dirty.rows.add(d.id);
  if (d.id !== view.selected) return;
  dirty.detail = true;
  dirty.cards = true;
  if (!metric || metric === view.metric) dirty.chart = true;
}

function setMetric(d, name, value, unit, ts) {
  const cur = d.metrics.get(name);
  if (cur && cur.ts > ts) return;
  if (!cur && view.filter) dirty.order = true; // the filter matches metric names too
  d.metrics.set(name, { value, unit: unit || "", ts });
}

/** seriesOf returns the chart series of a device metric, made on first use. */
function seriesOf(id, metric) {
  const key = seriesKey(id, metric);
  let s = model.series.get(key);
  if (!s) model.series.set(key, (s = new Series(SERIES_CAP)));
  return s;
}

const chartable = (v) => typeof v === "number" || typeof v === "boolean";

function onTelemetry(e) {
  if (typeof e.device !== "string" || typeof e.metric !== "string") return;
  const d = device(e.device);
  const now = Date.now();
  const ts = parseTime(e.ts) || now;
  setMetric(d, e.metric, e.value, e.unit, ts);
  if (chartable(e.value)) seriesOf(d.id, e.metric).push(ts, Number(e.value));
  // Heard now: the reading's own ts is the device's clock, which may be off.
  d.lastSeen = now;
  if (d.id === view.selected && !view.metric) view.metric = firstChartable(d);
  touched(d, e.metric);
}

function presenceEntry(e) {
  return {
    ts: parseTime(e.ts) || Date.now(), device: e.device, online: e.online === true,
    reason: String(e.reason || ""), transport: typeof e.transport === "string" ? e.transport : "",
    session: Number(e.session) || 0,
  };
}

function onPresence(e) {
  if (typeof e.device !== "string") return;
  const entry = presenceEntry(e);
  model.presence.unshift(entry);
  model.presence.length = Math.min(model.presence.length, MAX_LOG);
  dirty.presence = true;
  // A device going offline that the page does not list was deleted (or is
  // outside this token's view): log it, do not list it again.
  if (!entry.online && !model.devices.has(e.device)) return;
  const d = device(e.device);
  // A change from an older connection than the one we know is stale.
  if (entry.session < d.session) return;
  const wasOnline = d.online;
  d.session = entry.session;
  d.online = entry.online;
  if (entry.transport) d.transport = entry.transport;
  if (d.online) d.lastSeen = Date.now();
  // Rows are sorted by id: only a status filter can hide or show it now.
  if (wasOnline !== d.online && view.status !== "all") dirty.order = true;
  dirty.stats = true;
  touched(d, "");
}

function errorEntry(e) {
  return {
    ts: parseTime(e.ts) || Date.now(), device: e.device, code: String(e.code || "error"),
    message: String(e.message || ""), source: String(e.source_topic || ""),
    suppressed: Number(e.suppressed) || 0,
  };
}

function onError(e) {
  if (typeof e.device !== "string") return;
  const entry = errorEntry(e);
  model.errors.unshift(entry);
  model.errors.length = Math.min(model.errors.length, MAX_LOG);
  model.rejectedSeen += 1 + entry.suppressed;
  dirty.errors = true;
  dirty.stats = true;
}

/** live applies one event from the stream. */
export const live = { telemetry: onTelemetry, presence: onPresence, error: onError };

/**
 * addHistory applies retained events of the logs, newest first, all older
 * than what the logs hold: they go to the logs' ends. Devices keep the
 * state REST gave them.
 */
export function addHistory(events) {
  for (const ev of events) {
    const e = ev && ev.data;
    if (!e || typeof e.device !== "string") continue;
    if (ev.event === "presence" && model.presence.length < MAX_LOG) {
      model.presence.push(presenceEntry(e));
      dirty.presence = true;
    } else if (ev.event === "error") {
      const entry = errorEntry(e);
      if (model.errors.length < MAX_LOG) model.errors.push(entry);
      model.rejectedSeen += 1 + entry.suppressed;
      dirty.errors = dirty.stats = true;
    }
  }
}

/** addPoints merges retained readings of one device metric into its series. */
export function addPoints(id, metric, events) {
  const points = [];
  for (const ev of events) {
    const e = ev && ev.data;
    if (e && chartable(e.value)) points.push([parseTime(e.ts), Number(e.value)]);
  }
  if (!points.length) return;
  seriesOf(id, metric).merge(points.filter(([t]) => t > 0));
  const d = model.devices.get(id);
  if (d) touched(d, metric);
  dirty.sparks = true;
}

export function applySummary(s) {
  if (!s || typeof s.id !== "string") return;
  const d = device(s.id);
  d.online = s.online === true;
  d.transport = typeof s.transport === "string" ? s.transport : d.transport;
  d.lastSeen = Math.max(d.lastSeen, parseTime(s.last_seen));
  for (const m of Array.isArray(s.metrics) ? s.metrics : []) {
    if (typeof m === "string" && !d.metrics.has(m)) d.metrics.set(m, { value: undefined, unit: "", ts: 0 });
  }
  touched(d, "");
  dirty.order = true;
}

export function applyDetail(det) {
  if (!det || typeof det.id !== "string") return;
  const d = device(det.id);
  d.loaded = true;
  const state = det.state && typeof det.state === "object" ? det.state : {};
  for (const [name, st] of Object.entries(state)) {
    if (st && typeof st === "object") setMetric(d, name, st.value, st.unit, parseTime(st.ts));
  }
  if (d.id === view.selected && !view.metric) view.metric = firstChartable(d);
  touched(d, "");
}

/** removeDevice forgets a deleted device and its series. */
export function removeDevice(id) {
  model.devices.delete(id);
  for (const key of model.series.keys()) if (key.startsWith(id + "\n")) model.series.delete(key);
  dirty.order = dirty.stats = true;
}

export function clearModel() {
  model.generation++;
  model.devices.clear();
  model.series.clear();
  model.errors.length = 0;
  model.presence.length = 0;
  model.rejectedSeen = 0;
  Object.assign(dirty, { order: true, detail: true, cards: true, chart: true, errors: true, presence: true, stats: true });
}

/** metricNames lists a device's metrics in natural order. */
export function metricNames(d) {
  return [...d.metrics.keys()].sort(naturalCompare);
}

export function firstChartable(d) {
  const names = metricNames(d);
  return names.find((n) => model.series.has(seriesKey(d.id, n))) ||
    names.find((n) => typeof d.metrics.get(n).value !== "string") || names[0] || "";
}

/**
 * landing is the device to show when the operator has not picked one: the
 * most recently active, online before offline.
 */
export function landing() {
  let best = null;
  for (const d of model.devices.values()) {
    if (!best || (d.online - best.online || d.lastSeen - best.lastSeen || naturalCompare(best.id, d.id)) > 0) best = d;
  }
  return best ? best.id : "";
}

function matches(d) {
  if (view.status === "online" && !d.online) return false;
  if (view.status === "offline" && d.online) return false;
  if (!view.filter) return true;
  if (d.id.toLowerCase().includes(view.filter)) return true;
  for (const m of d.metrics.keys()) if (m.toLowerCase().includes(view.filter)) return true;
  return false;
}

export function logMatches(entry) {
  if (!view.filter) return true;
  return [entry.device, entry.code, entry.message, entry.reason].some(
    (s) => typeof s === "string" && s.toLowerCase().includes(view.filter));
}

/** visibleIds lists the devices the filters let through, in natural order. */
export function visibleIds() {
  return [...model.devices.values()].filter(matches).map((d) => d.id).sort(naturalCompare);
}
