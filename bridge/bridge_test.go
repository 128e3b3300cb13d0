package bridge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/telehub/telehub/internal/metrics"
	"github.com/telehub/telehub/internal/topic"
)

// fakeStore records the writes submitted to it.
type fakeStore struct {
	mu     sync.Mutex
	writes []*Write
	err    error
}

func (s *fakeStore) Submit(w *Write) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	s.writes = append(s.writes, w)
	return nil
}

func (s *fakeStore) all() []*Write {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*Write(nil), s.writes...)
}

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// harness is a Bridge on a fake store, a test clock and private metrics.
type harness struct {
	b     *Bridge
	store *fakeStore
	clock *clock
	m     *metrics.Metrics
	logs  *logCapture
}

func newHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	h := &harness{store: &fakeStore{}, clock: &clock{t: fixedNow}, m: metrics.New("test"), logs: &logCapture{}}
	cfg.Store, cfg.Now, cfg.Metrics = h.store, h.clock.now, h.m
	if cfg.Logger == nil {
		cfg.Logger = slog.New(h.logs)
	}
	b, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	h.b = b
	return h
}

// logCapture is a slog.Handler keeping the records it gets.
type logCapture struct {
	mu      sync.Mutex
	records []slog.Record
}

func (l *logCapture) Enabled(context.Context, slog.Level) bool { return true }
func (l *logCapture) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.records = append(l.records, r)
	return nil
}
func (l *logCapture) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logCapture) WithGroup(string) slog.Handler      { return l }

func (l *logCapture) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.records)
}

// attr returns attribute key of the last record.
func (l *logCapture) attr(key string) slog.Value {
	l.mu.Lock()
	defer l.mu.Unlock()
	var v slog.Value
	l.records[len(l.records)-1].Attrs(func(a slog.Attr) bool {
		if a.Key == key {
			v = a.Value
			return false
		}
		return true
	})
	return v
}

func decodeJSON(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("invalid JSON %s: %v", b, err)
	}
	return m
}

func TestNewConfig(t *testing.T) {
	store := &fakeStore{}
	tests := []struct {
		name string
		cfg  Config
		want error
	}{
		{"no store", Config{}, ErrNoStore},
		{"negative rate", Config{Store: store, ErrorRate: -1}, ErrBadConfig},
		{"NaN rate", Config{Store: store, ErrorRate: math.NaN()}, ErrBadConfig},
		{"infinite rate", Config{Store: store, ErrorRate: math.Inf(1)}, ErrBadConfig},
		{"negative burst", Config{Store: store, ErrorBurst: -1}, ErrBadConfig},
		{"negative device rate", Config{Store: store, DeviceRate: -1}, ErrBadConfig},
		{"NaN device rate", Config{Store: store, DeviceRate: math.NaN()}, ErrBadConfig},
		{"negative device burst", Config{Store: store, DeviceRate: 1, DeviceBurst: -1}, ErrBadConfig},
		{"defaults", Config{Store: store}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := New(tt.cfg)
			if !errors.Is(err, tt.want) {
				t.Fatalf("New err = %v, want %v", err, tt.want)
			}
			if err != nil {
				return
			}
			if b.errLimit.rate != DefaultErrorRate || b.errLimit.burst != DefaultErrorBurst || b.log == nil || b.now == nil {
				t.Errorf("defaults not filled: rate %v burst %v", b.errLimit.rate, b.errLimit.burst)
			}
		})
	}
}

