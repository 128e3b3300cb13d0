package stream

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lxzan/gws"

	"github.com/telehub/telehub/bridge"
	"github.com/telehub/telehub/internal/metrics"
	"github.com/telehub/telehub/storage"
)

// guard bounds every wait of the tests; it only ever fires on a failure.
const guard = 30 * time.Second

// fakeLog is an in-memory event log with the storage.Store semantics the
// hub relies on, including trimming.
type fakeLog struct {
	ids storage.IDCodec

	mu      sync.Mutex
	recs    []storage.Record // retained, oldest first
	last    uint64
	scanErr error
	scans   int
}

func newFakeLog(identity string) *fakeLog {
	return &fakeLog{ids: storage.NewIDCodec(identity)}
}

func (l *fakeLog) IDs() storage.IDCodec { return l.ids }

func (l *fakeLog) LastID() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.last
}

func (l *fakeLog) OldestID() (uint64, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.recs) == 0 {
		return 0, false
	}
	return l.recs[0].ID, true
}

func (l *fakeLog) OldestEvent() (uint64, time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.recs) == 0 {
		return 0, time.Time{}, false
	}
	return l.recs[0].ID, l.recs[0].Time, true
}

// AfterTime looks at every retained record, as a reference for the
// store's binary search.
func (l *fakeLog) AfterTime(t time.Time) (uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.recs {
		if !r.Time.Before(t) {
			return r.ID - 1, nil
		}
	}
	return l.last, nil
}

// fakeEpoch is the Record.Time of the fake log's first event; event id is
// committed id seconds later. The hub never compares it with its clock.
var fakeEpoch = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

// fakeTime is the Record.Time of the fake log's event id.
func fakeTime(id uint64) time.Time { return fakeEpoch.Add(time.Duration(id) * time.Second) }

// Scan looks at no more than 64 records per call, to exercise chunking.
func (l *fakeLog) Scan(after, upTo uint64, match func(string) bool, limit int) ([]storage.Record, uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.scans++
	if l.scanErr != nil {
		return nil, after, l.scanErr
	}
	var out []storage.Record
	next, looked := after, 0
	for _, r := range l.recs {
		if r.ID <= after {
			continue
		}
		if r.ID > upTo || len(out) == limit || looked == 64 {
			return out, next, nil
		}
		looked++
		next = r.ID
		if match == nil || match(r.Topic) {
			out = append(out, r)
		}
	}
	return out, upTo, nil
}

// add commits one event per topic and returns the committed records.
func (l *fakeLog) add(topics ...string) []storage.Record {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]storage.Record, len(topics))
	for i, t := range topics {
		l.last++
		out[i] = storage.Record{
			ID: l.last, Kind: kindOf(t), Topic: t, Time: fakeTime(l.last),
			Data: fmt.Appendf(nil, `{"topic":%q,"n":%d}`, t, l.last),
		}
	}
	l.recs = append(l.recs, out...)
	return out
}

// trim drops the retained records with ids up to id.
func (l *fakeLog) trim(id uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	i := 0
	for i < len(l.recs) && l.recs[i].ID <= id {
		i++
	}
	l.recs = append([]storage.Record(nil), l.recs[i:]...)
}

func (l *fakeLog) scanCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.scans
}

func kindOf(topic string) bridge.Kind {
	switch {
	case strings.HasPrefix(topic, "presence/"):
		return bridge.KindPresence
	case strings.HasPrefix(topic, "errors/"):
		return bridge.KindError
	}
	return bridge.KindTelemetry
}

// commit adds topics to the log and publishes them, as storage does.
func commit(h *Hub, l *fakeLog, topics ...string) []storage.Record {
	recs := l.add(topics...)
	h.Publish(recs)
	return recs
}

// repeat returns n copies of topic.
func repeat(topic string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = topic
	}
	return out
}

