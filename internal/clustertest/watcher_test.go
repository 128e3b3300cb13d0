package clustertest

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lxzan/gws"
)

// watcher is a watcher that records every telemetry event and reset it
// receives, and reconnects when its stream ends, resuming with the id of
// the last event it received (Last-Event-ID over SSE, last_event_id over
// WebSocket), as a browser's EventSource or a careful client would. Its
// one goroutine is stopped and waited for by close.
type watcher struct {
	name string
	base string // HTTP base URL it connects to, on every attempt
	ws   bool

	mu       sync.Mutex
	events   []event // telemetry events, in the order received
	resets   []event
	lastID   string
	sessions int // streams opened (subscribed)

	ready    chan struct{} // closed when the first stream is open
	readyOne sync.Once
	ctx      context.Context
	cancel   context.CancelFunc
	conn     atomic.Pointer[gws.Conn]
	done     chan struct{}
}

// watchRetry is the pause between two connection attempts of a watcher.
const watchRetry = 50 * time.Millisecond

// startWatcher opens a watcher of every reading on the hub at base URL
// base (over WebSocket when ws is set) and returns once its first stream
// is open: events committed from then on reach it.
func startWatcher(t *testing.T, name, base string, ws bool) *watcher {
	t.Helper()
	w := &watcher{name: name, base: base, ws: ws, ready: make(chan struct{}), done: make(chan struct{})}
	w.ctx, w.cancel = context.WithCancel(context.Background())
	go w.loop()
	t.Cleanup(w.close)
	select {
	case <-w.ready:
	case <-time.After(waitGuard):
		t.Fatalf("watcher %s: no stream open after %s", name, waitGuard)
	}
	return w
}

// loop opens streams until close.
func (w *watcher) loop() {
	defer close(w.done)
	for w.ctx.Err() == nil {
		if w.ws {
			w.wsSession()
		} else {
			w.sseSession()
		}
		select {
		case <-w.ctx.Done():
		case <-time.After(watchRetry):
		}
	}
}

// close ends the watcher's stream and waits for its goroutine.
func (w *watcher) close() {
	w.cancel()
	if c := w.conn.Load(); c != nil {
		_ = c.NetConn().Close()
	}
	<-w.done
}

// opened counts a stream that the hub accepted.
func (w *watcher) opened() {
	w.mu.Lock()
	w.sessions++
	w.mu.Unlock()
	w.readyOne.Do(func() { close(w.ready) })
}

// received records one event.
func (w *watcher) received(ev event) {
	ev.At = time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case ev.Event == "reset":
		w.resets = append(w.resets, ev)
	case ev.ID != "":
		w.lastID = ev.ID
		if strings.HasPrefix(ev.Data.Topic, "telemetry/") {
			w.events = append(w.events, ev)
		}
	}
}

// snapshot returns the telemetry events and resets received so far.
func (w *watcher) snapshot() (events, resets []event) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]event(nil), w.events...), append([]event(nil), w.resets...)
}

// count returns how many telemetry events the watcher received.
func (w *watcher) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.events)
}

// resumeID returns the id the next stream resumes after.
func (w *watcher) resumeID() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lastID
}

// sseClient reads SSE streams: no overall timeout, a stream lasts.
var sseClient = &http.Client{}

// sseSession reads one SSE stream until it ends.
func (w *watcher) sseSession() {
	u := w.base + "/v1/stream?topic=" + url.QueryEscape(telemetryFilter)
	req, err := http.NewRequestWithContext(w.ctx, http.MethodGet, u, nil)
	if err != nil {
		return
	}
	if id := w.resumeID(); id != "" {
		req.Header.Set("Last-Event-ID", id)
	}
	resp, err := sseClient.Do(req)
	if err != nil {
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var ev event
	var data string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if data != "" {
				_ = json.Unmarshal([]byte(data), &ev.Data)
				w.received(ev)
			}
			ev, data = event{}, ""
		case strings.HasPrefix(line, "retry:"):
			w.opened()
		case strings.HasPrefix(line, "id: "):
			ev.ID = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "event: "):
			ev.Event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data = strings.TrimPrefix(line, "data: ")
		}
	}
}

// wsSession reads one WebSocket stream until it ends.
func (w *watcher) wsSession() {
	h := &wsWatch{w: w}
	conn, _, err := gws.NewClient(h, &gws.ClientOption{
		Addr:             "ws" + strings.TrimPrefix(w.base, "http") + "/v1/stream/ws",
		HandshakeTimeout: 5 * time.Second,
	})
	if err != nil {
		return
	}
	w.conn.Store(conn)
	defer w.conn.Store(nil)
	if w.ctx.Err() != nil {
		_ = conn.NetConn().Close()
	}
	conn.ReadLoop()
}

// wsWatch handles one WebSocket watcher connection, on its read loop.
type wsWatch struct {
	gws.BuiltinEventHandler
	w *watcher
}

// OnOpen subscribes, resuming after the last event received.
func (h *wsWatch) OnOpen(c *gws.Conn) {
	frame, _ := json.Marshal(map[string]any{
		"op": "subscribe", "topics": []string{telemetryFilter}, "last_event_id": h.w.resumeID(),
	})
	if err := c.WriteMessage(gws.OpcodeText, frame); err != nil {
		_ = c.NetConn().Close()
	}
}

// OnPing answers the hub's pings.
func (h *wsWatch) OnPing(c *gws.Conn, payload []byte) { _ = c.WritePong(payload) }

// OnMessage records events and resets.
func (h *wsWatch) OnMessage(_ *gws.Conn, m *gws.Message) {
	defer m.Close()
	var msg struct {
		Op     string    `json:"op"`
		ID     string    `json:"id"`
		Event  string    `json:"event"`
		Data   eventData `json:"data"`
		Oldest string    `json:"oldest"`
		Since  string    `json:"since"`
	}
	if err := json.Unmarshal(m.Bytes(), &msg); err != nil {
		return
	}
	switch msg.Op {
	case "subscribed":
		h.w.opened()
	case "event":
		h.w.received(event{ID: msg.ID, Event: msg.Event, Data: msg.Data})
	case "reset":
		h.w.received(event{Event: "reset", Data: eventData{Oldest: msg.Oldest, Since: msg.Since}})
	}
}