func TestTelemetryEvents(t *testing.T) {
	h := newHarness(t, Config{})
	received := fixedNow.Add(2 * time.Second)
	p, err := parseTelemetry([]byte(`[{"bn":"p.","n":"temp","u":"Cel","v":21.5,"t":1795600800.123},{"n":"door","vs":"op\"en"},{"n":"on","vb":true}]`), nowFixed)
	if err != nil {
		t.Fatal(err)
	}
	p.Seq, p.HasSeq = 42, true
	var got []Result
	done := func(r Result) { got = append(got, r) }
	in := Input{Device: "d1", Transport: TransportMQTT, SourceTopic: "devices/d1/telemetry", Received: received}
	if err := h.b.Telemetry(in, p, done); err != nil {
		t.Fatal(err)
	}
	writes := h.store.all()
	if len(writes) != 1 {
		t.Fatalf("%d writes, want 1", len(writes))
	}
	w := writes[0]
	if w.Device != "d1" || w.Transport != TransportMQTT || !w.Seen.Equal(received) || w.Seq != 42 || !w.HasSeq || w.Presence != nil {
		t.Errorf("write = %+v", w)
	}
	w.Done(Result{FirstID: 9})
	if len(got) != 1 || got[0].FirstID != 9 {
		t.Errorf("Done did not reach the callback: %+v", got)
	}
	wantData := []string{
		`{"topic":"telemetry/d1/p.temp","device":"d1","metric":"p.temp","value":21.5,"unit":"Cel","ts":"2026-11-25T10:00:00.123Z","device_seq":42}`,
		`{"topic":"telemetry/d1/p.door","device":"d1","metric":"p.door","value":"op\"en","ts":"2026-11-25T10:00:02.000Z","device_seq":42}`,
		`{"topic":"telemetry/d1/p.on","device":"d1","metric":"p.on","value":true,"ts":"2026-11-25T10:00:02.000Z","device_seq":42}`,
	}
	wantState := []string{
		`{"value":21.5,"unit":"Cel","ts":"2026-11-25T10:00:00.123Z"}`,
		`{"value":"op\"en","ts":"2026-11-25T10:00:02.000Z"}`,
		`{"value":true,"ts":"2026-11-25T10:00:02.000Z"}`,
	}
	if len(w.Events) != 3 {
		t.Fatalf("%d events, want 3", len(w.Events))
	}
	for i, ev := range w.Events {
		metric := p.Readings[i].Metric
		if ev.Kind != KindTelemetry || ev.Topic != topic.Telemetry("d1", metric) || ev.Device != "d1" || ev.Metric != metric {
			t.Errorf("event %d = %+v", i, ev)
		}
		if string(ev.Data) != wantData[i] {
			t.Errorf("event %d data\n got %s\nwant %s", i, ev.Data, wantData[i])
		}
		if string(ev.State) != wantState[i] {
			t.Errorf("event %d state\n got %s\nwant %s", i, ev.State, wantState[i])
		}
		if cap(ev.Data) != len(ev.Data) || cap(ev.State) != len(ev.State) {
			t.Errorf("event %d: appending to Data or State could overwrite a neighbour", i)
		}
	}
	if n := testutil.ToFloat64(h.m.EventsIngested.WithLabelValues("telemetry")); n != 3 {
		t.Errorf("events ingested = %v, want 3", n)
	}
}

func TestTelemetryDataFields(t *testing.T) {
	tests := []struct {
		name     string
		payload  string
		hasUnit  bool
		hasSeq   bool
		wantTS   string
		wantVal  any
		received time.Time
	}{
		{"device ts", `{"ts":1795600800123,"a":1.25}`, false, false, "2026-11-25T10:00:00.123Z", json.Number("1.25"), fixedNow.Add(time.Hour)},
		{"receive time", `{"a":"x"}`, false, false, "2026-11-25T11:00:00.000Z", "x", fixedNow.Add(time.Hour)},
		{"zero receive time uses the clock", `{"a":false}`, false, false, "2026-11-25T10:00:00.000Z", false, time.Time{}},
		{"unit and seq", `[{"n":"a","u":"Cel","v":-3}]`, true, false, "2026-11-25T11:00:00.000Z", json.Number("-3"), fixedNow.Add(time.Hour)},
		{"seq", `{"seq":18446744073709551615,"a":1e-7}`, false, true, "2026-11-25T11:00:00.000Z", json.Number("1e-7"), fixedNow.Add(time.Hour)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Config{})
			p, err := parseTelemetry([]byte(tt.payload), nowFixed)
			if err != nil {
				t.Fatal(err)
			}
			in := Input{Device: "dev.9", Transport: TransportWS, Received: tt.received}
			if err := h.b.Telemetry(in, p, nil); err != nil {
				t.Fatal(err)
			}
			ev := h.store.all()[0].Events[0]
			m := decodeJSON(t, ev.Data)
			want := map[string]any{"topic": "telemetry/dev.9/a", "device": "dev.9", "metric": "a", "value": tt.wantVal, "ts": tt.wantTS}
			if tt.hasUnit {
				want["unit"] = "Cel"
			}
			if tt.hasSeq {
				want["device_seq"] = json.Number("18446744073709551615")
			}
			if len(m) != len(want) {
				t.Errorf("data %s has fields %v, want %v", ev.Data, m, want)
			}
			for k, v := range want {
				if m[k] != v {
					t.Errorf("data[%q] = %#v, want %#v", k, m[k], v)
				}
			}
			state := decodeJSON(t, ev.State)
			if state["value"] != tt.wantVal || state["ts"] != tt.wantTS || (state["unit"] != nil) != tt.hasUnit {
				t.Errorf("state = %s", ev.State)
			}
		})
	}
}

