package firmwaresim

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lxzan/gws"
)

// fakeStream adds the watcher endpoints to a fakeHub. Each
// stream follows one script: a stream opened without a resume id gets
// events 1..cut and is then cut off (SSE: closed in the middle of event
// cut+1; WebSocket: closed with 1008 as a slow consumer); a resumed stream
// gets a reset when asked, then events cut+1..total, and stays open.
// Every tenth event is a presence event, the others telemetry with a
// "ts" age in the past.
type fakeStream struct {
	t     *testing.T
	up    *gws.Upgrader
	loops sync.WaitGroup

	// Knobs, set before the simulator starts.
	total, cut int
	age        time.Duration
	reset      bool // send a reset on resumed streams
	refuse     int  // answer the first refuse requests with 503
	badSub     bool // WebSocket: answer subscribes with an error op only

	mu      sync.Mutex
	reqs    int      // stream requests (SSE) or upgrade requests (WebSocket)
	subs    int      // subscribe messages
	resumes []string // resume ids received
	topics  [][]string
	served  int // events written
	conns   []*gws.Conn
}

func newFakeStream(t *testing.T, h *fakeHub, knobs func(*fakeStream)) *fakeStream {
	t.Helper()
	f := &fakeStream{t: t, total: 40, cut: 15, age: 30 * time.Millisecond}
	if knobs != nil {
		knobs(f)
	}
	f.up = gws.NewUpgrader(fakeStreamWS{f}, &gws.ServerOption{CheckUtf8Enabled: true})
	h.mux.HandleFunc("GET /v1/stream", f.serveSSE)
	h.mux.HandleFunc("GET /v1/stream/ws", f.serveWS)
	t.Cleanup(f.close)
	return f
}

func (f *fakeStream) close() {
	f.mu.Lock()
	conns := f.conns
	f.mu.Unlock()
	for _, c := range conns {
		_ = c.NetConn().Close()
	}
	f.loops.Wait()
}

func (f *fakeStream) servedEvents() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.served
}

// admit counts a request and reports whether to serve it.
func (f *fakeStream) admit(w http.ResponseWriter) bool {
	f.mu.Lock()
	f.reqs++
	refuse := f.reqs <= f.refuse
	f.mu.Unlock()
	if refuse {
		http.Error(w, `{"error":{"code":"unavailable","message":"busy"}}`, http.StatusServiceUnavailable)
	}
	return !refuse
}

// span returns the events of a stream resuming from (or not) and notes
// the resume id.
func (f *fakeStream) span(from string, topics []string) (first, last int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.topics = append(f.topics, topics)
	if from == "" {
		return 1, f.cut
	}
	f.resumes = append(f.resumes, from)
	return f.cut + 1, f.total
}

func (f *fakeStream) count(n int) {
	f.mu.Lock()
	f.served += n
	f.mu.Unlock()
}

// eventData returns the data of event i.
func (f *fakeStream) eventData(i int) (kind, data string) {
	ts := time.Now().Add(-f.age).UTC().Format("2006-01-02T15:04:05.000Z")
	if i%10 == 0 {
		return "presence", fmt.Sprintf(`{"topic":"presence/d","device":"d","online":true,"ts":%q}`, ts)
	}
	return "telemetry", fmt.Sprintf(`{"topic":"telemetry/d/door","device":"d","metric":"door","value":"\"ts\":\"x","ts":%q}`, ts)
}

func (f *fakeStream) serveSSE(w http.ResponseWriter, r *http.Request) {
	if !f.admit(w) {
		return
	}
	from := r.Header.Get("Last-Event-ID")
	first, last := f.span(from, r.URL.Query()["topic"])
	w.Header().Set("Content-Type", "text/event-stream")
	rc := http.NewResponseController(w)
	_, _ = io.WriteString(w, "retry: 2000\n\n: ping\n\n")
	if from != "" && f.reset {
		_, _ = io.WriteString(w, "event: reset\ndata: {\"oldest\":\"s-1\"}\n\n")
	}
	for i := first; i <= last; i++ {
		kind, data := f.eventData(i)
		fmt.Fprintf(w, "id: s-%d\r\nevent: %s\ndata: %s\n\n", i, kind, data)
	}
	if from == "" {
		fmt.Fprintf(w, "id: s-%d\nevent: telemetry\n", last+1) // cut off mid-event
	}
	_ = rc.Flush()
	f.count(last - first + 1)
	if from != "" {
		<-r.Context().Done()
		return
	}
	if conn, _, err := rc.Hijack(); err == nil {
		_ = conn.Close()
	}
}

