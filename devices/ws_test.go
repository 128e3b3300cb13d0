package devices

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/telehub/telehub/internal/httpx"

	"github.com/lxzan/gws"

	"github.com/telehub/telehub/bridge"
	"github.com/telehub/telehub/devices/presence"
)

// wsEnv is a WebSocket endpoint served on loopback, with a fake bridge and
// a real presence tracker over a recording sink.
type wsEnv struct {
	ws   *WS
	ing  *fakeBridge
	live *presence.Tracker
	rec  *recordingSink
	base string // http://127.0.0.1:port
}

// newWSEnv serves an endpoint made from cfg; Bridge and Presence are
// filled in, and Heartbeat defaults to an hour so that no pings interfere.
// The tracker has the default device timeout unless deviceTimeout is
// given.
func newWSEnv(t *testing.T, cfg WSConfig, deviceTimeout ...time.Duration) *wsEnv {
	t.Helper()
	timeout := time.Duration(0)
	if len(deviceTimeout) > 0 {
		timeout = deviceTimeout[0]
	}
	return newWSEnvAround(t, cfg, timeout, func(p *presence.Tracker) Presence { return p })
}

// newWSEnvAround is newWSEnv with the endpoint's Presence made by around
// from the tracker.
func newWSEnvAround(t *testing.T, cfg WSConfig, deviceTimeout time.Duration, around func(*presence.Tracker) Presence) *wsEnv {
	t.Helper()
	env := &wsEnv{ing: &fakeBridge{}}
	env.live, env.rec = newTestPresence(t, deviceTimeout)
	var err error
	if cfg.Bridge == nil {
		cfg.Bridge = env.ing
	}
	cfg.Presence = around(env.live)
	if cfg.Heartbeat == 0 {
		cfg.Heartbeat = time.Hour
	}
	env.ws, err = NewWS(cfg)
	if err != nil {
		t.Fatalf("NewWS: %v", err)
	}
	env.ws.gwsReads = gwsReadsInTests
	mux := http.NewServeMux()
	mux.Handle("GET /v1/devices/{id}/ws", env.ws)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitGuard)
		defer cancel()
		if err := env.ws.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	env.base = srv.URL
	return env
}

// url returns the ws:// address of device's endpoint.
func (e *wsEnv) url(device string) string {
	return "ws" + strings.TrimPrefix(e.base, "http") + "/v1/devices/" + device + "/ws"
}

// openConns returns how many connections have a running read loop.
func (e *wsEnv) openConns() int {
	e.ws.mu.Lock()
	defer e.ws.mu.Unlock()
	return e.ws.loops
}

// wsClient is a gws client connection that reports what it receives.
type wsClient struct {
	conn     *gws.Conn
	events   chan string // "msg:<payload>", "pong:<payload>"
	pings    chan struct{}
	closed   chan error
	mute     bool // do not answer pings
	loopDone chan struct{}
}

func (c *wsClient) OnOpen(*gws.Conn) {}

func (c *wsClient) OnClose(_ *gws.Conn, err error) { c.closed <- err }

func (c *wsClient) OnPing(socket *gws.Conn, payload []byte) {
	select {
	case c.pings <- struct{}{}:
	default:
	}
	if !c.mute {
		_ = socket.WritePong(payload)
	}
}

func (c *wsClient) OnPong(_ *gws.Conn, payload []byte) { c.events <- "pong:" + string(payload) }

func (c *wsClient) OnMessage(_ *gws.Conn, m *gws.Message) {
	c.events <- "msg:" + string(m.Bytes())
	_ = m.Close()
}

// dial connects to url and runs the client's read loop until the test
// ends.
func dial(t *testing.T, url string, header http.Header) *wsClient {
	t.Helper()
	c, err := tryDial(url, header)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	t.Cleanup(c.stop)
	return c
}

func tryDial(url string, header http.Header) (*wsClient, error) {
	c := &wsClient{
		events:   make(chan string, 1024),
		pings:    make(chan struct{}, 64),
		closed:   make(chan error, 1),
		loopDone: make(chan struct{}),
	}
	conn, resp, err := gws.NewClient(c, &gws.ClientOption{Addr: url, RequestHeader: header})
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("%w (HTTP %d)", err, resp.StatusCode)
		}
		return nil, err
	}
	c.conn = conn
	go func() {
		defer close(c.loopDone)
		conn.ReadLoop()
	}()
	return c, nil
}

// stop closes the connection and waits for the read loop.
func (c *wsClient) stop() {
	_ = c.conn.WriteClose(1000, nil)
	<-c.loopDone
}

func (c *wsClient) send(t *testing.T, frame string) {
	t.Helper()
	if err := c.conn.WriteString(frame); err != nil {
		t.Fatalf("send %s: %v", frame, err)
	}
}

// next returns the next message or pong received.
func (c *wsClient) next(t *testing.T) string {
	t.Helper()
	select {
	case e := <-c.events:
		return e
	case err := <-c.closed:
		t.Fatalf("connection closed while waiting for a message: %v", err)
	case <-time.After(waitGuard):
		t.Fatal("timed out waiting for a message")
	}
	return ""
}

// barrier makes the hub write a pong, which is written with (or after)
// any answer that was ready, and checks that no message came before it.
func (c *wsClient) barrier(t *testing.T, tag string) {
	t.Helper()
	if err := c.conn.WritePing([]byte(tag)); err != nil {
		t.Fatal(err)
	}
	if got := c.next(t); got != "pong:"+tag {
		t.Fatalf("got %s before the pong", got)
	}
}