func TestTelemetryRejects(t *testing.T) {
	good := []Reading{{Metric: "a", Value: num(1)}}
	tests := []struct {
		name   string
		device string
		p      Payload
		want   string
	}{
		{"bad device", "a/b", Payload{Readings: good}, `device id "a/b": invalid name`},
		{"empty device", "", Payload{Readings: good}, `device id "": invalid name`},
		{"no readings", "d1", Payload{}, "no readings"},
		{"bad metric", "d1", Payload{Readings: []Reading{{Metric: "#", Value: num(1)}}}, `metric "#": invalid name`},
		{"NaN", "d1", Payload{Readings: []Reading{{Metric: "a", Value: num(math.NaN())}}}, `value of "a": not a finite number`},
		{"Inf", "d1", Payload{Readings: []Reading{{Metric: "a", Value: num(math.Inf(-1))}}}, `not a finite number`},
		{"no value", "d1", Payload{Readings: []Reading{{Metric: "a"}}}, `value of "a": no value`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Config{})
			called := false
			err := h.b.Telemetry(Input{Device: tt.device, Received: fixedNow}, tt.p, func(Result) { called = true })
			checkRejected(t, err, tt.want)
			if len(h.store.all()) != 0 || called {
				t.Error("rejected telemetry reached the store")
			}
		})
	}
}

func TestTelemetryStoreError(t *testing.T) {
	h := newHarness(t, Config{})
	errFull := errors.New("store closed")
	h.store.err = errFull
	p := Payload{Readings: []Reading{{Metric: "a", Value: num(1)}}}
	err := h.b.Telemetry(Input{Device: "d1", Received: fixedNow}, p, nil)
	if !errors.Is(err, errFull) {
		t.Fatalf("err = %v, want wrapped %v", err, errFull)
	}
	if n := testutil.ToFloat64(h.m.EventsIngested.WithLabelValues("telemetry")); n != 0 {
		t.Errorf("events ingested = %v after a store error", n)
	}
}

func TestTelemetryDeviceRateLimit(t *testing.T) {
	h := newHarness(t, Config{DeviceRate: 2, DeviceBurst: 3})
	send := func(device string) error {
		p := Payload{Readings: []Reading{{Metric: "temp", Value: NumberValue(1)}}}
		return h.b.Telemetry(Input{Device: device, Transport: TransportWS}, p, nil)
	}
	for i := range 3 {
		if err := send("d1"); err != nil {
			t.Fatalf("message %d within the burst: %v", i, err)
		}
	}
	err := send("d1")
	var e *Error
	if !errors.As(err, &e) || e.Code != CodeRateLimited || !strings.Contains(e.Message, "d1") {
		t.Fatalf("over the limit: err %v, want a rate_limited *Error naming the device", err)
	}
	if err := send("d2"); err != nil {
		t.Fatalf("another device is limited by d1: %v", err)
	}
	h.clock.add(500 * time.Millisecond) // one token at 2/s
	if err := send("d1"); err != nil {
		t.Fatalf("after refill: %v", err)
	}
	if err := send("d1"); err == nil {
		t.Fatal("second message after one token's refill went through")
	}
	if n := len(h.store.all()); n != 5 {
		t.Fatalf("%d writes stored, want 5 (3 burst + d2 + 1 refilled)", n)
	}
}