func (f *fakeStream) serveWS(w http.ResponseWriter, r *http.Request) {
	if !f.admit(w) {
		return
	}
	conn, err := f.up.Upgrade(w, r)
	if err != nil {
		return
	}
	f.mu.Lock()
	f.conns = append(f.conns, conn)
	f.mu.Unlock()
	f.loops.Go(conn.ReadLoop)
}

// fakeStreamWS is the fake hub's WebSocket watcher handler.
type fakeStreamWS struct{ f *fakeStream }

func (fakeStreamWS) OnOpen(*gws.Conn)             {}
func (fakeStreamWS) OnClose(*gws.Conn, error)     {}
func (fakeStreamWS) OnPing(c *gws.Conn, _ []byte) { _ = c.WritePong(nil) }
func (fakeStreamWS) OnPong(*gws.Conn, []byte)     {}

func (s fakeStreamWS) OnMessage(c *gws.Conn, msg *gws.Message) {
	defer msg.Close()
	f := s.f
	var req struct {
		Op          string   `json:"op"`
		Topics      []string `json:"topics"`
		LastEventID string   `json:"last_event_id"`
	}
	if err := json.Unmarshal(msg.Bytes(), &req); err != nil || req.Op != "subscribe" {
		_ = c.WriteString(`{"op":"error","message":"bad request"}`)
		return
	}
	f.mu.Lock()
	f.subs++
	f.mu.Unlock()
	if f.badSub {
		_ = c.WriteString(`{"op":"error","message":"bad filter"}`)
		return
	}
	first, last := f.span(req.LastEventID, req.Topics)
	topics, _ := json.Marshal(req.Topics)
	_ = c.WriteString(`{"op":"subscribed","topics":` + string(topics) + `}`)
	_ = c.WriteString(`not json`)
	if req.LastEventID != "" && f.reset {
		_ = c.WriteString(`{"op":"reset","oldest":"s-1"}`)
	}
	if req.LastEventID == "" {
		_ = c.WriteString(`{"op":"error","message":"unknown op \"x\""}`)
	}
	for i := first; i <= last; i++ {
		kind, data := f.eventData(i)
		_ = c.WriteString(fmt.Sprintf(`{"op":"event","id":"s-%d","event":%q,"data":%s}`, i, kind, data))
	}
	f.count(last - first + 1)
	if req.LastEventID == "" {
		_ = c.WriteClose(1008, []byte("slow consumer"))
	}
}

// runSim runs the simulator until cond holds, stops it like an interrupt
// (drain, close, verify) and returns the simulator, the summary and Run's
// error. cond is polled; only a hang hits the timeout.
func runSim(t *testing.T, cfg Config, what string, cond func(*Sim) bool) (*Sim, *Summary, error) {
	t.Helper()
	cfg.Duration = 0
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	type result struct {
		sum *Summary
		err error
	}
	done := make(chan result, 1)
	go func() {
		sum, err := s.Run(ctx)
		done <- result{sum, err}
	}()
	waitRun(t, s, what, func() bool { return cond(s) })
	cancel()
	r := <-done
	return s, r.sum, r.err
}

