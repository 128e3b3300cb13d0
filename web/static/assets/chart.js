// Canvas charts of a Series over a time window that scrolls with the
// clock: one large chart for the selected metric and sparklines on the
// metric cards. Drawing is explicit (the app asks for a frame when data
// arrived or the window moved); nothing here runs on its own.

import { clock, formatFixed } from "./dom.js";

const timeSteps = [1e3, 2e3, 5e3, 10e3, 15e3, 30e3, 60e3, 120e3, 300e3, 600e3, 900e3, 1800e3, 3600e3];

/** theme reads the page's colour variables so the canvas matches the CSS. */
export function theme() {
  const css = getComputedStyle(document.documentElement);
  const get = (name, fallback) => css.getPropertyValue(name).trim() || fallback;
  return {
    grid: get("--grid", "#1d2734"),
    border: get("--border", "#243041"),
    text: get("--muted", "#8593a6"),
    faint: get("--faint", "#5b6879"),
    line: get("--accent", "#4cc2ff"),
    fill: get("--accent-fill", "rgba(76,194,255,.14)"),
    fg: get("--text", "#d7dee8"),
    bg: get("--panel", "#121821"),
    mono: get("--mono", "monospace"),
  };
}

/** fit sizes a canvas's backing store to its CSS box and the pixel ratio. */
function fit(canvas) {
  const dpr = window.devicePixelRatio || 1;
  const w = Math.max(1, Math.round(canvas.clientWidth));
  const h = Math.max(1, Math.round(canvas.clientHeight));
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  return { ctx, w, h };
}

/**
 * span picks the time window to show: it ends now, or at the newest point
 * when the series is older than the window (a silent device, a device clock
 * behind ours) or newer than now (a clock ahead), so its data stays visible.
 */
function span(series, windowMs, now) {
  const last = series.lastTime();
  let end = now;
  if (last && (last < now - windowMs || last > now)) end = last + windowMs * 0.02;
  return { start: end - windowMs, end };
}

/**
 * niceStep rounds a raw step up to 1, 2, 2.5 or 5 times a power of ten and
 * says how many decimals print its multiples exactly.
 */
function niceStep(raw) {
  if (!(raw > 0)) return { step: 1, decimals: 0 };
  const exp = Math.floor(Math.log10(raw));
  const f = raw / Math.pow(10, exp);
  const m = f <= 1 ? 1 : f <= 2 ? 2 : f <= 2.5 ? 2.5 : f <= 5 ? 5 : 10;
  const e = m === 10 ? exp + 1 : exp;
  return { step: (m === 10 ? 1 : m) * Math.pow(10, e), decimals: Math.max(0, -e + (m === 2.5 ? 1 : 0)) };
}

/**
 * yRange is the value range of points [from, to) with nice bounds and the
 * decimals its labels need. A range too small for floating point to tell
 * apart from a flat line is padded like one.
 */
function yRange(series, from, to) {
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = from; i < to; i++) {
    const v = series.v[i];
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  if (hi - lo <= Math.abs(hi + lo) * 1e-9) {
    const mid = (lo + hi) / 2;
    const pad = mid === 0 ? 1 : Math.abs(mid) * 0.05;
    lo = mid - pad;
    hi = mid + pad;
  }
  const { step, decimals } = niceStep((hi - lo) / 4);
  return { lo: Math.floor(lo / step) * step, hi: Math.ceil(hi / step) * step, step, decimals };
}

/**
 * tracePath adds the series' line to ctx's current path. With more points
 * than pixels it draws each pixel column's range instead, so a dense series
 * costs what a sparse one does.
 */
function tracePath(ctx, series, from, to, x, y, stepped) {
  if (to - from > 2 * ctx.canvas.clientWidth) {
    traceDense(ctx, series, from, to, x, y);
    return;
  }
  let prevY = 0;
  for (let i = from; i < to; i++) {
    const px = x(series.t[i]);
    const py = y(series.v[i]);
    if (i === from) ctx.moveTo(px, py);
    else if (stepped) {
      ctx.lineTo(px, prevY);
      ctx.lineTo(px, py);
    } else ctx.lineTo(px, py);
    prevY = py;
  }
}