// Over the rate, a message with a seq or one already paced is never
// refused: refusing it while later ones are stored would make its resend
// a duplicate.
func TestTelemetryDeviceRateSparesSeqAndPaced(t *testing.T) {
	h := newHarness(t, Config{DeviceRate: 1, DeviceBurst: 1})
	p := Payload{Readings: []Reading{{Metric: "temp", Value: NumberValue(1)}}}
	if err := h.b.Telemetry(Input{Device: "d1"}, p, nil); err != nil {
		t.Fatalf("first message: %v", err)
	}
	withSeq := p
	withSeq.Seq, withSeq.HasSeq = 7, true
	if err := h.b.Telemetry(Input{Device: "d1"}, withSeq, nil); err != nil {
		t.Fatalf("a message with seq over the rate: %v", err)
	}
	if err := h.b.Telemetry(Input{Device: "d1", Paced: true}, p, nil); err != nil {
		t.Fatalf("a paced message: %v", err)
	}
	if err := h.b.Telemetry(Input{Device: "d1"}, p, nil); err == nil {
		t.Fatal("an unpaced message without seq over the rate went through")
	}
}

// Pace makes a device over its rate wait one token's time, going into a
// bounded debt, and counts the messages it slows down.
func TestPace(t *testing.T) {
	h := newHarness(t, Config{DeviceRate: 10, DeviceBurst: 2})
	waits := make([]time.Duration, 0, 4)
	for range 4 {
		waits = append(waits, h.b.Pace("d1", h.clock.now()))
	}
	want := []time.Duration{0, 0, 100 * time.Millisecond, 200 * time.Millisecond}
	if !slices.Equal(waits, want) {
		t.Fatalf("waits %v, want %v", waits, want)
	}
	if d := h.b.Pace("d2", h.clock.now()); d != 0 {
		t.Fatalf("another device waits %v", d)
	}
	h.clock.add(200 * time.Millisecond) // the debt is paid
	if d := h.b.Pace("d1", h.clock.now()); d != 100*time.Millisecond {
		t.Fatalf("after the debt is paid: wait %v, want one token's 100ms", d)
	}
	for range 100 {
		h.b.Pace("d1", h.clock.now())
	}
	if d := h.b.Pace("d1", h.clock.now()); d != maxPace {
		t.Fatalf("deep in debt: wait %v, want the bound %v", d, maxPace)
	}
	if n := testutil.ToFloat64(h.m.Throttled); n != 104 {
		t.Fatalf("%v throttled, want 104", n)
	}
	if d := (&Bridge{}).Pace("d1", fixedNow); d != 0 {
		t.Fatalf("no rate limit: wait %v", d)
	}
}