// TestWatchersResume runs watchers against the scripted fake stream: each
// is cut off once, resumes after its last complete event, gets a reset,
// and receives every event exactly once.
func TestWatchersResume(t *testing.T) {
	for _, tr := range []WatchTransport{WatchSSE, WatchWS} {
		t.Run(string(tr), func(t *testing.T) {
			h := newFakeHub(t, nil)
			f := newFakeStream(t, h, func(f *fakeStream) { f.reset, f.refuse = true, 1 })
			cfg := h.config()
			cfg.Watchers, cfg.WatchTransport = 3, tr
			cfg.WatchFilter = "telemetry/+/door, presence/#"
			_, sum, err := runSim(t, cfg, "every event served", func(*Sim) bool { return f.servedEvents() >= 3*f.total })
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			w := sum.Watchers
			if w == nil {
				t.Fatal("summary has no watchers")
			}
			telemetry := uint64(3 * (f.total - f.total/10))
			want := WatcherSummary{
				Count: 3, Transport: string(tr), Filters: []string{"telemetry/+/door", "presence/#"},
				Deliveries: uint64(3 * f.total), PerWatcherMin: uint64(f.total), PerWatcherMax: uint64(f.total),
				LatencySamples: telemetry, Disconnects: 3, Resets: 3, ConnectFail: 1,
			}
			if tr == WatchWS {
				want.Errors = 3
			}
			got := *w
			got.Latency, got.DeliveriesPerS = Latency{}, 0
			if !equalJSON(got, want) {
				t.Fatalf("watchers\n got %+v\nwant %+v", got, want)
			}
			ageMS := float64(f.age / time.Millisecond)
			if w.Latency.P50 < ageMS || w.Latency.Max < w.Latency.P99 || w.DeliveriesPerS <= 0 {
				t.Fatalf("latency %+v (events are %v old), %.0f deliveries/s", w.Latency, f.age, w.DeliveriesPerS)
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			want15 := fmt.Sprintf("s-%d", f.cut)
			if len(f.resumes) != 3 || slices.ContainsFunc(f.resumes, func(id string) bool { return id != want15 }) {
				t.Fatalf("resumed from %q, want three times %q", f.resumes, want15)
			}
			for _, topics := range f.topics {
				if !slices.Equal(topics, want.Filters) {
					t.Fatalf("topics %q, want %q", topics, want.Filters)
				}
			}
		})
	}
}

func equalJSON(a, b any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

// TestWatchersNeverConnect: when no watcher can open its stream, Run
// fails with ErrNoConnection naming the hub's answer, and the attempts
// count as connect failures.
func TestWatchersNeverConnect(t *testing.T) {
	tests := []struct {
		name   string
		tr     WatchTransport
		knobs  func(*fakeStream)
		stream bool // register the fake stream endpoints
		errIs  error
		errMsg string
	}{
		{"sse 404", WatchSSE, nil, false, ErrHubResponse, "HTTP 404"},
		{"sse 503", WatchSSE, func(f *fakeStream) { f.refuse = 1 << 30 }, true, ErrHubResponse, "HTTP 503"},
		{"ws 404", WatchWS, nil, false, ErrHubResponse, "HTTP 404"},
		{"ws subscribe refused", WatchWS, func(f *fakeStream) { f.badSub = true }, true, ErrHubResponse, "bad filter"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newFakeHub(t, nil)
			var f *fakeStream
			if tt.stream {
				f = newFakeStream(t, h, tt.knobs)
			}
			cfg := h.config()
			cfg.Watchers, cfg.WatchTransport, cfg.ConnectTimeout = 2, tt.tr, 300*time.Millisecond
			_, sum, err := runSim(t, cfg, "a device connected and failed watcher attempts", func(s *Sim) bool {
				if s.stats.connects.Load() == 0 {
					return false
				}
				if f != nil {
					f.mu.Lock()
					defer f.mu.Unlock()
					return f.reqs >= 4
				}
				return true
			})
			if !errors.Is(err, ErrNoConnection) || !errors.Is(err, tt.errIs) || !strings.Contains(err.Error(), tt.errMsg) {
				t.Fatalf("Run error %v, want %v and %v mentioning %q", err, ErrNoConnection, tt.errIs, tt.errMsg)
			}
			if sum.Watchers.ConnectFail < 2 || sum.Watchers.Deliveries != 0 || sum.Watchers.Disconnects != 0 {
				t.Fatalf("summary %+v, watchers %+v", sum, *sum.Watchers)
			}
		})
	}
}

func TestWatchConfig(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Config)
		msg  string // "" when valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"several filters", func(c *Config) { c.Watchers, c.WatchFilter = 2, "telemetry/+/temp, presence/#,#" }, ""},
		{"negative watchers", func(c *Config) { c.Watchers = -1 }, "watchers must not be negative"},
		{"bad transport", func(c *Config) { c.WatchTransport = "udp" }, "watch-transport"},
		{"prefix wildcard", func(c *Config) { c.WatchFilter = "telemetry/sim-+/#" }, "watch-filter"},
		{"hash not last", func(c *Config) { c.WatchFilter = "telemetry/#/temp" }, "watch-filter"},
		{"hash in level", func(c *Config) { c.WatchFilter = "telemetry/a#" }, "watch-filter"},
		{"empty entry", func(c *Config) { c.WatchFilter = "telemetry/#," }, "watch-filter"},
		{"too long", func(c *Config) { c.WatchFilter = strings.Repeat("a", 257) }, "watch-filter"},
		{"bad utf-8", func(c *Config) { c.WatchFilter = "telemetry/\xff" }, "watch-filter"},
		{"negative settle", func(c *Config) { c.WatchSettle = -time.Second }, "settle"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var cfg Config
			tt.mod(&cfg)
			_, err := New(cfg)
			if tt.msg == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("New error %v, want ErrInvalidConfig mentioning %q", err, tt.msg)
			}
		})
	}
}

