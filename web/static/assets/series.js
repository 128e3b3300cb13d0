// Series keeps the recent numeric readings of one device metric for the
// charts: time-ordered, bounded, trimmed in amortized steps.

export class Series {
  /** @param {number} cap the number of points kept */
  constructor(cap) {
    this.cap = cap;
    this.t = [];
    this.v = [];
  }

  get length() {
    return this.t.length;
  }

  /** push adds a point; a late one (replay, skewed clock) is inserted in order. */
  push(t, v) {
    const n = this.t.length;
    if (n === 0 || t >= this.t[n - 1]) {
      this.t.push(t);
      this.v.push(v);
    } else {
      const i = this.lowerBound(t);
      this.t.splice(i, 0, t);
      this.v.splice(i, 0, v);
    }
    if (this.t.length > this.cap * 1.25) this.trim();
  }

  /** trim drops the oldest points beyond the cap. */
  trim() {
    const drop = this.t.length - this.cap;
    if (drop <= 0) return;
    this.t.splice(0, drop);
    this.v.splice(0, drop);
  }

  /**
   * merge adds many points ([t, v] pairs in any order) at once, keeping
   * the newest cap points: history read after live points arrived.
   */
  merge(points) {
    points.sort((a, b) => a[0] - b[0]);
    const t = [];
    const v = [];
    let i = 0;
    let j = 0;
    while (i < points.length || j < this.t.length) {
      if (j >= this.t.length || (i < points.length && points[i][0] <= this.t[j])) {
        t.push(points[i][0]);
        v.push(points[i++][1]);
      } else {
        t.push(this.t[j]);
        v.push(this.v[j++]);
      }
    }
    this.t = t;
    this.v = v;
    this.trim();
  }

  /** lowerBound is the index of the first point at or after t. */
  lowerBound(t) {
    let lo = 0;
    let hi = this.t.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.t[mid] < t) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** last is the newest point's time, or 0. */
  lastTime() {
    return this.t.length ? this.t[this.t.length - 1] : 0;
  }
}