func TestTelemetryNoDeviceRateLimitByDefault(t *testing.T) {
	h := newHarness(t, Config{})
	for i := range 1000 {
		p := Payload{Readings: []Reading{{Metric: "temp", Value: NumberValue(1)}}}
		if err := h.b.Telemetry(Input{Device: "d1"}, p, nil); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
}

func TestRejectErrorEvent(t *testing.T) {
	h := newHarness(t, Config{})
	in := Input{Device: "d1", Transport: TransportMQTT, SourceTopic: "devices/d1/telemetry", Received: fixedNow.Add(123 * time.Millisecond)}
	_, perr := ParseTelemetry([]byte(`{"a b":1}`))
	rej := h.b.Reject(in, perr)
	if !rej.Answer || rej.Suppressed != 0 {
		t.Errorf("rejection = %+v", rej)
	}
	writes := h.store.all()
	if len(writes) != 1 || len(writes[0].Events) != 1 {
		t.Fatalf("writes = %+v", writes)
	}
	w := writes[0]
	if w.Device != "d1" || w.Transport != TransportMQTT || !w.Seen.Equal(in.Received) || w.HasSeq || w.Done != nil || w.Presence != nil {
		t.Errorf("write = %+v", w)
	}
	ev := w.Events[0]
	want := `{"topic":"errors/d1","device":"d1","code":"bad_request","message":"metric \"a b\": invalid name (want 1 to 64 of A-Z a-z 0-9 . _ -, starting with a letter or digit)","source_topic":"devices/d1/telemetry","suppressed":0,"ts":"2026-11-25T10:00:00.123Z"}`
	if ev.Kind != KindError || ev.Topic != "errors/d1" || ev.Device != "d1" || string(ev.Data) != want {
		t.Errorf("event = %+v\ndata %s\nwant %s", ev, ev.Data, want)
	}
	if n := testutil.ToFloat64(h.m.Rejected.WithLabelValues(CodeBadRequest)); n != 1 {
		t.Errorf("rejected = %v", n)
	}
	if n := testutil.ToFloat64(h.m.EventsIngested.WithLabelValues("error")); n != 1 {
		t.Errorf("error events ingested = %v", n)
	}
}

func TestRejectCodes(t *testing.T) {
	long := strings.Repeat("x", 2000)
	tests := []struct {
		name     string
		err      error
		wantCode string
		wantMsg  string
	}{
		{"*Error", &Error{Code: CodePayloadTooLarge, Message: "payload of 70000 bytes"}, CodePayloadTooLarge, "payload of 70000 bytes"},
		{"wrapped *Error", errors.Join(errors.New("ctx"), &Error{Code: CodeForbidden, Message: "not yours"}), CodeForbidden, "not yours"},
		{"plain error", errors.New("boom"), CodeBadRequest, "boom"},
		{"unknown code", &Error{Code: "weird", Message: "m"}, CodeBadRequest, "m"},
		{"nil error", nil, CodeBadRequest, "rejected"},
		{"long message", errors.New(long), CodeBadRequest, long[:maxMessage] + "..."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Config{})
			h.b.Reject(Input{Device: "d1", Received: fixedNow}, tt.err)
			m := decodeJSON(t, h.store.all()[0].Events[0].Data)
			if m["code"] != tt.wantCode || m["message"] != tt.wantMsg {
				t.Errorf("code %v message %.60v, want %s %.60s", m["code"], m["message"], tt.wantCode, tt.wantMsg)
			}
			if n := testutil.ToFloat64(h.m.Rejected.WithLabelValues(tt.wantCode)); n != 1 {
				t.Errorf("rejected{%s} = %v", tt.wantCode, n)
			}
		})
	}
}

func TestRejectInvalidDevice(t *testing.T) {
	for _, dev := range []string{"", "a/b", "a+b", "#", "a b", strings.Repeat("d", 65), "d\xff"} {
		h := newHarness(t, Config{})
		rej := h.b.Reject(Input{Device: dev, Received: fixedNow}, Errorf("bad"))
		if rej.Answer || rej.Suppressed != 0 {
			t.Errorf("device %q: rejection %+v, want no answer", dev, rej)
		}
		if len(h.store.all()) != 0 {
			t.Errorf("device %q became a topic", dev)
		}
		if n := testutil.ToFloat64(h.m.Rejected.WithLabelValues(CodeBadRequest)); n != 1 {
			t.Errorf("device %q: rejected = %v, want 1", dev, n)
		}
		if h.logs.count() != 1 {
			t.Errorf("device %q: %d log lines, want 1", dev, h.logs.count())
		}
	}
}