func TestWatchFlags(t *testing.T) {
	var cfg Config
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cfg.RegisterFlags(fs)
	if cfg.WatchTransport != WatchSSE {
		t.Fatalf("default watch transport %q", cfg.WatchTransport)
	}
	err := fs.Parse([]string{"--watchers", "7", "--watch-transport", "ws", "--watch-filter", "presence/#"})
	if err != nil || cfg.Watchers != 7 || cfg.WatchTransport != WatchWS || cfg.WatchFilter != "presence/#" {
		t.Fatalf("parse: %v, config %+v", err, cfg)
	}
	if err := fs.Parse([]string{"--watch-transport", "mqtt"}); err == nil {
		t.Fatal("--watch-transport mqtt accepted")
	}
}

func TestWatcherSummaryOutput(t *testing.T) {
	sum := &Summary{Watchers: &WatcherSummary{
		Count: 2, Transport: "sse", Filters: []string{"#"}, Deliveries: 10, DeliveriesPerS: 5,
		Latency: Latency{P50: 1, P99: 2, Max: 3}, Disconnects: 1, Resets: 1,
	}}
	var b strings.Builder
	if err := sum.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"watchers 2 sse #: deliveries 10 (5/s", "p99 2.00", "watcher disconnects 1  resets 1"} {
		if !strings.Contains(b.String(), want) {
			t.Fatalf("text %q lacks %q", b.String(), want)
		}
	}
	j, _ := json.Marshal(sum)
	var m struct {
		Watchers map[string]json.RawMessage `json:"watchers"`
	}
	if err := json.Unmarshal(j, &m); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"count", "deliveries", "deliveries_per_s", "latency_ms", "disconnects", "resets"} {
		if _, ok := m.Watchers[key]; !ok {
			t.Fatalf("watchers JSON %s lacks %q", j, key)
		}
	}
	var lat map[string]float64
	if err := json.Unmarshal(m.Watchers["latency_ms"], &lat); err != nil || lat["p50"] != 1 || lat["p99"] != 2 || lat["max"] != 3 {
		t.Fatalf("latency_ms %s: %v", m.Watchers["latency_ms"], err)
	}
	if j, _ := json.Marshal(&Summary{}); strings.Contains(string(j), "watchers") {
		t.Fatalf("summary without watchers has them: %s", j)
	}
}

