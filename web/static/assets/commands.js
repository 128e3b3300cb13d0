// The selected device's commands: its recent commands with their states
// (GET v1/devices/{id}/commands, newest first), kept up to date by the
// stream's command events, and a form that sends one (POST
// v1/devices/{id}/commands).
//
// A command's state only moves forward (queued, sent, delivered, then
// succeeded, failed, expired or canceled), so the list and the live
// events merge by keeping, for each command, the most advanced copy: the
// order in which a REST answer and an event arrive does not matter.
//
// A hub with credentials lets only the admin token, or a token whose
// commands scope covers the device, list and send commands: the panel
// then says that the page's token may not, and how to open it with one
// that may. Results and messages come from devices: they reach the page
// as text only (dom.js).

import { getJSON, postJSON, HTTPError, TOKEN } from "./api.js";
import { el, setText, clock, parseTime } from "./dom.js";

const SHOWN = 50; // commands listed per device
const RANK = { queued: 0, sent: 1, delivered: 2, succeeded: 3, failed: 3, expired: 3, canceled: 3 };

const $ = (id) => document.getElementById(id);
let ui;
let schedule = () => {};

const panel = {
  device: "",
  gen: 0, // bumped on every device change: answers for another device are dropped
  /** @type {Map<string, object>} */ byId: new Map(),
  access: "loading", // "loading", "ok", "refused" or "failed"
  why: "", // the refusal or failure, said for the operator
  live: true, // the stream carries command events
  sending: false,
  dirty: true,
};

/** wireCommands connects the form; hooks.schedule asks for a render. */
export function wireCommands(hooks) {
  schedule = hooks.schedule;
  ui = {
    box: $("commands"), note: $("commands-note"), form: $("command-form"), name: $("command-name"),
    params: $("command-params"), ttl: $("command-ttl"), send: $("command-send"), msg: $("command-msg"),
    list: $("command-list"), empty: $("commands-empty"),
  };
  ui.form.addEventListener("submit", (e) => {
    e.preventDefault();
    submit();
  });
}

/** showCommands makes the panel about device id ("" for none) and reads its commands. */
export function showCommands(id) {
  if (id === panel.device) return;
  panel.device = id;
  panel.gen++;
  panel.byId.clear();
  panel.access = "loading";
  panel.why = "";
  say("", "");
  reloadCommands();
}

/** resetCommands forgets what the panel holds and reads it again (the page reloads everything). */
export function resetCommands() {
  const id = panel.device;
  panel.device = "";
  showCommands(id);
}

/** reloadCommands reads the shown device's commands again (after the stream opened). */
export function reloadCommands() {
  panel.dirty = true;
  schedule();
  if (panel.device) readList(panel.device, panel.gen);
}

/** commandsLive says whether the stream carries command events for this page's token. */
export function commandsLive(live) {
  panel.live = live;
  panel.dirty = true;
  schedule();
}

/** onCommand takes a command event of the stream. */
export function onCommand(c) {
  if (c && c.device === panel.device && merge(c)) {
    panel.dirty = true;
    schedule();
  }
}

async function readList(id, gen) {
  try {
    const body = await getJSON("v1/devices/" + encodeURIComponent(id) + "/commands?limit=" + SHOWN);
    if (gen !== panel.gen) return;
    panel.access = "ok";
    for (const c of Array.isArray(body?.commands) ? body.commands : []) merge(c);
  } catch (err) {
    if (gen !== panel.gen) return;
    panel.access = err instanceof HTTPError && err.auth ? "refused" : "failed";
    panel.why = panel.access === "refused" ? refusal(err, id) : "Could not read the commands of " + id + ": " + err.message;
  }
  panel.dirty = true;
  schedule();
}

/** merge keeps c when it is newer than the copy held; it reports whether it did. */
function merge(c) {
  if (!c || typeof c.id !== "string" || !Object.hasOwn(RANK, c.state)) return false;
  const cur = panel.byId.get(c.id);
  if (cur && (RANK[c.state] < RANK[cur.state] ||
    (RANK[c.state] === RANK[cur.state] && parseTime(c.updated) < parseTime(cur.updated)))) return false;
  panel.byId.set(c.id, c);
  if (panel.byId.size > 2 * SHOWN) {
    for (const old of sorted().slice(SHOWN)) panel.byId.delete(old.id);
  }
  return true;
}