func TestRejectRateLimit(t *testing.T) {
	h := newHarness(t, Config{ErrorRate: 1, ErrorBurst: 2})
	in := Input{Device: "d1", Received: fixedNow}
	reject := func() Rejection { return h.b.Reject(in, Errorf("bad")) }
	wantRej := func(step string, got Rejection, answer bool, suppressed uint64) {
		t.Helper()
		if got.Answer != answer || got.Suppressed != suppressed {
			t.Errorf("%s: rejection = %+v, want answer %v suppressed %d", step, got, answer, suppressed)
		}
	}
	wantRej("burst 1", reject(), true, 0)
	wantRej("burst 2", reject(), true, 0)
	wantRej("over 1", reject(), false, 1)
	wantRej("over 2", reject(), false, 2)
	wantRej("over 3", reject(), false, 3)
	h.clock.add(time.Second)
	wantRej("refilled", reject(), true, 3)
	wantRej("empty again", reject(), false, 1)
	h.clock.add(500 * time.Millisecond)
	wantRej("half a token", reject(), false, 2)
	h.clock.add(500 * time.Millisecond)
	wantRej("a token", reject(), true, 2)

	// another device has its own bucket
	if rej := h.b.Reject(Input{Device: "d2", Received: fixedNow}, Errorf("bad")); !rej.Answer {
		t.Error("d2 limited by d1's errors")
	}

	writes := h.store.all()
	if len(writes) != 5 {
		t.Fatalf("%d error events, want 5", len(writes))
	}
	suppressed := []json.Number{"0", "0", "3", "2", "0"}
	for i, w := range writes {
		if got := decodeJSON(t, w.Events[0].Data)["suppressed"]; got != suppressed[i] {
			t.Errorf("event %d suppressed = %v, want %v", i, got, suppressed[i])
		}
	}
	if n := testutil.ToFloat64(h.m.ErrorsSuppressed); n != 5 {
		t.Errorf("errors suppressed = %v, want 5", n)
	}
	if n := testutil.ToFloat64(h.m.Rejected.WithLabelValues(CodeBadRequest)); n != 10 {
		t.Errorf("rejected = %v, want 10", n)
	}
}

func TestRejectStoreError(t *testing.T) {
	h := newHarness(t, Config{})
	h.store.err = errors.New("closed")
	if rej := h.b.Reject(Input{Device: "d1", Received: fixedNow}, Errorf("bad")); !rej.Answer {
		t.Error("a store failure took the device's answer away")
	}
	if h.logs.count() != 2 {
		t.Errorf("%d log lines, want the rejection and the store failure", h.logs.count())
	}
	if n := testutil.ToFloat64(h.m.EventsIngested.WithLabelValues("error")); n != 0 {
		t.Errorf("error events ingested = %v", n)
	}
}

func TestRejectLogRateLimit(t *testing.T) {
	h := newHarness(t, Config{ErrorBurst: 1000})
	for range 50 {
		h.b.Reject(Input{Device: "d1", Received: fixedNow}, Errorf("bad"))
	}
	if n := h.logs.count(); n != logBurst {
		t.Fatalf("%d log lines for 50 rejections at once, want %d", n, logBurst)
	}
	h.clock.add(logEvery)
	h.b.Reject(Input{Device: "d1", Received: fixedNow}, Errorf("bad"))
	if n := h.logs.count(); n != logBurst+1 {
		t.Fatalf("%d log lines after %v, want %d", n, logEvery, logBurst+1)
	}
	if skipped := h.logs.attr("log_lines_skipped"); skipped.Uint64() != 40 {
		t.Errorf("log_lines_skipped = %v, want 40", skipped)
	}
}

func TestRejectLoggingDisabled(t *testing.T) {
	logger := slog.New(slog.NewTextHandler(&bytes.Buffer{}, &slog.HandlerOptions{Level: slog.LevelError}))
	h := newHarness(t, Config{Logger: logger})
	if rej := h.b.Reject(Input{Device: "d1", Received: fixedNow}, Errorf("bad")); !rej.Answer {
		t.Error("no answer")
	}
}