func TestHistogramMerge(t *testing.T) {
	var a, b, all Histogram
	for i := range 100 {
		d := time.Duration(i) * time.Millisecond
		if i%3 == 0 {
			a.Record(d)
		} else {
			b.Record(d)
		}
		all.Record(d)
	}
	var m Histogram
	m.merge(&a)
	m.merge(&b)
	if m.Count() != all.Count() || m.Max() != all.Max() || m.Quantile(0.5) != all.Quantile(0.5) || m.Quantile(0.99) != all.Quantile(0.99) {
		t.Fatalf("merged count %d max %v p50 %v p99 %v; want %d %v %v %v", m.Count(), m.Max(), m.Quantile(0.5),
			m.Quantile(0.99), all.Count(), all.Max(), all.Quantile(0.5), all.Quantile(0.99))
	}
}

// cutProxy forwards TCP connections to upstream and cuts each one after
// limit bytes from upstream, so that a watcher behind it loses its stream
// again and again, in the middle of an event.
type cutProxy struct {
	ln       net.Listener
	upstream string
	limit    int64
	wg       sync.WaitGroup
	cuts     atomic.Int64

	mu    sync.Mutex
	conns []net.Conn
}

func startCutProxy(t *testing.T, upstream string, limit int64) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, upstream: upstream, limit: limit}
	p.wg.Go(p.accept)
	t.Cleanup(func() {
		_ = ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			_ = c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *cutProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", p.upstream)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, up)
		p.mu.Unlock()
		p.wg.Go(func() {
			_, _ = io.Copy(up, c)
			_ = up.Close()
		})
		p.wg.Go(func() {
			if n, _ := io.CopyN(c, up, p.limit); n == p.limit {
				p.cuts.Add(1)
			}
			_ = c.Close()
			_ = up.Close()
		})
	}
}

// TestE2EWatchers runs devices and watchers against a real hub: every
// watcher receives every event of every acked reading exactly once (five
// metrics a reading), also behind a proxy that keeps cutting the streams
// so that the watchers resume again and again.
func TestE2EWatchers(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	tests := []struct {
		name  string
		tr    WatchTransport
		proxy bool
	}{
		{"sse", WatchSSE, false},
		{"ws", WatchWS, false},
		{"sse streams cut", WatchSSE, true},
		{"ws streams cut", WatchWS, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := startRealHub(t, nil)
			cfg := Config{
				Hub: "http://" + h.HTTPAddr(), MQTT: "tcp://" + h.MQTTAddr(), Devices: 20, Rate: 50,
				Watchers: 3, WatchTransport: tt.tr, DrainTimeout: 30 * time.Second, WatchSettle: 2 * time.Second,
				BackoffMin: 5 * time.Millisecond, BackoffMax: 100 * time.Millisecond,
			}
			var proxy *cutProxy
			if tt.proxy {
				proxy = startCutProxy(t, h.HTTPAddr(), 32<<10)
				cfg.WatchHub = "http://" + proxy.ln.Addr().String()
			}
			_, sum, err := runSim(t, cfg, "600 acks", func(s *Sim) bool { return s.stats.acked.Load() >= 600 })
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			w := sum.Watchers
			t.Logf("acked %d; watchers %+v", sum.Acked, *w)
			want := sum.Acked * uint64(len(metricNames))
			if sum.Unacked != 0 || w.PerWatcherMin != want || w.PerWatcherMax != want || w.LatencySamples != 3*want {
				t.Fatalf("acked %d (unacked %d): each watcher should get %d events, got %d..%d, latency samples %d",
					sum.Acked, sum.Unacked, want, w.PerWatcherMin, w.PerWatcherMax, w.LatencySamples)
			}
			if w.Resets != 0 || w.Errors != 0 {
				t.Fatalf("resets %d, errors %d", w.Resets, w.Errors)
			}
			switch {
			case proxy == nil && w.Disconnects != 0:
				t.Fatalf("%d disconnects without a proxy", w.Disconnects)
			case proxy != nil && (w.Disconnects < 3 || w.Disconnects > uint64(proxy.cuts.Load())):
				t.Fatalf("%d disconnects, proxy cut %d streams (want at least one per watcher)", w.Disconnects, proxy.cuts.Load())
			}
		})
	}
}
