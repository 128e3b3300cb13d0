// The dashboard's requests to the hub's REST API and metrics. Every path is
// relative to the page, so the dashboard also works behind a reverse proxy
// that serves the hub under a path prefix.
//
// A hub with credentials needs a watcher (or admin) token: open the page as
// /?token=… and it is sent with every request (EventSource cannot set
// headers, so the stream gets it as ?token= too).

export const TOKEN = new URLSearchParams(location.search).get("token") || "";

/** HTTPError is a refused request: status and the hub's own message. */
export class HTTPError extends Error {
  constructor(path, status, hubMessage) {
    super(path + ": HTTP " + status + (hubMessage ? ": " + hubMessage : ""));
    this.status = status;
    this.hubMessage = hubMessage;
  }

  /** auth is true when the token is missing, wrong or too narrow. */
  get auth() {
    return this.status === 401 || this.status === 403;
  }
}

function headers(accept) {
  const h = { Accept: accept };
  if (TOKEN) h.Authorization = "Bearer " + TOKEN;
  return h;
}

/**
 * request sends method to path, with body as JSON when given, and returns
 * the response, or throws HTTPError.
 */
export async function request(method, path, accept = "application/json", body = undefined) {
  const init = { method, headers: headers(accept), cache: "no-store" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const resp = await fetch(path, init);
  if (!resp.ok) throw new HTTPError(path, resp.status, await hubMessage(resp));
  return resp;
}

/** hubMessage reads the message of telehub's JSON error body, if any. */
async function hubMessage(resp) {
  try {
    const body = await resp.json();
    return typeof body?.error?.message === "string" ? body.error.message : "";
  } catch {
    return "";
  }
}

export async function getJSON(path) {
  return (await request("GET", path)).json();
}

/** postJSON sends body as JSON to path and returns the hub's JSON answer. */
export async function postJSON(path, body) {
  return (await request("POST", path, "application/json", body)).json();
}

/**
 * getList reads a JSON array and the pages that follow it: a hub that pages
 * a list links the next page with Link: <…>; rel="next".
 */
export async function getList(path) {
  const out = [];
  for (let next = path, pages = 0; next && pages < 100; pages++) {
    const resp = await request("GET", next);
    const page = await resp.json();
    if (Array.isArray(page)) out.push(...page);
    next = nextLink(resp.headers.get("Link"), next);
  }
  return out;
}

/**
 * nextLink is the next page of the list at current: the same path with the
 * query of the Link header's rel="next" target (the hub does not know a
 * reverse proxy's path prefix, so only its query is taken).
 */
function nextLink(link, current) {
  const m = /<([^>]*)>\s*;\s*rel="?next"?/.exec(link || "");
  if (!m) return "";
  const search = new URL(m[1], location.href).search;
  return search ? current.split("?")[0] + search : "";
}

/** eventsPath is the URL of GET /v1/events for topic filters and parameters. */
export function eventsPath(topics, params) {
  const q = new URLSearchParams();
  for (const t of topics) q.append("topic", t);
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== "") q.set(k, String(v));
  return "v1/events?" + q.toString();
}

export const REJECTED_METRIC = "telehub_payloads_rejected_total";

/**
 * rejectedTotal reads the hub's count of rejected payloads from /metrics,
 * summed over its reasons: the same number a Prometheus server scrapes.
 */
export async function rejectedTotal() {
  const resp = await request("GET", "metrics", "text/plain");
  return sumCounter(await resp.text(), REJECTED_METRIC);
}

/** sumCounter adds the samples of a counter in Prometheus text format. */
function sumCounter(text, name) {
  let sum = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith(name)) continue;
    let rest = line.slice(name.length);
    if (rest[0] === "{") rest = rest.slice(rest.lastIndexOf("}") + 1);
    else if (rest[0] !== " ") continue; // another metric with this prefix
    const v = Number(rest.trim().split(/\s+/)[0]);
    if (Number.isFinite(v)) sum += v;
  }
  return sum;
}
