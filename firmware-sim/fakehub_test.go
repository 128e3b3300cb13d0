package firmwaresim

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lxzan/gws"
	mqttsrv "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/telehub/telehub/internal/topic"
)

// fakeHub is a small stand-in for telehub in tests: the WebSocket device
// endpoint, an embedded MQTT broker whose hook stores before the PUBACK,
// and GET /v1/events, over one event list with per-device seq dedup.
type fakeHub struct {
	t        *testing.T
	srv      *httptest.Server
	mux      *http.ServeMux // more routes may be added before the simulator starts
	broker   *mqttsrv.Server
	mqttAddr string
	up       *gws.Upgrader
	loops    sync.WaitGroup

	// Knobs, set before the simulator starts.
	loseFirst int             // first WS connection of a device: store loseFirst frames unacked, then drop
	skipStore map[uint64]bool // seqs acked but not stored
	dupStore  map[uint64]bool // seqs stored twice

	mu         sync.Mutex
	lastSeq    map[string]uint64
	events     []fakeEvent
	conns      map[string][][]uint64 // per device, per WS connection, telemetry seqs received
	frames     map[string]int        // per device, frames received
	heartbeats map[string]int
	pongs      map[string]int
	answers    int // error answers sent
	wills      map[string]int
	online     map[string]int
	wsConns    []*gws.Conn
	wsByDevice map[string]*gws.Conn // each device's latest WebSocket connection
	cmdAnswers map[string][]string  // per device, command_ack/command_result frames and MQTT results, in order
}

type fakeEvent struct {
	device, metric string
	ts             int64
	seq            *uint64
}

func newFakeHub(t *testing.T, knobs func(*fakeHub)) *fakeHub {
	t.Helper()
	h := &fakeHub{
		t: t, lastSeq: map[string]uint64{}, conns: map[string][][]uint64{}, frames: map[string]int{},
		heartbeats: map[string]int{}, pongs: map[string]int{}, wills: map[string]int{}, online: map[string]int{},
		wsByDevice: map[string]*gws.Conn{}, cmdAnswers: map[string][]string{},
	}
	if knobs != nil {
		knobs(h)
	}
	h.up = gws.NewUpgrader(fakeWS{h}, &gws.ServerOption{CheckUtf8Enabled: true})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/devices/{id}/ws", h.serveWS)
	mux.HandleFunc("GET /v1/events", h.serveEvents)
	h.mux, h.srv = mux, httptest.NewServer(mux)
	h.startBroker()
	t.Cleanup(h.close)
	return h
}

func (h *fakeHub) startBroker() {
	h.broker = mqttsrv.New(&mqttsrv.Options{InlineClient: true, Logger: slog.New(slog.DiscardHandler)})
	if err := h.broker.AddHook(new(auth.AllowHook), nil); err != nil {
		h.t.Fatal(err)
	}
	if err := h.broker.AddHook(&fakeHook{h: h}, nil); err != nil {
		h.t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		h.t.Fatal(err)
	}
	h.mqttAddr = ln.Addr().String()
	if err := h.broker.AddListener(listeners.NewNet("t", ln)); err != nil {
		h.t.Fatal(err)
	}
	if err := h.broker.Serve(); err != nil {
		h.t.Fatal(err)
	}
}

func (h *fakeHub) close() {
	h.mu.Lock()
	conns := h.wsConns
	h.mu.Unlock()
	for _, c := range conns {
		_ = c.NetConn().Close()
	}
	h.srv.Close()
	h.loops.Wait()
	_ = h.broker.Close()
}

func (h *fakeHub) url() string     { return h.srv.URL }
func (h *fakeHub) mqttURL() string { return "tcp://" + h.mqttAddr }

// config returns a simulator config against h with fast test timings.
func (h *fakeHub) config() Config {
	return Config{
		Hub: h.url(), MQTT: h.mqttURL(), SeqStart: 1000,
		BackoffMin: 5 * time.Millisecond, BackoffMax: 50 * time.Millisecond,
		DrainTimeout: 20 * time.Second, ConnectTimeout: 5 * time.Second,
		Heartbeat: 50 * time.Millisecond,
	}
}