/** traceDense draws first, min, max and last of each pixel column. */
function traceDense(ctx, series, from, to, x, y) {
  let col = NaN;
  let first = 0;
  let min = 0;
  let max = 0;
  let last = 0;
  let started = false;
  const flush = () => {
    if (started) ctx.lineTo(col, first);
    else ctx.moveTo(col, first);
    started = true;
    ctx.lineTo(col, min);
    ctx.lineTo(col, max);
    ctx.lineTo(col, last);
  };
  for (let i = from; i < to; i++) {
    const c = Math.round(x(series.t[i]));
    const py = y(series.v[i]);
    if (c !== col) {
      if (!Number.isNaN(col)) flush();
      col = c;
      first = min = max = last = py;
    } else {
      if (py < min) min = py;
      if (py > max) max = py;
      last = py;
    }
  }
  if (!Number.isNaN(col)) flush();
}

/** trimZeros drops a decimal fraction's trailing zeros: 20.50 → 20.5. */
export function trimZeros(s) {
  return s.includes(".") && !s.includes("e") ? s.replace(/\.?0+$/, "") : s;
}

/** summary is the min, max and mean of points [from, to), to > from. */
function summary(series, from, to) {
  let min = Infinity;
  let max = -Infinity;
  let sum = 0;
  for (let i = from; i < to; i++) {
    const v = series.v[i];
    if (v < min) min = v;
    if (v > max) max = v;
    sum += v;
  }
  return { min, max, mean: sum / (to - from) };
}

/** TimeChart draws one series with axes, grid, area and the latest value. */
export class TimeChart {
  constructor(canvas) {
    this.canvas = canvas;
    this.colors = theme();
  }

  /**
   * draw renders series over the last windowMs. It returns the number of
   * points inside the window, their min, max and mean (null when there are
   * none), the y-axis labels (ticks) and the decimals that tell values a
   * tenth of a step apart (decimals). stepped draws booleans as steps.
   */
  draw(series, { windowMs, now, stepped = false, unit = "" }) {
    const { ctx, w, h } = fit(this.canvas);
    const none = { points: 0, min: null, max: null, mean: null, ticks: [], decimals: 0 };
    if (!series || series.length === 0) return none;
    const c = this.colors;
    const { start, end } = span(series, windowMs, now);
    const first = series.lowerBound(start);
    const from = Math.max(0, first - 1);
    const to = series.length;
    const { lo, hi, step, decimals } = yRange(series, from, to);

    ctx.font = `11px ${c.mono}`;
    const labels = [];
    for (let i = 0, v = lo; v <= hi + step / 2; v = lo + ++i * step) labels.push([v, formatFixed(v, decimals)]);
    const left = Math.ceil(Math.max(...labels.map(([, s]) => ctx.measureText(s).width))) + 14;
    const plot = { l: left, r: w - 16, t: 12, b: h - 24 };
    const x = (t) => plot.l + ((t - start) / (end - start)) * (plot.r - plot.l);
    const y = (v) => plot.b - ((v - lo) / (hi - lo)) * (plot.b - plot.t);

    this.grid(ctx, plot, labels, y, start, end, x);

    ctx.save();
    ctx.beginPath();
    ctx.rect(plot.l, plot.t - 4, plot.r - plot.l + 6, plot.b - plot.t + 8);
    ctx.clip();
    // Area under the line, then the line over it.
    ctx.beginPath();
    tracePath(ctx, series, from, to, x, y, stepped);
    const lastX = x(series.t[to - 1]);
    const firstX = x(series.t[from]);
    ctx.lineTo(lastX, plot.b);
    ctx.lineTo(firstX, plot.b);
    ctx.closePath();
    const grad = ctx.createLinearGradient(0, plot.t, 0, plot.b);
    grad.addColorStop(0, c.fill);
    grad.addColorStop(1, "rgba(0,0,0,0)");
    ctx.fillStyle = grad;
    ctx.fill();
    ctx.beginPath();
    tracePath(ctx, series, from, to, x, y, stepped);
    ctx.strokeStyle = c.line;
    ctx.lineWidth = 1.6;
    ctx.lineJoin = "round";
    ctx.stroke();
    ctx.restore();

    const fine = decimals + 1;
    const last = series.v[to - 1];
    this.lastValue(ctx, plot, lastX, y(last), stepped ? String(last === 1) : trimZeros(formatFixed(last, fine)), unit);
    const ticks = labels.map(([, s]) => s);
    return first < to ? { points: to - first, ...summary(series, first, to), ticks, decimals: fine } : { ...none, ticks };
  }

