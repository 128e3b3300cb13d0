// Loading: the page opens its stream, then reads the device list and each
// device's latest values over REST: a device heard before the stream
// opened is in the list, one heard after it comes with the stream. Stream
// events are held while the device list loads and applied right after it,
// in order, so a reading newer than the list is never overwritten by it.

import { HTTPError, getJSON, getList, eventsPath, rejectedTotal } from "./api.js";
import { model, view, dirty, live, applySummary, applyDetail, landing } from "./model.js";

export const TOPICS = ["telemetry/#", "presence/#", "errors/#"];
const DETAIL_FETCHES = 4; // parallel GET /v1/devices/{id} (one connection is the stream)

let app; // {stream, schedule, select, refused(err)}
let holding = false;
let pending = [];
let whenOpen = null; // resolves start's wait for the stream

/** init wires the loader to the app. */
export function init(hooks) {
  app = hooks;
}

/** start (re)loads everything: stream and devices. */
export async function start() {
  const gen = model.generation;
  pending = [];
  holding = true;
  await new Promise((resolve) => {
    whenOpen = resolve;
    app.stream.start("");
  });
  await loadDevices(gen);
}

/** opened tells the loader the stream is open. */
export function opened() {
  if (whenOpen) whenOpen();
  whenOpen = null;
}

/** probe reads the page's topics once: it throws the hub's refusal, if any. */
export function probe() {
  return getJSON(eventsPath(TOPICS, { limit: 1 }));
}

/** onEvent takes one event from the stream. */
export function onEvent(kind, data) {
  model.eventsSinceTick++;
  if (holding) {
    pending.push([kind, data]);
  } else {
    live[kind](data);
    app.schedule();
  }
  if (kind === "error") watchRejected(true);
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

/** loadDevice fetches one device's latest values (the selected one, at once). */
export function loadDevice(id) {
  loadDetail(id, model.generation);
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