// testHub is a hub on a fake log behind a real HTTP server on loopback.
type testHub struct {
	*Hub
	log *fakeLog
	m   *metrics.Metrics
	srv *httptest.Server
}

// newTestHub starts a hub and its server; both stop at cleanup, the hub
// first. cfg.Log defaults to a fresh fake log.
func newTestHub(t testing.TB, cfg Config) *testHub {
	t.Helper()
	return newTestHubListener(t, cfg, nil)
}

// newTestHubListener is newTestHub on a listener wrapped by wrap.
func newTestHubListener(t testing.TB, cfg Config, wrap func(net.Listener) net.Listener) *testHub {
	t.Helper()
	fl, _ := cfg.Log.(*fakeLog)
	if fl == nil {
		fl = newFakeLog("hubA")
		cfg.Log = fl
	}
	if cfg.Metrics == nil {
		cfg.Metrics = metrics.New("test")
	}
	h, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := h.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/stream", h.ServeSSE)
	mux.HandleFunc("GET /v1/stream/ws", h.ServeWS)
	srv := httptest.NewUnstartedServer(mux)
	if wrap != nil {
		srv.Listener = wrap(srv.Listener)
	}
	srv.Start()
	t.Cleanup(srv.Close)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), guard)
		defer cancel()
		if err := h.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return &testHub{Hub: h, log: fl, m: cfg.Metrics, srv: srv}
}

// waitFor polls cond until it holds, failing the test after guard.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(guard)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// sseEvent is one SSE block as a client sees it.
type sseEvent struct {
	id, event, data, comment, retry string
	hasID                           bool
}

// sseStream is a test SSE client on a real HTTP connection.
type sseStream struct {
	t      testing.TB
	resp   *http.Response
	r      *bufio.Reader
	cancel context.CancelFunc
}

// openSSE opens GET /v1/stream?query with the given headers, checks the
// response head and the retry line, and returns the stream.
func openSSE(t testing.TB, th *testHub, query string, header http.Header) *sseStream {
	t.Helper()
	s, resp := dialSSE(t, th, query, header)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	ev, err := s.next()
	if err != nil || ev.retry != "2000" {
		t.Fatalf("first block %+v, %v; want retry: 2000", ev, err)
	}
	return s
}

// dialSSE sends the request and returns the stream and response.
func dialSSE(t testing.TB, th *testHub, query string, header http.Header) (*sseStream, *http.Response) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, th.srv.URL+"/v1/stream?"+query, nil)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := th.srv.Client().Do(req)
	if err != nil {
		cancel()
		t.Fatalf("GET /v1/stream: %v", err)
	}
	s := &sseStream{t: t, resp: resp, r: bufio.NewReader(resp.Body), cancel: cancel}
	t.Cleanup(s.close)
	return s, resp
}

// next reads one block up to its blank line.
func (s *sseStream) next() (sseEvent, error) {
	var ev sseEvent
	var data []string
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			return ev, err
		}
		line = strings.TrimSuffix(line, "\n")
		if line == "" {
			ev.data = strings.Join(data, "\n")
			return ev, nil
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "":
			ev.comment = value
		case "id":
			ev.id, ev.hasID = value, true
		case "event":
			ev.event = value
		case "data":
			data = append(data, value)
		case "retry":
			ev.retry = value
		}
	}
}

// nextEvent reads blocks until an event (skipping pings).
func (s *sseStream) nextEvent() sseEvent {
	s.t.Helper()
	for {
		ev, err := s.next()
		if err != nil {
			s.t.Fatalf("reading SSE: %v", err)
		}
		if ev.comment == "" {
			return ev
		}
	}
}

func (s *sseStream) close() {
	s.cancel()
	_ = s.resp.Body.Close()
}

// wsMsg is any message the hub sends a WebSocket watcher.
type wsMsg struct {
	Op      string          `json:"op"`
	ID      string          `json:"id"`
	Event   string          `json:"event"`
	Data    json.RawMessage `json:"data"`
	Topics  []string        `json:"topics"`
	Oldest  *string         `json:"oldest"`
	Since   string          `json:"since"`
	Message string          `json:"message"`
}