func TestPresence(t *testing.T) {
	h := newHarness(t, Config{})
	at := fixedNow.Add(7 * time.Millisecond)
	p := Presence{Online: false, Transport: TransportWS, Session: 7, Reason: ReasonTimeout}
	called := 0
	if err := h.b.Presence("d1", p, at, func(Result) { called++ }); err != nil {
		t.Fatal(err)
	}
	w := h.store.all()[0]
	if w.Device != "d1" || w.Transport != TransportWS || !w.Seen.Equal(at) || w.Presence == nil || *w.Presence != p || w.HasSeq {
		t.Errorf("write = %+v", w)
	}
	w.Done(Result{})
	if called != 1 {
		t.Error("Done not wired")
	}
	ev := w.Events[0]
	want := `{"topic":"presence/d1","device":"d1","online":false,"transport":"ws","reason":"timeout","session":7,"ts":"2026-11-25T10:00:00.007Z"}`
	if ev.Kind != KindPresence || ev.Topic != "presence/d1" || ev.Device != "d1" || string(ev.Data) != want {
		t.Errorf("event %+v\ndata %s\nwant %s", ev, ev.Data, want)
	}
	if n := testutil.ToFloat64(h.m.PresenceChanges.WithLabelValues(ReasonTimeout)); n != 1 {
		t.Errorf("presence changes = %v", n)
	}
	if n := testutil.ToFloat64(h.m.EventsIngested.WithLabelValues("presence")); n != 1 {
		t.Errorf("presence events ingested = %v", n)
	}
}

func TestPresenceZeroTimeUsesClock(t *testing.T) {
	h := newHarness(t, Config{})
	p := Presence{Online: true, Transport: TransportMQTT, Session: 1, Reason: ReasonMessage}
	if err := h.b.Presence("d1", p, time.Time{}, nil); err != nil {
		t.Fatal(err)
	}
	w := h.store.all()[0]
	if !w.Seen.Equal(fixedNow) || decodeJSON(t, w.Events[0].Data)["ts"] != "2026-11-25T10:00:00.000Z" {
		t.Errorf("write = %+v, data %s", w, w.Events[0].Data)
	}
}

func TestPresenceRejects(t *testing.T) {
	ok := Presence{Online: true, Transport: TransportWS, Session: 1, Reason: ReasonConnect}
	badTransport, badReason := ok, ok
	badTransport.Transport = "carrier-pigeon"
	badReason.Reason = "bored"
	storeErr := errors.New("closed")
	tests := []struct {
		name     string
		device   string
		p        Presence
		storeErr error
		want     error
	}{
		{"bad device", "a/b", ok, nil, nil},
		{"bad transport", "d1", badTransport, nil, ErrBadPresence},
		{"bad reason", "d1", badReason, nil, ErrBadPresence},
		{"store error", "d1", ok, storeErr, storeErr},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Config{})
			h.store.err = tt.storeErr
			err := h.b.Presence(tt.device, tt.p, fixedNow, nil)
			if tt.want == nil {
				checkRejected(t, err, "device id")
			} else if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if len(h.store.all()) != 0 {
				t.Error("invalid presence reached the store")
			}
			if n := testutil.ToFloat64(h.m.PresenceChanges.WithLabelValues(tt.p.Reason)); n != 0 {
				t.Errorf("presence changes = %v", n)
			}
		})
	}
}

func TestBridgeConcurrentUse(t *testing.T) {
	h := newHarness(t, Config{})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			dev := "d" + string(rune('0'+g))
			for i := range 200 {
				p, _ := ParseTelemetry([]byte(`{"a":1,"b":"x"}`))
				if err := h.b.Telemetry(Input{Device: dev, Received: fixedNow}, p, nil); err != nil {
					t.Error(err)
					return
				}
				h.b.Reject(Input{Device: dev, Received: fixedNow}, Errorf("bad %d", i))
			}
		})
	}
	wg.Wait()
	if n := testutil.ToFloat64(h.m.EventsIngested.WithLabelValues("telemetry")); n != 8*200*2 {
		t.Errorf("telemetry events = %v", n)
	}
	if n := testutil.ToFloat64(h.m.EventsIngested.WithLabelValues("error")); n != 8*DefaultErrorBurst {
		t.Errorf("error events = %v, want the burst of each device", n)
	}
}