/** sorted lists the commands held, newest first. */
function sorted() {
  return [...panel.byId.values()].sort((a, b) =>
    parseTime(b.created) - parseTime(a.created) || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
}

function refusal(err, id) {
  const hub = err.hubMessage ? " (" + err.hubMessage + ")" : "";
  return "The hub refused" + hub + ": commanding " + id + " needs the admin token or a token whose commands " +
    "scope covers it" + (TOKEN ? ", and this page's token is neither" : "") +
    ". Open this page as " + location.pathname + "?token=… with such a token to see and send commands.";
}

/** say shows the outcome of a send: state is "ok", "invalid", "refused", "failed" or "" (none). */
function say(state, text) {
  if (!ui) return;
  ui.msg.dataset.state = state;
  setText(ui.msg, text);
  ui.msg.hidden = !text;
}

/** paramsOf reads the params field: undefined when empty, else a JSON object or an Error. */
function paramsOf(text) {
  if (!text.trim()) return undefined;
  let v;
  try {
    v = JSON.parse(text);
  } catch (err) {
    return new Error("Params are not valid JSON (" + err.message + ")");
  }
  if (v === null || typeof v !== "object" || Array.isArray(v)) {
    return new Error("Params must be a JSON object, such as {\"seconds\": 5}, not " + (Array.isArray(v) ? "an array" : String(v)));
  }
  return v;
}

async function submit() {
  const id = panel.device;
  const name = ui.name.value.trim();
  const params = paramsOf(ui.params.value);
  if (!id) return;
  if (!name) return say("invalid", "Give the command a name, such as set_interval.");
  if (params instanceof Error) return say("invalid", params.message + ". Leave the field empty for none.");
  const body = { name };
  if (params !== undefined) body.params = params;
  if (ui.ttl.value.trim()) body.ttl = ui.ttl.value.trim();
  panel.sending = ui.send.disabled = true;
  say("sending", "Sending " + name + " to " + id + "…");
  try {
    const c = await postJSON("v1/devices/" + encodeURIComponent(id) + "/commands", body);
    if (id !== panel.device) return;
    merge(c);
    say("ok", "Sent " + name + " to " + id + ": " + c.state + " (command " + c.id + ").");
  } catch (err) {
    if (id !== panel.device) return;
    say(sendState(err), sendFailure(err, id));
  } finally {
    panel.sending = false;
    panel.dirty = true;
    schedule();
  }
}

function sendState(err) {
  if (!(err instanceof HTTPError)) return "failed";
  if (err.auth) return "refused";
  return err.status === 400 ? "invalid" : "failed";
}

function sendFailure(err, id) {
  if (!(err instanceof HTTPError)) return "Could not reach the hub to command " + id + ": " + err.message;
  if (err.auth) return refusal(err, id);
  if (err.status === 400) return "The hub refused the command: " + err.hubMessage;
  if (err.status === 429) return id + " has too many commands pending: " + err.hubMessage;
  return "Sending to " + id + " failed: HTTP " + err.status + (err.hubMessage ? " (" + err.hubMessage + ")" : "") + ".";
}

// ---- rendering ---------------------------------------------------------------

/** renderCommands draws the panel when something changed. */
export function renderCommands() {
  if (!ui || !panel.dirty) return;
  panel.dirty = false;
  ui.box.hidden = !panel.device;
  ui.box.dataset.access = panel.access;
  ui.form.hidden = panel.access === "refused";
  ui.send.disabled = panel.sending || panel.access === "loading";
  setText(ui.note, noteText());
  ui.note.dataset.state = panel.access;
  const shown = sorted().slice(0, SHOWN);
  ui.list.replaceChildren(...shown.map(row));
  ui.empty.hidden = shown.length > 0 || panel.access === "refused";
  setText(ui.empty, panel.access === "loading" ? "Reading commands…" : "No commands sent to this device yet.");
}

function noteText() {
  if (panel.access === "refused" || panel.access === "failed") return panel.why;
  if (!panel.live) return "Not live: this page's token cannot watch commands/#; states shown are as read.";
  return "";
}

function row(c) {
  const li = el("li");
  li.dataset.id = c.id;
  li.dataset.state = c.state;
  const line = el("div", "line1");
  const created = parseTime(c.created);
  const t = el("time", "", created ? clock(created) : "–");
  if (created) t.dateTime = new Date(created).toISOString();
  const id = el("span", "cid", c.id);
  line.append(t, el("span", "cname", c.name), el("span", "cstate", c.state), id);
  li.append(line);
  if (c.params !== undefined) li.append(el("div", "msg params", JSON.stringify(c.params)));
  if (c.status || c.message || c.result !== undefined) {
    const out = [c.status, c.message, c.result !== undefined ? JSON.stringify(c.result) : ""].filter(Boolean).join(" · ");
    li.append(el("div", "msg result", out));
  }
  li.title = "created " + (c.created || "?") + ", expires " + (c.expires || "?") + ", updated " + (c.updated || "?");
  return li;
}