// store records the events of one message unless its seq is a duplicate.
func (h *fakeHub) store(device string, seq *uint64, ts int64, metrics []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if seq != nil {
		if last, ok := h.lastSeq[device]; ok && *seq <= last {
			return
		}
		h.lastSeq[device] = *seq
		if h.skipStore[*seq] {
			return
		}
	}
	copies := 1
	if seq != nil && h.dupStore[*seq] {
		copies = 2
	}
	for range copies {
		for _, m := range metrics {
			h.events = append(h.events, fakeEvent{device: device, metric: m, ts: ts, seq: seq})
		}
	}
}

func (h *fakeHub) storedSeqs(device string) map[uint64]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[uint64]int{}
	for _, e := range h.events {
		if e.device == device && e.seq != nil && e.metric == MetricTemp {
			out[*e.seq]++
		}
	}
	return out
}

func (h *fakeHub) count(m map[string]int, key string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return m[key]
}

func (h *fakeHub) pingAll() {
	h.mu.Lock()
	conns := h.wsConns
	h.mu.Unlock()
	for _, c := range conns {
		_ = c.WritePing(nil)
	}
}

// message is what a device payload carries, as far as the fake hub cares.
type message struct {
	seq     *uint64
	ts      int64
	metrics []string
}

// parsePayload reads a JSON object (flat or wrapped) or a SenML pack.
func parsePayload(b []byte) (message, error) {
	if len(b) > 0 && b[0] == '[' {
		return parseSenML(b)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(b, &obj); err != nil {
		return message{}, fmt.Errorf("bad JSON: %w", err)
	}
	var m message
	if err := m.reserved(obj); err != nil {
		return message{}, err
	}
	if raw, ok := obj["values"]; ok {
		if err := json.Unmarshal(raw, &obj); err != nil {
			return message{}, fmt.Errorf("values: %w", err)
		}
	}
	for k, v := range obj {
		switch {
		case k == "seq" || k == "ts" || k == "type" || k == "values" || k == "senml":
		case !topic.ValidName(k):
			return message{}, fmt.Errorf("bad metric name %q", k)
		case v[0] == '{' || v[0] == '[':
			return message{}, fmt.Errorf("metric %q: nested value", k)
		default:
			m.metrics = append(m.metrics, k)
		}
	}
	return m, nil
}

func (m *message) reserved(obj map[string]json.RawMessage) error {
	if raw, ok := obj["seq"]; ok {
		seq, err := strconv.ParseUint(string(raw), 10, 64)
		if err != nil {
			return fmt.Errorf("seq %s: not a uint64", raw)
		}
		m.seq = &seq
	}
	m.ts = time.Now().UnixMilli()
	if raw, ok := obj["ts"]; ok {
		ts, err := strconv.ParseInt(string(raw), 10, 64)
		if err != nil {
			return fmt.Errorf("ts %s: not a number", raw)
		}
		m.ts = ts
	}
	return nil
}

func parseSenML(b []byte) (message, error) {
	var pack []struct {
		Bn string   `json:"bn"`
		Bt *float64 `json:"bt"`
		N  string   `json:"n"`
	}
	if err := json.Unmarshal(b, &pack); err != nil || len(pack) == 0 {
		return message{}, fmt.Errorf("bad SenML: %v", err)
	}
	m := message{ts: time.Now().UnixMilli()}
	for _, r := range pack {
		if r.Bt != nil {
			m.ts = int64(*r.Bt * 1000) // truncates, as a careless hub might
		}
		m.metrics = append(m.metrics, r.Bn+r.N)
	}
	return m, nil
}

// serveEvents serves GET /v1/events pages with ids fake-<16 hex digits>.
func (h *fakeHub) serveEvents(w http.ResponseWriter, r *http.Request) {
	after := 0
	if a := r.URL.Query().Get("after"); a != "" {
		n, err := strconv.ParseUint(strings.TrimPrefix(a, "fake-"), 16, 64)
		if err != nil || !strings.HasPrefix(a, "fake-") {
			http.Error(w, `{"error":{"code":"gone","message":"foreign id"}}`, http.StatusGone)
			return
		}
		after = int(n)
	}
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	h.mu.Lock()
	end := min(len(h.events), after+limit)
	page := make([]storedEvent, 0, max(end-after, 0))
	for i := after; i < end; i++ {
		e := h.events[i]
		page = append(page, storedEvent{ID: fmt.Sprintf("fake-%016x", i+1), Kind: "telemetry", Data: eventData{
			Device: e.device, Metric: e.metric, DeviceSeq: e.seq,
			TS: time.UnixMilli(e.ts).UTC().Format("2006-01-02T15:04:05.000Z07:00"),
		}})
	}
	h.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(page)
}

func (h *fakeHub) serveWS(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	conn, err := h.up.Upgrade(w, r)
	if err != nil {
		return
	}
	conn.Session().Store("id", id)
	h.mu.Lock()
	h.conns[id] = append(h.conns[id], nil)
	h.wsConns = append(h.wsConns, conn)
	h.wsByDevice[id] = conn
	h.mu.Unlock()
	h.loops.Go(conn.ReadLoop)
}

// fakeWS is the fake hub's WebSocket device handler.
type fakeWS struct{ h *fakeHub }

func (f fakeWS) OnOpen(*gws.Conn)             {}
func (f fakeWS) OnClose(*gws.Conn, error)     {}
func (f fakeWS) OnPing(c *gws.Conn, _ []byte) { _ = c.WritePong(nil) }
func (f fakeWS) OnPong(c *gws.Conn, _ []byte) {
	f.h.mu.Lock()
	f.h.pongs[sessionID(c)]++
	f.h.mu.Unlock()
}

func sessionID(c *gws.Conn) string {
	v, _ := c.Session().Load("id")
	id, _ := v.(string)
	return id
}

func (f fakeWS) OnMessage(c *gws.Conn, msg *gws.Message) {
	defer msg.Close()
	h, id := f.h, sessionID(c)
	h.mu.Lock()
	h.frames[id]++
	h.mu.Unlock()
	var frame struct {
		Type  string          `json:"type"`
		SenML json.RawMessage `json:"senml"`
	}
	if err := json.Unmarshal(msg.Bytes(), &frame); err != nil {
		h.answerWS(c, nil, err)
		return
	}
	switch frame.Type {
	case "heartbeat":
		h.mu.Lock()
		h.heartbeats[id]++
		h.mu.Unlock()
		return
	case "command_ack", "command_result":
		h.mu.Lock()
		h.cmdAnswers[id] = append(h.cmdAnswers[id], string(msg.Bytes()))
		h.mu.Unlock()
		return
	case "telemetry":
	default:
		h.answerWS(c, nil, errors.New("unknown frame type"))
		return
	}
	m, err := parsePayload(msg.Bytes())
	if err == nil && frame.SenML != nil {
		var s message
		s, err = parseSenML(frame.SenML)
		s.seq = m.seq
		m = s
	}
	if err != nil {
		h.answerWS(c, m.seq, err)
		return
	}
	h.telemetry(c, id, m)
}

// telemetry stores a valid frame and acks it, unless the loseFirst knob
// says to lose it.
func (h *fakeHub) telemetry(c *gws.Conn, id string, m message) {
	h.mu.Lock()
	conns := h.conns[id]
	cur := len(conns) - 1
	conns[cur] = append(conns[cur], *m.seq)
	n, first := len(conns[cur]), cur == 0
	h.mu.Unlock()
	if first && h.loseFirst > 0 {
		if n > h.loseFirst {
			_ = c.NetConn().Close()
			return
		}
		h.store(id, m.seq, m.ts, m.metrics)
		return
	}
	h.store(id, m.seq, m.ts, m.metrics)
	_ = c.WriteString(`{"type":"ack","seq":` + strconv.FormatUint(*m.seq, 10) + `}`)
}

func (h *fakeHub) answerWS(c *gws.Conn, seq *uint64, err error) {
	h.mu.Lock()
	h.answers++
	h.mu.Unlock()
	b, _ := json.Marshal(map[string]any{"type": "error", "code": "bad_request", "message": err.Error(), "seq": seq})
	_ = c.WriteMessage(gws.OpcodeText, b)
}

// fakeHook stores MQTT telemetry inside OnPublish, so the broker's PUBACK
// follows the store as on the real hub.
type fakeHook struct {
	mqttsrv.HookBase
	h *fakeHub
}

func (k *fakeHook) ID() string { return "fake-hub" }

func (k *fakeHook) Provides(b byte) bool { return b == mqttsrv.OnPublish || b == mqttsrv.OnWillSent }

func (k *fakeHook) OnWillSent(_ *mqttsrv.Client, pk packets.Packet) {
	if id, rest, ok := splitDeviceTopic(pk.TopicName); ok && rest == "status" {
		k.h.mu.Lock()
		k.h.wills[id]++
		k.h.mu.Unlock()
	}
}

func (k *fakeHook) OnPublish(_ *mqttsrv.Client, pk packets.Packet) (packets.Packet, error) {
	id, rest, ok := splitDeviceTopic(pk.TopicName)
	if !ok {
		return pk, nil
	}
	h := k.h
	h.mu.Lock()
	h.frames[id]++
	if rest == "status" && string(pk.Payload) == "online" {
		h.online[id]++
	}
	if rest == "heartbeat" {
		h.heartbeats[id]++
	}
	h.mu.Unlock()
	switch {
	case rest == "telemetry":
		m, err := parsePayload(pk.Payload)
		if err != nil {
			h.answerMQTT(id, pk.TopicName, err)
			return pk, nil
		}
		h.store(id, m.seq, m.ts, m.metrics)
	case strings.HasPrefix(rest, "commands/") && strings.HasSuffix(rest, "/result"):
		h.mu.Lock()
		h.cmdAnswers[id] = append(h.cmdAnswers[id], rest+" "+string(pk.Payload))
		h.mu.Unlock()
	case strings.HasPrefix(rest, "telemetry/"):
		h.store(id, nil, time.Now().UnixMilli(), []string{strings.TrimPrefix(rest, "telemetry/")})
	}
	return pk, nil
}

func (h *fakeHub) answerMQTT(id, topic string, err error) {
	h.mu.Lock()
	h.answers++
	h.mu.Unlock()
	b, _ := json.Marshal(map[string]string{"code": "bad_request", "message": err.Error(), "topic": topic})
	_ = h.broker.Publish("devices/"+id+"/errors", b, false, 0)
}

// sendCommand sends device id a command: a command frame on its latest
// WebSocket connection, or a QoS 1 publish on devices/{id}/commands.
func (h *fakeHub) sendCommand(tr Transport, id, cid, name, params string) {
	h.t.Helper()
	body := `"id":"` + cid + `","name":"` + name + `"`
	if params != "" {
		body += `,"params":` + params
	}
	if tr == TransportMQTT {
		if err := h.broker.Publish("devices/"+id+"/commands", []byte("{"+body+"}"), false, 1); err != nil {
			h.t.Fatal(err)
		}
		return
	}
	h.mu.Lock()
	c := h.wsByDevice[id]
	h.mu.Unlock()
	if err := c.WriteString(`{"type":"command",` + body + `}`); err != nil {
		h.t.Fatal(err)
	}
}

// commandAnswers returns the command answers device id sent so far.
func (h *fakeHub) commandAnswers(id string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.cmdAnswers[id])
}

func splitDeviceTopic(topic string) (id, rest string, ok bool) {
	after, ok := strings.CutPrefix(topic, "devices/")
	if !ok {
		return "", "", false
	}
	return strings.Cut(after, "/")
}
