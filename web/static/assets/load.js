// Loading: the page starts from the hub's history and then follows the
// live stream, with no gap and no duplicate between the two.
//
// How: the page first asks for the newest retained event of its topics
// (GET /v1/events?order=desc&limit=1), the anchor, and opens the stream
// with last_event_id = anchor, so the hub sends exactly the events after
// it. Every history read asks for events before the anchor (order=desc,
// before=anchor), or before the oldest event already read for a series
// when it reads further back, and the anchor itself comes with the first
// answer. So every event is either history or live, never both and never
// neither, and the page never compares ids (they are opaque).
// A hub with no retained event yet has no anchor: the stream then starts
// live, and the first event it delivers becomes the anchor; anything
// committed just before it is read as history.
//
// The device list is read once the stream is open, so a device heard in
// between is in one or the other. Stream events are held while the list
// loads and applied right after it, in order, so a reading newer than the
// list is never overwritten by it.

import { HTTPError, getJSON, getList, eventsPath, rejectedTotal } from "./api.js";
import {
  model, view, dirty, MAX_LOG, SERIES_CAP, SPARK_POINTS, live, addHistory, addPoints, applySummary, applyDetail, landing, seriesKey,
} from "./model.js";

export const TOPICS = ["telemetry/#", "presence/#", "errors/#"];
// COMMANDS joins the stream when the page's token may watch it: the
// selected device's commands then stay live (commands.js).
export const COMMANDS = "commands/#";
const DETAIL_FETCHES = 4; // parallel GET /v1/devices/{id} (one connection is the stream)

let app; // {stream, schedule, select, refused(err), failed(err, retry), command(data), commandsLive(bool)}
let holding = false;
let pending = [];
let whenOpen = null; // resolves start's wait for the stream
let anchor = "";
/** @type {Map<string, {before: string, count: number, want: number, done: boolean, busy: boolean}>} */
const fetched = new Map(); // history read per series

/** init wires the loader to the app. */
export function init(hooks) {
  app = hooks;
}

/** start (re)loads everything: anchor, stream, devices, history. */
export async function start() {
  const gen = model.generation;
  anchor = "";
  fetched.clear();
  pending = [];
  let newest;
  let topics = [...TOPICS, COMMANDS];
  try {
    newest = await newestOf(topics);
    if (!newest) newest = await newestOf((topics = TOPICS));
  } catch (err) {
    if (gen === model.generation) app.failed(err, start);
    return;
  }
  if (gen !== model.generation) return;
  app.commandsLive(topics.includes(COMMANDS));
  const first = Array.isArray(newest) && newest[0] && typeof newest[0].id === "string" ? newest[0] : null;
  anchor = first ? first.id : "";
  holding = true;
  await new Promise((resolve) => {
    whenOpen = resolve;
    app.stream.start(anchor, topics);
  });
  await loadDevices(gen);
  if (first && gen === model.generation) readHistory(first);
}

/**
 * newestOf reads the newest retained event of topics (the anchor), or
 * null when the token may not watch all of them (403): the page then
 * streams without the commands.
 */
async function newestOf(topics) {
  try {
    return await getJSON(eventsPath(topics, { order: "desc", limit: 1 }));
  } catch (err) {
    if (topics.includes(COMMANDS) && err instanceof HTTPError && err.status === 403) return null;
    throw err;
  }
}

/** opened tells the loader the stream is open. */
export function opened() {
  if (whenOpen) whenOpen();
  whenOpen = null;
}

/** probe reads what the start reads first: it throws the hub's refusal, if any. */
export function probe() {
  return getJSON(eventsPath(TOPICS, { order: "desc", limit: 1 }));
}

/** onEvent takes one event from the stream. */
export function onEvent(kind, data, id) {
  model.eventsSinceTick++;
  if (kind === "command") {
    app.command(data); // states only move forward: no order to keep with the rest
  } else if (holding) {
    pending.push([kind, data]);
  } else {
    live[kind](data);
    app.schedule();
  }
  if (kind === "error") watchRejected(true);
  if (!anchor && id) {
    anchor = id;
    readHistory(null);
  }
}

function release() {
  holding = false;
  const held = pending;
  pending = [];
  for (const [kind, data] of held) live[kind](data);
  app.schedule();
}

async function loadDevices(gen) {
  try {
    const list = await getList("v1/devices");
    if (gen !== model.generation) return;
    for (const s of list) applySummary(s);
  } catch (err) {
    if (gen !== model.generation) return;
    if (err instanceof HTTPError && err.auth) app.refused(err);
    else {
      console.warn("telehub: loading devices failed, retrying", err);
      setTimeout(() => gen === model.generation && loadDevices(gen), 3000);
    }
    return;
  } finally {
    if (gen === model.generation) release();
  }
  // Land on the most recently active device, unless the address names one
  // the hub has.
  if (!model.devices.has(view.selected)) app.select(landing());
  loadDetails(gen);
}

async function loadDetail(id, gen) {
  try {
    const det = await getJSON("v1/devices/" + encodeURIComponent(id));
    if (gen === model.generation) applyDetail(det);
  } catch (err) {
    console.warn("telehub: loading device failed", id, err);
  }
  app.schedule();
}

