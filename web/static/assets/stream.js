// Stream is the dashboard's one connection to the hub: a single
// EventSource on /v1/stream carrying every topic filter the page needs
// (browsers allow only six HTTP/1.1 connections per origin).
//
// Starting: the app passes the id to resume after (the newest event it read
// from history), and the hub sends exactly the events after it.
//
// Reconnecting: while the EventSource is CONNECTING the browser retries by
// itself and sends Last-Event-ID, so the hub replays what was missed. When
// it gives up (CLOSED: the hub answered with an error status), Stream tells
// the app (which may find out why and stop it), then opens a new one after
// a backoff and passes the last id as last_event_id. A "reset" event means
// the hub no longer has that id (or it is another hub): Stream closes and
// tells the app, which reloads its state and starts the stream again.
//
// The hub names its rejected-payload events "error", which is also the
// name of EventSource's own connection error event: both reach the same
// listeners. A hub event is a MessageEvent carrying data; a connection
// error is a plain Event. Each listener below tells them apart that way.

const kinds = ["telemetry", "presence", "error", "command"];

export class Stream {
  /**
   * @param {object} opts
   * @param {string} opts.url        stream endpoint, e.g. "v1/stream"
   * @param {string[]} opts.topics   topic filters
   * @param {string} [opts.token]   watcher token, sent as ?token= when set
   * @param {(kind: string, data: object, id: string) => void} opts.onEvent
   * @param {(state: string, detail: string) => void} opts.onState
   *        state is "connecting", "live", "reconnecting" or "offline"
   * @param {(lost: boolean) => void} opts.onOpen
   *        lost is true when the stream opened again without a resume
   *        point: events may have been missed and the app must reload
   * @param {() => void} opts.onReset
   * @param {() => void} opts.onClosed  the hub refused the stream
   */
  constructor(opts) {
    this.opts = opts;
    this.es = null;
    this.lastId = "";
    this.failures = 0;
    this.timer = 0;
    this.wasOpen = false;
  }

  /**
   * start opens the stream after event id from ("" for live only), on the
   * topic filters topics when given (else those it had).
   */
  start(from, topics) {
    this.stop();
    if (topics) this.opts.topics = topics;
    this.lastId = from;
    this.failures = 0;
    this.wasOpen = false;
    this.open();
  }

  /** stop closes the stream and cancels any pending reconnect. */
  stop() {
    clearTimeout(this.timer);
    if (this.es) this.es.close();
    this.es = null;
  }

  open() {
    const q = new URLSearchParams();
    for (const t of this.opts.topics) q.append("topic", t);
    if (this.lastId) q.set("last_event_id", this.lastId);
    if (this.opts.token) q.set("token", this.opts.token);
    const es = new EventSource(this.opts.url + "?" + q.toString());
    this.es = es;
    this.opts.onState(this.failures ? "reconnecting" : "connecting", "");
    es.onopen = () => {
      this.failures = 0;
      this.opts.onState("live", "");
      const lost = this.wasOpen && !this.lastId;
      this.wasOpen = true;
      this.opts.onOpen(lost);
    };
    es.onerror = (e) => {
      if (!(e instanceof MessageEvent)) this.failed(es);
    };
    for (const kind of kinds) es.addEventListener(kind, (e) => this.deliver(kind, e));
    es.addEventListener("reset", () => this.reset(es));
  }

  deliver(kind, e) {
    if (!(e instanceof MessageEvent)) return; // a connection error, see above
    if (e.lastEventId) this.lastId = e.lastEventId;
    let data;
    try {
      data = JSON.parse(e.data);
    } catch {
      return; // the hub sends JSON only; a torn event is not worth a crash
    }
    if (data && typeof data === "object") this.opts.onEvent(kind, data, e.lastEventId);
  }

  failed(es) {
    if (es !== this.es) return;
    this.failures++;
    if (es.readyState !== EventSource.CLOSED) {
      this.opts.onState("reconnecting", "");
      return;
    }
    es.close();
    const delay = Math.min(30000, 1000 * 2 ** Math.min(this.failures - 1, 5)) * (0.75 + Math.random() * 0.5);
    this.opts.onState("offline", "retry in " + Math.round(delay / 1000) + "s");
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.open(), delay);
    this.opts.onClosed();
  }

  reset(es) {
    if (es !== this.es) return;
    this.stop();
    this.lastId = "";
    this.opts.onReset();
  }
}