  /** grid draws the horizontal value lines and the time ticks. */
  grid(ctx, plot, labels, y, start, end, x) {
    const c = this.colors;
    ctx.lineWidth = 1;
    ctx.strokeStyle = c.grid;
    ctx.fillStyle = c.faint;
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (const [v, s] of labels) {
      const py = Math.round(y(v)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(plot.l, py);
      ctx.lineTo(plot.r, py);
      ctx.stroke();
      ctx.fillText(s, plot.l - 8, py);
    }
    const want = Math.max(2, Math.floor((plot.r - plot.l) / 90));
    const tick = timeSteps.find((s) => (end - start) / s <= want) || timeSteps[timeSteps.length - 1];
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    for (let t = Math.ceil(start / tick) * tick; t <= end; t += tick) {
      const px = Math.round(x(t)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(px, plot.t);
      ctx.lineTo(px, plot.b);
      ctx.stroke();
      const label = tick >= 60e3 ? clock(t).slice(0, 5) : clock(t);
      ctx.fillText(label, px, plot.b + 7);
    }
    ctx.strokeStyle = c.border;
    ctx.beginPath();
    ctx.moveTo(plot.l, plot.b + 0.5);
    ctx.lineTo(plot.r, plot.b + 0.5);
    ctx.stroke();
  }

  /** lastValue marks the newest point and labels it with text. */
  lastValue(ctx, plot, px, py, text, unit) {
    const c = this.colors;
    ctx.fillStyle = c.line;
    ctx.beginPath();
    ctx.arc(px, py, 3.5, 0, 2 * Math.PI);
    ctx.fill();
    if (unit) text += " " + unit;
    ctx.font = `600 12px ${c.mono}`;
    const tw = ctx.measureText(text).width + 12;
    const bx = Math.min(Math.max(plot.l, px - tw - 8), plot.r - tw);
    const by = Math.min(Math.max(plot.t, py - 22), plot.b - 18);
    ctx.fillStyle = c.bg;
    ctx.strokeStyle = c.line;
    ctx.beginPath();
    ctx.roundRect(bx, by, tw, 18, 4);
    ctx.fill();
    ctx.stroke();
    ctx.fillStyle = c.fg;
    ctx.textAlign = "left";
    ctx.textBaseline = "middle";
    ctx.fillText(text, bx + 6, by + 9.5);
  }
}

/**
 * sparkline draws the last points of series as a small line, evenly
 * spaced and without axes: a trend at a glance, full from the first
 * readings on, whatever the chart's time window.
 */
export function sparkline(canvas, series, points, colors, stepped) {
  const { ctx, w, h } = fit(canvas);
  if (!series || series.length < 2) return;
  const to = series.length;
  const from = Math.max(0, to - points);
  const { lo, hi } = yRange(series, from, to);
  const last = Math.max(1, points - 1);
  const x = (i) => w - 4 - ((to - 1 - i) / last) * (w - 8);
  const y = (v) => h - 3 - ((v - lo) / (hi - lo)) * (h - 6);
  ctx.beginPath();
  let prevY = 0;
  for (let i = from; i < to; i++) {
    const px = x(i);
    const py = y(series.v[i]);
    if (i === from) ctx.moveTo(px, py);
    else if (stepped) {
      ctx.lineTo(px, prevY);
      ctx.lineTo(px, py);
    } else ctx.lineTo(px, py);
    prevY = py;
  }
  ctx.strokeStyle = colors.line;
  ctx.globalAlpha = 0.8;
  ctx.lineWidth = 1.2;
  ctx.lineJoin = "round";
  ctx.stroke();
  ctx.globalAlpha = 1;
  ctx.fillStyle = colors.line;
  ctx.beginPath();
  ctx.arc(x(to - 1), y(series.v[to - 1]), 2, 0, 2 * Math.PI);
  ctx.fill();
}
