// DOM and formatting helpers. Everything that comes from a device (ids,
// metric names, string values, error messages) reaches the page through
// textContent only: no markup is ever built from data.

/** el creates an element with an optional class and text content. */
export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

/** setText changes a node's text only when it differs (cheap re-renders). */
export function setText(node, text) {
  const s = String(text);
  if (node.textContent !== s) node.textContent = s;
}

/** clear removes every child of node. */
export function clear(node) {
  node.replaceChildren();
}

const units = { Cel: "°C", degC: "°C", far: "°F", K: "K", "%RH": "%RH", "/": "" };

/** formatUnit turns a SenML unit into what an operator expects to read. */
export function formatUnit(u) {
  if (!u) return "";
  return Object.hasOwn(units, u) ? units[u] : u;
}

/** formatNumber keeps about four significant digits, no trailing zeros. */
export function formatNumber(v) {
  if (!Number.isFinite(v)) return String(v);
  if (Number.isInteger(v) && Math.abs(v) < 1e9) return String(v);
  const a = Math.abs(v);
  let s;
  if (a >= 1e9 || (a > 0 && a < 1e-3)) s = v.toExponential(2);
  else if (a >= 1000) s = v.toFixed(0);
  else if (a >= 100) s = v.toFixed(1);
  else if (a >= 1) s = v.toFixed(2);
  else s = v.toFixed(3);
  return s.includes(".") && !s.includes("e") ? s.replace(/\.?0+$/, "") : s;
}

/**
 * formatFixed shows v with the given number of decimals: axis labels and
 * chart statistics use the decimals of the axis step, so two values a step
 * apart never print the same.
 */
export function formatFixed(v, decimals) {
  if (!Number.isFinite(v)) return String(v);
  if (Math.abs(v) >= 1e9) return v.toExponential(2);
  return v.toFixed(Math.max(0, Math.min(12, decimals)));
}

const collator = new Intl.Collator("en", { numeric: true });

/** naturalCompare orders strings with their digit runs as numbers: sim-2 before sim-10. */
export function naturalCompare(a, b) {
  return collator.compare(a, b) || (a < b ? -1 : a > b ? 1 : 0);
}

/** formatValue renders a metric value of any kind as text. */
export function formatValue(v) {
  if (typeof v === "number") return formatNumber(v);
  if (typeof v === "boolean") return v ? "true" : "false";
  if (v === undefined || v === null) return "–";
  return String(v);
}

/** valueClass is the CSS class that styles a value of v's kind. */
export function valueClass(v) {
  if (typeof v === "boolean") return v ? "bool-true" : "bool-false";
  if (typeof v === "string") return "text";
  return "";
}

/** ago formats the time since t (ms) compactly: "now", "5s", "3m", "2h". */
export function ago(t, now) {
  if (!t) return "–";
  const s = Math.max(0, Math.round((now - t) / 1000));
  if (s < 2) return "now";
  if (s < 60) return s + "s";
  if (s < 3600) return Math.floor(s / 60) + "m";
  if (s < 86400) return Math.floor(s / 3600) + "h";
  return Math.floor(s / 86400) + "d";
}

/** clock formats t (ms) as local HH:MM:SS. */
export function clock(t) {
  const d = new Date(t);
  return [d.getHours(), d.getMinutes(), d.getSeconds()].map((n) => String(n).padStart(2, "0")).join(":");
}

/** parseTime reads an RFC 3339 string as ms since the epoch, or 0. */
export function parseTime(s) {
  if (typeof s !== "string") return 0;
  const t = Date.parse(s);
  return Number.isFinite(t) ? t : 0;
}