/** loadDetails fetches the latest values of every device, the selected first. */
async function loadDetails(gen) {
  const queue = [...model.devices.values()].filter((d) => !d.loaded).map((d) => d.id);
  queue.sort((a, b) => (a === view.selected ? -1 : b === view.selected ? 1 : 0));
  const worker = async () => {
    for (let id = queue.shift(); id !== undefined && gen === model.generation; id = queue.shift()) await loadDetail(id, gen);
  };
  await Promise.all(Array.from({ length: DETAIL_FETCHES }, worker));
}

/** forget drops what was read of a deleted device's history. */
export function forget(id) {
  for (const key of fetched.keys()) if (key.startsWith(id + "\n")) fetched.delete(key);
}

/** loadDevice fetches one device's latest values (the selected one, at once). */
export function loadDevice(id) {
  loadDetail(id, model.generation);
}

/** readHistory reads the history before the anchor; event is the anchor's own event when it is history. */
function readHistory(event) {
  const gen = model.generation;
  if (event) {
    // The anchor is the newest history event: first of the logs, last of a series.
    addHistory([event]);
    const d = event.data;
    if (event.event === "telemetry" && d && typeof d.device === "string" && typeof d.metric === "string") {
      addPoints(d.device, d.metric, [event]);
    }
  }
  loadLogs(gen);
  loadSelected();
}

/** loadLogs reads the rejected payloads and presence changes before the anchor. */
async function loadLogs(gen) {
  const read = (topic) => getJSON(eventsPath([topic], { order: "desc", before: anchor, limit: MAX_LOG }));
  try {
    const [errors, presence] = await Promise.all([read("errors/#"), read("presence/#")]);
    if (gen !== model.generation) return;
    addHistory([...(Array.isArray(errors) ? errors : []), ...(Array.isArray(presence) ? presence : [])]);
  } catch (err) {
    console.warn("telehub: reading history failed", err);
  }
  app.schedule();
}

/**
 * loadSelected reads the history of the selected device's metrics: enough
 * for the charted metric's chart, a sparkline's worth for the others.
 */
export function loadSelected() {
  const d = model.devices.get(view.selected);
  if (!d || !anchor) return;
  for (const m of d.metrics.keys()) loadSeries(d.id, m, m === view.metric ? SERIES_CAP : SPARK_POINTS);
}

/** loadSeries reads a series' history back until it holds want readings or there are no more. */
async function loadSeries(id, metric, want) {
  const key = seriesKey(id, metric);
  let f = fetched.get(key);
  if (!f) fetched.set(key, (f = { before: anchor, count: 0, want: 0, done: false, busy: false }));
  f.want = Math.max(f.want, want);
  if (f.busy) return; // the running read continues to the new want
  f.busy = true;
  const gen = model.generation;
  try {
    while (!f.done && f.count < f.want && gen === model.generation) {
      const limit = Math.min(f.want - f.count, 10000);
      const page = await getJSON(eventsPath(["telemetry/" + id + "/" + metric], { order: "desc", before: f.before, limit }));
      if (gen !== model.generation || !Array.isArray(page)) return;
      if (page.length) f.before = page[page.length - 1].id;
      f.count += page.length;
      f.done = page.length < limit;
      addPoints(id, metric, page);
      app.schedule();
    }
  } catch (err) {
    console.warn("telehub: reading history of", key, "failed", err);
  } finally {
    f.busy = false;
  }
}

// ---- the rejected count ----------------------------------------------------
//
// The header's count is telehub_payloads_rejected_total from /metrics,
// summed over its reasons: the number an operator's Prometheus shows. It
// counts payloads no event reports (an invalid device id, errors
// suppressed by the per-device rate limit) and starts at the hub's start.
// Read every few seconds and soon after a rejection arrives. Without
// /metrics the page counts the rejections it saw and says so.

const REJECTED_EVERY = 5000;
export const rejected = { total: null, why: "" };
let rejectedTimer = 0;
let rejectedDue = 0; // when the planned read runs (ms since the epoch)
let rejectedBusy = false; // one read at a time, so answers never come out of order

/** watchRejected plans a read of the count: now, or soon after a rejection arrived. */
export function watchRejected(soon) {
  planRejected(soon ? 300 : 0);
}

function planRejected(delay) {
  const due = Date.now() + delay;
  if (rejectedTimer && rejectedDue <= due) return; // a sooner read is planned
  clearTimeout(rejectedTimer);
  rejectedDue = due;
  rejectedTimer = setTimeout(readRejected, delay);
}

async function readRejected() {
  rejectedTimer = 0;
  if (document.hidden) {
    planRejected(REJECTED_EVERY); // nobody looks: no need to ask
    return;
  }
  if (rejectedBusy) {
    planRejected(300);
    return;
  }
  rejectedBusy = true;
  try {
    rejected.total = await rejectedTotal();
    rejected.why = "";
  } catch (err) {
    rejected.total = null;
    rejected.why = err instanceof HTTPError ? "HTTP " + err.status : "unreachable";
  } finally {
    rejectedBusy = false;
  }
  dirty.stats = true;
  app.schedule();
  planRejected(REJECTED_EVERY);
}