// wsClient is a test WebSocket watcher using the gws client.
type wsClient struct {
	t      testing.TB
	conn   *gws.Conn
	msgs   chan wsMsg
	pings  atomic.Int32
	done   chan struct{}
	closed atomic.Pointer[gws.CloseError]
}

// dialWS opens a WebSocket watcher; its read loop ends at cleanup.
func dialWS(t testing.TB, th *testHub, header http.Header) *wsClient {
	t.Helper()
	c := &wsClient{t: t, msgs: make(chan wsMsg, 1<<16), done: make(chan struct{})}
	conn, resp, err := gws.NewClient(c, &gws.ClientOption{
		Addr:          "ws" + strings.TrimPrefix(th.srv.URL, "http") + "/v1/stream/ws",
		RequestHeader: header,
	})
	if err != nil {
		t.Fatalf("dial ws: %v", err)
	}
	_ = resp.Body.Close()
	c.conn = conn
	go func() {
		defer close(c.done)
		conn.ReadLoop()
	}()
	t.Cleanup(c.close)
	return c
}

func (c *wsClient) OnOpen(*gws.Conn) {}

func (c *wsClient) OnClose(_ *gws.Conn, err error) {
	var ce *gws.CloseError
	if errors.As(err, &ce) {
		c.closed.Store(ce)
	}
}

func (c *wsClient) OnPing(socket *gws.Conn, payload []byte) {
	c.pings.Add(1)
	_ = socket.WritePong(payload)
}

func (c *wsClient) OnPong(*gws.Conn, []byte) {}

func (c *wsClient) OnMessage(_ *gws.Conn, msg *gws.Message) {
	defer msg.Close()
	var m wsMsg
	if err := json.Unmarshal(msg.Bytes(), &m); err != nil {
		m = wsMsg{Op: "unparsable", Message: msg.Data.String()}
	}
	select {
	case c.msgs <- m:
	default:
		c.t.Errorf("ws client: message buffer full")
	}
}

// send writes v as a JSON text message.
func (c *wsClient) send(v any) {
	c.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		c.t.Fatal(err)
	}
	c.sendRaw(b)
}

func (c *wsClient) sendRaw(b []byte) {
	c.t.Helper()
	if err := c.conn.WriteMessage(gws.OpcodeText, b); err != nil {
		c.t.Fatalf("ws send: %v", err)
	}
}

// next returns the next message.
func (c *wsClient) next() wsMsg {
	c.t.Helper()
	select {
	case m := <-c.msgs:
		return m
	case <-c.done:
		// Drain what arrived before the close.
		select {
		case m := <-c.msgs:
			return m
		default:
		}
		c.t.Fatalf("ws connection closed: %+v", c.closed.Load())
	case <-time.After(guard):
		c.t.Fatalf("timed out waiting for a ws message")
	}
	return wsMsg{}
}

// waitClosed waits for the end of the read loop and returns the close
// frame the hub sent, if any.
func (c *wsClient) waitClosed() *gws.CloseError {
	c.t.Helper()
	select {
	case <-c.done:
	case <-time.After(guard):
		c.t.Fatalf("ws connection not closed")
	}
	return c.closed.Load()
}

func (c *wsClient) close() {
	_ = c.conn.NetConn().Close()
	<-c.done
}

// subscribe sends a subscribe and checks the answer.
func (c *wsClient) subscribe(from string, topics ...string) {
	c.t.Helper()
	c.send(map[string]any{"op": "subscribe", "topics": topics, "last_event_id": from})
	if m := c.next(); m.Op != "subscribed" || strings.Join(m.Topics, ",") != strings.Join(topics, ",") {
		c.t.Fatalf("got %+v, want subscribed %v", m, topics)
	}
}