// closeError waits for the connection to close and returns the close
// frame the hub sent.
func (c *wsClient) closeError(t *testing.T) *gws.CloseError {
	t.Helper()
	select {
	case err := <-c.closed:
		c.closed <- err // for later waits
		var ce *gws.CloseError
		if !errors.As(err, &ce) {
			t.Fatalf("closed without a close frame: %v", err)
		}
		return ce
	case <-time.After(waitGuard):
		t.Fatal("timed out waiting for the close")
	}
	return nil
}

func TestNewWSRejectsBadConfig(t *testing.T) {
	ok := WSConfig{Bridge: &fakeBridge{}, Presence: newFakePresence()}
	tests := []struct {
		name   string
		modify func(c *WSConfig)
	}{
		{"no bridge", func(c *WSConfig) { c.Bridge = nil }},
		{"no presence", func(c *WSConfig) { c.Presence = nil }},
		{"negative max payload", func(c *WSConfig) { c.MaxPayload = -1 }},
		{"negative heartbeat", func(c *WSConfig) { c.Heartbeat = -time.Second }},
		{"negative timeout", func(c *WSConfig) { c.Timeout = -time.Second }},
		{"negative max inflight", func(c *WSConfig) { c.MaxInflight = -1 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := ok
			tt.modify(&cfg)
			if _, err := NewWS(cfg); !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("NewWS error = %v, want ErrInvalidConfig", err)
			}
		})
	}
	s, err := NewWS(ok)
	if err != nil {
		t.Fatal(err)
	}
	if s.cfg.MaxPayload != DefaultMaxPayload || s.cfg.Heartbeat != DefaultWSHeartbeat ||
		s.cfg.Timeout != DefaultDeviceTimeout || s.cfg.MaxInflight != DefaultWSMaxInflight {
		t.Fatalf("defaults not filled: %+v", s.cfg)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestWSAcks(t *testing.T) {
	tests := []struct {
		name      string
		result    bridge.Result
		submitErr error
		frame     string
		want      string
	}{
		{
			name:  "with seq",
			frame: `{"type":"telemetry","seq":42,"ts":1764064800000,"values":{"temp":21.5}}`,
			want:  `{"type":"ack","seq":42}`,
		},
		{
			name:  "without seq",
			frame: `{"type":"telemetry","values":{"temp":21.5,"door":"open"}}`,
			want:  `{"type":"ack"}`,
		},
		{
			name:  "senml",
			frame: `{"type":"telemetry","seq":3,"senml":[{"n":"temp","u":"Cel","v":21.5}]}`,
			want:  `{"type":"ack","seq":3}`,
		},
		{
			name:   "duplicate is acked the same",
			result: bridge.Result{Duplicate: true},
			frame:  `{"type":"telemetry","seq":7,"values":{"temp":21.5}}`,
			want:   `{"type":"ack","seq":7}`,
		},
		{
			name:   "store error",
			result: bridge.Result{Err: errors.New("disk full")},
			frame:  `{"type":"telemetry","seq":9,"values":{"temp":21.5}}`,
			want:   `{"type":"error","seq":9,"code":"internal","message":"the reading could not be stored"}`,
		},
		{
			name:      "submit error",
			submitErr: errors.New("storage closed"),
			frame:     `{"type":"telemetry","seq":10,"values":{"temp":21.5}}`,
			want:      `{"type":"error","seq":10,"code":"internal","message":"storage closed"}`,
		},
		{
			name:      "submit error with a wire code",
			submitErr: &bridge.Error{Code: bridge.CodeRateLimited, Message: "slow down"},
			frame:     `{"type":"telemetry","values":{"temp":21.5}}`,
			want:      `{"type":"error","code":"rate_limited","message":"slow down"}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newWSEnv(t, WSConfig{})
			env.ing.result, env.ing.submitErr = tt.result, tt.submitErr
			c := dial(t, env.url("dev-1"), nil)
			c.send(t, tt.frame)
			if got := c.next(t); got != "msg:"+tt.want {
				t.Fatalf("answer %s, want %s", got, tt.want)
			}
			if tt.submitErr != nil {
				return
			}
			env.ing.mu.Lock()
			defer env.ing.mu.Unlock()
			in := env.ing.writes[0].in
			if in.Device != "dev-1" || in.Transport != "ws" || in.SourceTopic != "devices/dev-1/ws" || in.Received.IsZero() {
				t.Fatalf("input %+v", in)
			}
			if p := env.ing.writes[0].p; len(p.Readings) == 0 || p.Readings[0].Metric == "" {
				t.Fatalf("payload %+v", p)
			}
		})
	}
}

func TestWSHeartbeatFrameIsNotAnswered(t *testing.T) {
	env := newWSEnv(t, WSConfig{})
	c := dial(t, env.url("d1"), nil)
	c.send(t, `{"type":"heartbeat"}`)
	c.barrier(t, "after-heartbeat")
	if n := env.ing.submitted(); n != 0 {
		t.Fatalf("%d payloads submitted for a heartbeat", n)
	}
}

func TestWSAnswersWaitForCommitInFrameOrder(t *testing.T) {
	env := newWSEnv(t, WSConfig{})
	env.ing.hold = true
	c := dial(t, env.url("d1"), nil)
	c.send(t, `{"type":"telemetry","seq":1,"values":{"a":1}}`)
	c.send(t, `{"type":"telemetry","seq":2,"values":{"a":2}}`)
	c.send(t, `{"type":"telemetry","values":{"a":3}}`)
	c.send(t, `{"type":"telemetry","seq":4,"values":{"a b":4}}`) // rejected at once
	waitFor(t, "three submissions", func() bool { return env.ing.submitted() == 3 })

	c.barrier(t, "none-stored")
	env.ing.releaseAt(1) // the second frame is stored, the first is not yet
	c.barrier(t, "second-stored")
	env.ing.releaseAt(0)
	for _, want := range []string{`{"type":"ack","seq":1}`, `{"type":"ack","seq":2}`} {
		if got := c.next(t); got != "msg:"+want {
			t.Fatalf("got %s, want %s", got, want)
		}
	}
	c.barrier(t, "third-not-stored")
	env.ing.releaseAt(2)
	if got := c.next(t); got != `msg:{"type":"ack"}` {
		t.Fatalf("got %s, want the seq-less ack", got)
	}
	if got := c.next(t); !strings.HasPrefix(got, `msg:{"type":"error","seq":4,"code":"bad_request"`) {
		t.Fatalf("got %s, want the error of frame 4", got)
	}
}

func TestWSRejections(t *testing.T) {
	tests := []struct {
		name   string
		frame  string
		binary bool
		seq    string // the seq part of the answer, "" when unknown
	}{
		{name: "invalid JSON", frame: `{"type":"telemetry","seq":5,"values":`, seq: `,"seq":5`},
		{name: "not JSON at all", frame: `hello`},
		{name: "bad metric name", frame: `{"type":"telemetry","seq":6,"values":{"a b":1}}`, seq: `,"seq":6`},
		{name: "nested value", frame: `{"type":"telemetry","seq":7,"values":{"x":{"y":1}}}`, seq: `,"seq":7`},
		{name: "array value", frame: `{"type":"telemetry","values":{"x":[1]}}`},
		{name: "wrong ts type", frame: `{"type":"telemetry","seq":8,"ts":true,"values":{"x":1}}`, seq: `,"seq":8`},
		{name: "wrong seq type", frame: `{"type":"telemetry","seq":"42","values":{"x":1}}`},
		{name: "negative seq", frame: `{"type":"telemetry","seq":-1,"values":{"x":1}}`},
		{name: "unknown type", frame: `{"type":"reboot","seq":9}`, seq: `,"seq":9`},
		{name: "no readings", frame: `{"type":"telemetry","seq":10,"values":{}}`, seq: `,"seq":10`},
		{name: "binary frame", frame: `{"type":"heartbeat"}`, binary: true},
	}
	env := newWSEnv(t, WSConfig{})
	c := dial(t, env.url("d1"), nil)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.binary {
				if err := c.conn.WriteMessage(gws.OpcodeBinary, []byte(tt.frame)); err != nil {
					t.Fatal(err)
				}
			} else {
				c.send(t, tt.frame)
			}
			got := strings.TrimPrefix(c.next(t), "msg:")
			var answer struct{ Type, Code, Message string }
			if err := json.Unmarshal([]byte(got), &answer); err != nil {
				t.Fatalf("answer %s: %v", got, err)
			}
			prefix := `{"type":"error"` + tt.seq + `,"code":"bad_request","message":`
			if !strings.HasPrefix(got, prefix) || answer.Message == "" {
				t.Fatalf("answer %s, want %s…", got, prefix)
			}
			rejected, last := env.ing.rejected()
			in := last.in
			if rejected != i+1 || in.SourceTopic != "devices/d1/ws" || in.Device != "d1" {
				t.Fatalf("%d rejections recorded (want %d), last input %+v", rejected, i+1, in)
			}
			// The connection stays usable.
			c.send(t, `{"type":"telemetry","seq":100,"values":{"ok":true}}`)
			if got := c.next(t); got != `msg:{"type":"ack","seq":100}` {
				t.Fatalf("after the rejection: %s", got)
			}
		})
	}
}

func TestWSLongErrorMessage(t *testing.T) {
	env := newWSEnv(t, WSConfig{})
	env.ing.submitErr = &bridge.Error{Code: bridge.CodeBadRequest, Message: strings.Repeat("é", 400)}
	c := dial(t, env.url("d1"), nil)
	c.send(t, `{"type":"telemetry","seq":1,"values":{"x":1}}`)
	var answer struct{ Message string }
	if err := json.Unmarshal([]byte(strings.TrimPrefix(c.next(t), "msg:")), &answer); err != nil {
		t.Fatal(err)
	}
	if answer.Message != strings.Repeat("é", maxAnswerMessage/2) {
		t.Fatalf("message of %d bytes, want %d", len(answer.Message), maxAnswerMessage)
	}
}

func TestWSCloseCodes(t *testing.T) {
	tests := []struct {
		name  string
		frame []byte
		code  uint16
	}{
		{"frame over max payload", []byte(`{"type":"telemetry","values":{"x":"` + strings.Repeat("a", 2048) + `"}}`), 1009},
		{"invalid UTF-8", []byte("{\"type\":\"telemetry\",\"values\":{\"x\":\"\xff\xfe\"}}"), 1007},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newWSEnv(t, WSConfig{MaxPayload: 1024})
			c := dial(t, env.url("d1"), nil)
			if err := c.conn.WriteMessage(gws.OpcodeText, tt.frame); err != nil {
				t.Fatal(err)
			}
			if ce := c.closeError(t); ce.Code != tt.code {
				t.Fatalf("close code %d (%s), want %d", ce.Code, ce.Reason, tt.code)
			}
			if n := env.ing.submitted(); n != 0 {
				t.Fatalf("%d payloads submitted", n)
			}
			got := env.rec.wait(t, 2)
			wantEvents(t, got, "d1 online=true ws session=1 connect", "d1 online=false ws session=1 disconnect")
		})
	}
}

// upgradeRequest sends a WebSocket upgrade request with plain net/http.
func upgradeRequest(t *testing.T, url string, header http.Header) (status int, body string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	upgrade := map[string]string{
		"Connection": "Upgrade", "Upgrade": "websocket",
		"Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
	}
	for k, v := range upgrade {
		req.Header.Set(k, v)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusSwitchingProtocols {
		return resp.StatusCode, ""
	}
	b, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q", ct)
	}
	return resp.StatusCode, string(b)
}

func TestWSRefusedBeforeUpgrade(t *testing.T) {
	env := newWSEnv(t, WSConfig{
		Authenticate: func(r *http.Request, device string) bool { return httpx.RequestToken(r) == "tok-"+device },
	})
	tests := []struct {
		name   string
		path   string
		header http.Header
		status int
		code   string
	}{
		{"leading dash", "/v1/devices/-d1/ws", nil, 400, "bad_request"},
		{"space", "/v1/devices/a%20b/ws", nil, 400, "bad_request"},
		{"plus", "/v1/devices/a+b/ws", nil, 400, "bad_request"},
		{"hash", "/v1/devices/a%23b/ws", nil, 400, "bad_request"},
		{"too long", "/v1/devices/" + strings.Repeat("x", 65) + "/ws", nil, 400, "bad_request"},
		{"invalid UTF-8", "/v1/devices/%C3%28/ws", nil, 400, "bad_request"},
		{"no token", "/v1/devices/d1/ws", nil, 401, "unauthorized"},
		{"wrong token", "/v1/devices/d1/ws", http.Header{"Authorization": {"Bearer tok-d2"}}, 401, "unauthorized"},
		{"another device's token in the query", "/v1/devices/d1/ws?token=tok-d2", nil, 401, "unauthorized"},
		{"bearer token", "/v1/devices/d1/ws", http.Header{"Authorization": {"Bearer tok-d1"}}, 101, ""},
		{"query token", "/v1/devices/d2/ws?token=tok-d2", nil, 101, ""},
		{"basic auth and query token", "/v1/devices/d3/ws?token=tok-d3", http.Header{"Authorization": {"Basic eDp5"}}, 101, ""},
		{"not an upgrade", "/v1/devices/d4/ws?token=tok-d4", http.Header{"Upgrade": {"h2c"}}, 400, "bad_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := upgradeRequest(t, env.base+tt.path, tt.header)
			if status != tt.status {
				t.Fatalf("status %d, want %d (%s)", status, tt.status, body)
			}
			if tt.code == "" {
				return
			}
			var e struct {
				Error struct{ Code, Message string }
			}
			if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error.Code != tt.code || e.Error.Message == "" {
				t.Fatalf("body %s, want code %s (%v)", body, tt.code, err)
			}
		})
	}
}

func TestWSUpgradeRefusedByGWS(t *testing.T) {
	env := newWSEnv(t, WSConfig{})
	req, err := http.NewRequest(http.MethodGet, env.base+"/v1/devices/d1/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13") // but no Sec-WebSocket-Key
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("status %d, want 400", resp.StatusCode)
	}
	if n := env.ws.Connected(); n != 0 {
		t.Fatalf("%d devices connected", n)
	}
}

func TestWSReplacedConnection(t *testing.T) {
	env := newWSEnv(t, WSConfig{})
	first := dial(t, env.url("d1"), nil)
	wantEvents(t, env.rec.wait(t, 1), "d1 online=true ws session=1 connect")

	second := dial(t, env.url("d1"), nil)
	ce := first.closeError(t)
	if ce.Code != 4000 || string(ce.Reason) != "replaced" {
		t.Fatalf("old connection closed with %d %q, want 4000 replaced", ce.Code, ce.Reason)
	}
	waitFor(t, "the old connection to end", func() bool { return env.openConns() == 1 })
	wantEvents(t, env.rec.wait(t, 1), "d1 online=true ws session=2 connect")
	second.barrier(t, "x")
	wantEvents(t, env.rec.take()) // no offline event for the replaced connection
	if s, online := env.live.Session("d1"); s != 2 || !online {
		t.Fatalf("Session = %d, %v; want 2, true", s, online)
	}
	if n := env.ws.Connected(); n != 1 {
		t.Fatalf("Connected = %d, want 1", n)
	}

	second.send(t, `{"type":"telemetry","seq":1,"values":{"x":1}}`)
	if got := second.next(t); got != `msg:{"type":"ack","seq":1}` {
		t.Fatalf("new connection answer %s", got)
	}
	second.stop()
	wantEvents(t, env.rec.wait(t, 1), "d1 online=false ws session=2 disconnect")
}

// A connection that begins after another of its device completed its
// handshake replaces it, however late the first one's read goroutine
// runs: the sessions follow the handshakes.
func TestWSLaterHandshakeReplaces(t *testing.T) {
	gate := &firstConnectWaits{second: make(chan struct{})}
	env := newWSEnvAround(t, WSConfig{}, 0, func(p *presence.Tracker) Presence {
		gate.Presence = p
		return gate
	})
	first := dial(t, env.url("d1"), nil)
	second := dial(t, env.url("d1"), nil)
	ce := first.closeError(t)
	if ce.Code != 4000 || string(ce.Reason) != "replaced" {
		t.Fatalf("first connection closed with %d %q, want 4000 replaced", ce.Code, ce.Reason)
	}
	second.send(t, `{"type":"telemetry","seq":1,"values":{"x":1}}`)
	if got := second.next(t); got != `msg:{"type":"ack","seq":1}` {
		t.Fatalf("second connection answer %s", got)
	}
	if s, online := env.live.Session("d1"); s != 2 || !online {
		t.Fatalf("Session = %d, %v; want 2, true", s, online)
	}
}

// firstConnectWaits is a Presence whose first Open takes its session
// only after a second Open took one, or after a second: a connection that
// took its session after its handshake was answered would then hold the
// later session though its device connected again after it.
type firstConnectWaits struct {
	Presence
	calls  atomic.Int32
	second chan struct{}
}

func (p *firstConnectWaits) Open(device, transport, reason string) (uint64, func()) {
	n := p.calls.Add(1)
	if n == 1 {
		select {
		case <-p.second:
		case <-time.After(time.Second):
		}
		return p.Presence.Open(device, transport, reason)
	}
	session, submit := p.Presence.Open(device, transport, reason)
	if n == 2 {
		close(p.second)
	}
	return session, submit
}

func TestWSPings(t *testing.T) {
	env := newWSEnv(t, WSConfig{Heartbeat: 20 * time.Millisecond})
	c := dial(t, env.url("d1"), nil)
	env.rec.wait(t, 1)
	connected, _, _, _ := env.live.LastSeen("d1")
	for range 3 {
		select {
		case <-c.pings:
		case <-time.After(waitGuard):
			t.Fatal("no ping from the hub")
		}
	}
	// The pongs count as signs of life.
	waitFor(t, "a pong to refresh last-seen", func() bool {
		seen, online, _, _ := env.live.LastSeen("d1")
		return online && seen.After(connected)
	})
}

// wantSilenceClose checks that the hub closed c as a silent device: 1001
// "timeout", not gws's 1000 with the read error (and addresses) as reason.
func wantSilenceClose(t *testing.T, c *wsClient) {
	t.Helper()
	if ce := c.closeError(t); ce.Code != 1001 || string(ce.Reason) != "timeout" {
		t.Fatalf("close code %d reason %q, want 1001 \"timeout\"", ce.Code, ce.Reason)
	}
}

func TestWSSilentDeviceTimesOut(t *testing.T) {
	env := newWSEnv(t, WSConfig{Timeout: 300 * time.Millisecond})
	c := dial(t, env.url("d1"), nil)
	wantSilenceClose(t, c)
	got := env.rec.wait(t, 2)
	wantEvents(t, got, "d1 online=true ws session=1 connect", "d1 online=false ws session=1 disconnect")
}

// With the device timeout of the hub (the tracker's equal to the
// endpoint's), presence reports the silence first, with reason timeout;
// the close that follows a grace later publishes nothing.
func TestWSSilentDeviceTimeoutThenClose(t *testing.T) {
	const timeout = 200 * time.Millisecond
	env := newWSEnv(t, WSConfig{Timeout: timeout}, timeout)
	c := dial(t, env.url("d1"), nil)
	wantEvents(t, env.rec.wait(t, 2),
		"d1 online=true ws session=1 connect", "d1 online=false ws session=1 timeout")
	wantSilenceClose(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), waitGuard)
	defer cancel()
	if err := env.ws.Shutdown(ctx); err != nil { // waits until the close was handled
		t.Fatal(err)
	}
	if got := env.rec.take(); len(got) != 0 {
		wantEvents(t, got)
	}
}

func TestWSDeviceCloses(t *testing.T) {
	env := newWSEnv(t, WSConfig{})
	c := dial(t, env.url("d1"), nil)
	waitFor(t, "the device to connect", func() bool { return env.ws.Connected() == 1 })
	c.stop()
	got := env.rec.wait(t, 2)
	wantEvents(t, got, "d1 online=true ws session=1 connect", "d1 online=false ws session=1 disconnect")
	waitFor(t, "the connection to end", func() bool { return env.ws.Connected() == 0 && env.openConns() == 0 })
}

func TestWSCloseEndsSessionBegunAfterTimeout(t *testing.T) {
	env := newWSEnv(t, WSConfig{}, 500*time.Millisecond)
	c := dial(t, env.url("d1"), nil)
	wantEvents(t, env.rec.wait(t, 2), // nothing heard for the device timeout
		"d1 online=true ws session=1 connect", "d1 online=false ws session=1 timeout")
	c.send(t, `{"type":"telemetry","seq":1,"values":{"x":1}}`)
	if got := c.next(t); got != `msg:{"type":"ack","seq":1}` {
		t.Fatalf("answer %s", got)
	}
	c.stop()
	wantEvents(t, env.rec.wait(t, 2),
		"d1 online=true ws session=2 message", "d1 online=false ws session=2 disconnect")
}

func TestWSWriteFailureClosesConnection(t *testing.T) {
	env := newWSEnv(t, WSConfig{})
	c := dial(t, env.url("d1"), nil)
	waitFor(t, "the device", func() bool { return env.ws.Connected() == 1 })
	env.ws.mu.Lock()
	conn := env.ws.devices["d1"]
	env.ws.mu.Unlock()
	conn.mu.Lock()
	conn.writing = true // as the writer goroutine does before it writes
	conn.mu.Unlock()
	if conn.written(0, errors.New("broken pipe")) {
		t.Fatal("written reported success after a write error")
	}
	select {
	case <-c.closed:
	case <-time.After(waitGuard):
		t.Fatal("connection still open after a failed write")
	}
	wantEvents(t, env.rec.wait(t, 2), "d1 online=true ws session=1 connect", "d1 online=false ws session=1 disconnect")
}

func TestWSConnFree(t *testing.T) {
	slots := func(n int) []answer {
		a := make([]answer, n)
		for i := range a {
			a[i].seq = uint64(i)
		}
		return a
	}
	tests := []struct {
		name      string
		answers   []answer
		head, n   int
		wantLen   int
		wantHead  int
		wantNil   bool
		wantFirst uint64 // seq of the new head slot
	}{
		{name: "drained small slice is kept", answers: slots(8), n: 8, wantLen: 0},
		{name: "drained big slice is dropped", answers: slots(100), n: 100, wantNil: true},
		{name: "partly freed", answers: slots(10), n: 4, wantLen: 10, wantHead: 4, wantFirst: 4},
		{name: "compacted", answers: slots(80), head: 30, n: 10, wantLen: 40, wantFirst: 40},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &wsConn{answers: tt.answers, head: tt.head, first: 1000}
			c.free(tt.n)
			if got := c.answers == nil; got != tt.wantNil {
				t.Fatalf("answers nil = %v", got)
			}
			if len(c.answers) != tt.wantLen || c.head != tt.wantHead || c.first != 1000+uint64(tt.n) {
				t.Fatalf("len %d head %d first %d; want %d %d %d", len(c.answers), c.head, c.first, tt.wantLen, tt.wantHead, 1000+tt.n)
			}
			if c.head < len(c.answers) && c.answers[c.head].seq != tt.wantFirst {
				t.Fatalf("head slot %d, want %d", c.answers[c.head].seq, tt.wantFirst)
			}
		})
	}
}

func TestWSRecoverLogs(t *testing.T) {
	var logs strings.Builder
	s := &WS{log: slog.New(slog.NewTextHandler(&logs, nil))}
	func() {
		defer s.recover(nil)
		panic("in a control frame handler")
	}()
	gwsLogger{s.log}.Error("gws:", "an error")
	for _, want := range []string{"panic in websocket device handler", "gws: an error"} {
		if !strings.Contains(logs.String(), want) {
			t.Fatalf("log lacks %q: %s", want, logs.String())
		}
	}
}

func TestWSMaxInflight(t *testing.T) {
	env := newWSEnv(t, WSConfig{MaxInflight: 2})
	env.ing.hold = true
	c := dial(t, env.url("d1"), nil)
	for i := range 5 {
		c.send(t, fmt.Sprintf(`{"type":"telemetry","seq":%d,"values":{"x":1}}`, i+1))
	}
	waitFor(t, "two submissions", func() bool { return env.ing.submitted() == 2 })
	time.Sleep(50 * time.Millisecond) // room for a third, wrongly read frame
	if n := env.ing.submitted(); n != 2 {
		t.Fatalf("%d frames submitted with MaxInflight 2", n)
	}
	env.ing.releaseAt(0)
	if got := c.next(t); got != `msg:{"type":"ack","seq":1}` {
		t.Fatalf("got %s", got)
	}
	waitFor(t, "the third submission", func() bool { return env.ing.submitted() == 3 })
	for i := 1; i < 5; i++ {
		if i > 1 {
			waitFor(t, "the next submission", func() bool { return env.ing.submitted() > i })
		}
		env.ing.releaseAt(i)
		if got, want := c.next(t), fmt.Sprintf(`msg:{"type":"ack","seq":%d}`, i+1); got != want {
			t.Fatalf("got %s, want %s", got, want)
		}
	}
}

func TestWSPanicClosesOnlyThatConnection(t *testing.T) {
	env := newWSEnv(t, WSConfig{})
	env.ing.panicOn = "boom"
	bad := dial(t, env.url("d1"), nil)
	good := dial(t, env.url("d2"), nil)
	bad.send(t, `{"type":"telemetry","seq":1,"values":{"boom":1}}`)
	if ce := bad.closeError(t); ce.Code != 1011 {
		t.Fatalf("close code %d, want 1011", ce.Code)
	}
	good.send(t, `{"type":"telemetry","seq":1,"values":{"fine":1}}`)
	if got := good.next(t); got != `msg:{"type":"ack","seq":1}` {
		t.Fatalf("other connection: %s", got)
	}
}

func TestWSShutdown(t *testing.T) {
	env := newWSEnv(t, WSConfig{Heartbeat: 10 * time.Millisecond})
	a := dial(t, env.url("a"), nil)
	b := dial(t, env.url("b"), nil)
	waitFor(t, "two devices", func() bool { return env.ws.Connected() == 2 })
	env.rec.take()

	if err := env.ws.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	for _, c := range []*wsClient{a, b} {
		if ce := c.closeError(t); ce.Code != 1001 {
			t.Fatalf("close code %d, want 1001", ce.Code)
		}
	}
	if n := env.ws.Connected(); n != 0 || env.openConns() != 0 {
		t.Fatalf("after Shutdown: %d devices, %d connections", n, env.openConns())
	}
	got := env.rec.take()
	slices.SortFunc(got, func(x, y presenceEvent) int { return strings.Compare(x.Device, y.Device) })
	wantEvents(t, got, "a online=false ws session=1 disconnect", "b online=false ws session=1 disconnect")

	if _, err := tryDial(env.url("c"), nil); err == nil {
		t.Fatal("connected after Shutdown")
	}
	status, _ := upgradeRequest(t, env.base+"/v1/devices/c/ws", nil)
	if status != http.StatusServiceUnavailable {
		t.Fatalf("upgrade after Shutdown: %d, want 503", status)
	}
}

func TestWSShutdownContextEnds(t *testing.T) {
	env := newWSEnv(t, WSConfig{})
	env.ing.block = make(chan struct{})
	c := dial(t, env.url("d1"), nil)
	c.send(t, `{"type":"telemetry","seq":1,"values":{"x":1}}`) // its read loop stays in Telemetry
	waitFor(t, "the frame to reach the bridge", func() bool {
		env.ing.mu.Lock()
		defer env.ing.mu.Unlock()
		return env.ing.blocked == 1
	})

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := env.ws.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v, want the context's error", err)
	}
	close(env.ing.block)
	waitFor(t, "the read loop to end", func() bool { return env.openConns() == 0 })
}

func TestAppendAnswerJSON(t *testing.T) {
	tests := []struct {
		name string
		a    answer
		want string
	}{
		{"ack", answer{}, `{"type":"ack"}`},
		{"ack with seq", answer{seq: 18446744073709551615, hasSeq: true}, `{"type":"ack","seq":18446744073709551615}`},
		{"error", answer{seq: 0, hasSeq: true, err: bridge.Errorf(`metric "a\b": invalid name`)},
			`{"type":"error","seq":0,"code":"bad_request","message":"metric \"a\\b\": invalid name"}`},
		{"control and invalid bytes", answer{err: &bridge.Error{Code: "internal", Message: "a\n\x01\xffé"}},
			`{"type":"error","code":"internal","message":"a\n\u0001\ufffdé"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(appendAnswerJSON(nil, &tt.a)); got != tt.want {
				t.Fatalf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestAppendAnswerFrameLengths(t *testing.T) {
	for _, n := range []int{0, 100, 125, 126, 400, maxAnswerMessage} {
		a := answer{err: &bridge.Error{Code: "bad_request", Message: strings.Repeat("m", n)}}
		frame := appendAnswerFrame([]byte("prefix"), &a)
		payload := appendAnswerJSON(nil, &a)
		header := frame[len("prefix") : len(frame)-len(payload)]
		if frame[len("prefix")] != 0x81 || string(frame[len(frame)-len(payload):]) != string(payload) {
			t.Fatalf("message of %d bytes: bad frame %q", n, frame)
		}
		switch l := len(payload); {
		case l < 126 && (len(header) != 2 || int(header[1]) != l):
			t.Fatalf("payload %d: header %x", l, header)
		case l >= 126 && (len(header) != 4 || header[1] != 126 || int(header[2])<<8|int(header[3]) != l):
			t.Fatalf("payload %d: header %x", l, header)
		}
	}
}

func FuzzAnswerJSON(f *testing.F) {
	f.Add(uint64(42), true, "bad_request", `metric "a b": invalid name`)
	f.Add(uint64(0), false, "", "")
	f.Add(uint64(7), true, "internal", "\xff\x00\u2028é")
	f.Fuzz(func(t *testing.T, seq uint64, hasSeq bool, code, message string) {
		a := answer{seq: seq, hasSeq: hasSeq}
		if code != "" {
			a.err = &bridge.Error{Code: code, Message: message}
		}
		b := appendAnswerJSON(nil, &a)
		var got struct {
			Type    string
			Seq     *uint64
			Code    string
			Message string
		}
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("invalid JSON %q: %v", b, err)
		}
		if hasSeq != (got.Seq != nil) || hasSeq && *got.Seq != seq {
			t.Fatalf("seq lost in %s", b)
		}
		if a.err == nil {
			if got.Type != "ack" {
				t.Fatalf("ack encoded as %s", b)
			}
			return
		}
		if got.Type != "error" {
			t.Fatalf("error encoded as %s", b)
		}
		if utf8Valid(code) && len(code) <= maxAnswerMessage && got.Code != code {
			t.Fatalf("code %q came back as %q", code, got.Code)
		}
		if utf8Valid(message) && len(message) <= maxAnswerMessage && got.Message != message {
			t.Fatalf("message %q came back as %q", message, got.Message)
		}
	})
}

// utf8Valid reports whether s is valid UTF-8 that encoding/json decodes
// back unchanged.
func utf8Valid(s string) bool {
	b, err := json.Marshal(s)
	if err != nil {
		return false
	}
	var back string
	return json.Unmarshal(b, &back) == nil && back == s
}

// TestWSIdleConnectionMemory measures what an idle device connection costs
// the hub: Go heap and goroutine stacks, with gws's buffers, the
// connection's state and its liveness entry. The clients are bare TCP
// connections of this process after a hand-made handshake; their share is
// estimated as half of what a bare loopback TCP pair costs, and taken off.
func TestWSIdleConnectionMemory(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("memory measurement: not in -short or -race runs")
	}
	const n = 1000
	clientShare := float64(tcpPairCost(t, n)) / n / 2
	live, err := presence.New(presence.Config{Sink: &recordingSink{discard: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer live.Shutdown(context.Background())
	ws, err := NewWS(WSConfig{Bridge: &fakeBridge{}, Presence: live, Heartbeat: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /v1/devices/{id}/ws", ws)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	defer func() { _ = ws.Shutdown(context.Background()) }()

	before := memInUse()
	conns := make([]net.Conn, 0, n)
	defer func() { closeAll(conns) }()
	for i := range n {
		c, err := rawHandshake(srv.Listener.Addr().String(), fmt.Sprintf("idle-%d", i))
		if err != nil {
			closeAll(conns)
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	waitFor(t, "all devices", func() bool { return ws.Connected() == n })
	total := float64(memInUse()-before) / n
	t.Logf("idle WebSocket device: %.0f bytes per connection with its client, %.0f without (client share %.0f); %d connections",
		total, total-clientShare, clientShare, n)
	if total-clientShare > idleConnLimit {
		t.Fatalf("%.0f bytes per idle connection", total-clientShare)
	}
}

// tcpPairCost returns the memory n bare loopback TCP connections cost,
// both ends held by this process.
func tcpPairCost(t *testing.T, n int) uint64 {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan net.Conn, n)
	go func() {
		for range n {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	before := memInUse()
	conns := make([]net.Conn, 0, 2*n)
	defer func() { closeAll(conns) }()
	for range n {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			_ = ln.Close()
			t.Fatal(err)
		}
		conns = append(conns, c, <-accepted)
	}
	_ = ln.Close()
	return memInUse() - before
}

func closeAll(conns []net.Conn) {
	for _, c := range conns {
		_ = c.Close()
	}
}

// memInUse returns the live heap and the stack memory after a collection.
func memInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc + m.StackInuse
}

// rawHandshake opens a WebSocket connection for device with a hand-made
// upgrade request and keeps nothing but the socket.
func rawHandshake(addr, device string) (net.Conn, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	req := "GET /v1/devices/" + device + "/ws HTTP/1.1\r\nHost: " + addr +
		"\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
	if _, err := io.WriteString(c, req); err != nil {
		_ = c.Close()
		return nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReaderSize(c, 512), nil)
	if err != nil {
		_ = c.Close()
		return nil, err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		_ = c.Close()
		return nil, fmt.Errorf("upgrade of %s: HTTP %d", device, resp.StatusCode)
	}
	return c, nil
}

// ackCounter is a gws client handler that counts the acks it receives.
type ackCounter struct {
	gws.BuiltinEventHandler
	mu     sync.Mutex
	acks   int
	target int
	done   chan struct{}
}

func (a *ackCounter) OnMessage(_ *gws.Conn, m *gws.Message) {
	isAck := strings.HasPrefix(string(m.Bytes()), `{"type":"ack"`)
	_ = m.Close()
	if !isAck {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.acks++; a.acks == a.target {
		close(a.done)
	}
}

// BenchmarkWSFrames measures telemetry frames through the endpoint, from
// the device's write to its ack, with an ingester that commits at once.
func BenchmarkWSFrames(b *testing.B) {
	for _, bench := range wsReadBenches(1, 16) {
		devices := bench.devices
		b.Run(bench.name, func(b *testing.B) {
			env := newBenchEnv(b, bench.gwsReads)
			per := b.N/devices + 1
			counters := make([]*ackCounter, devices)
			conns := make([]*gws.Conn, devices)
			for i := range devices {
				counters[i] = &ackCounter{target: per, done: make(chan struct{})}
				conn, _, err := gws.NewClient(counters[i], &gws.ClientOption{Addr: env.url(fmt.Sprintf("bench-%d", i))})
				if err != nil {
					b.Fatal(err)
				}
				conns[i] = conn
				go conn.ReadLoop()
			}
			frame := []byte(`{"type":"telemetry","seq":1,"ts":1764064800000,"values":{"temp":21.5,"hum":40}}`)
			b.ReportAllocs()
			b.ResetTimer()
			var wg sync.WaitGroup
			for i, conn := range conns {
				wg.Go(func() {
					for range per {
						if err := conn.WriteMessage(gws.OpcodeText, frame); err != nil {
							b.Error(err)
							return
						}
					}
					<-counters[i].done
				})
			}
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64(per*devices)/b.Elapsed().Seconds(), "frames/s")
			for _, conn := range conns {
				_ = conn.WriteClose(1000, nil)
			}
		})
	}
}

// wsReadBench is a benchmark case: a number of devices on one read path.
type wsReadBench struct {
	name     string
	devices  int
	gwsReads bool
}

// wsReadBenches returns the cases of each number of devices on each read
// path.
func wsReadBenches(devices ...int) []wsReadBench {
	var benches []wsReadBench
	for _, n := range devices {
		for _, gwsReads := range []bool{false, true} {
			reads := "direct"
			if gwsReads {
				reads = "gws"
			}
			benches = append(benches, wsReadBench{fmt.Sprintf("devices=%d/reads=%s", n, reads), n, gwsReads})
		}
	}
	return benches
}

// newBenchEnv serves an endpoint whose ingester commits at once, reading
// with gws's ReadLoop when gwsReads is true; it is shut down when the
// benchmark ends.
func newBenchEnv(b *testing.B, gwsReads bool) *wsEnv {
	b.Helper()
	env := &wsEnv{ing: &fakeBridge{}}
	live, err := presence.New(presence.Config{Sink: &recordingSink{discard: true}})
	if err != nil {
		b.Fatal(err)
	}
	env.ws, err = NewWS(WSConfig{Bridge: &countingBridge{}, Presence: live, Heartbeat: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	env.ws.gwsReads = gwsReads
	mux := http.NewServeMux()
	mux.Handle("GET /v1/devices/{id}/ws", env.ws)
	srv := httptest.NewServer(mux)
	b.Cleanup(func() {
		_ = env.ws.Shutdown(context.Background())
		srv.Close()
		_ = live.Shutdown(context.Background())
	})
	env.base = srv.URL
	return env
}

func BenchmarkAppendAnswerFrame(b *testing.B) {
	ack := answer{seq: 1764064800, hasSeq: true, ready: true}
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		buf = appendAnswerFrame(buf[:0], &ack)
	}
}
