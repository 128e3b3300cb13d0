package devices

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/telehub/telehub/bridge"
	"github.com/telehub/telehub/internal/metrics"
	"github.com/telehub/telehub/internal/mosquittotest"
	"github.com/telehub/telehub/internal/topic"
)

// ---------------------------------------------------------------------------
// A real Mosquitto for the external broker tests.

// startExternal starts an External on m with fakes; edit adjusts its
// config first.
func startExternal(t *testing.T, m *mosquittotest.Broker, edit func(*ExternalConfig)) (*External, *fakeBridge, *fakePresence, *metrics.Metrics) {
	t.Helper()
	fb, fl, mt := &fakeBridge{}, newFakePresence(), metrics.New("test")
	cfg := ExternalConfig{
		URL: "tcp://" + m.Addr, ClientID: fmt.Sprintf("hub-%d", mqttClientSeq.Add(1)),
		Bridge: fb, Presence: fl, ConnectTimeout: 2 * time.Second, MaxReconnectInterval: 200 * time.Millisecond,
		Logger: mqttDiscardLogger(), Metrics: mt,
	}
	if edit != nil {
		edit(&cfg)
	}
	e, err := NewExternal(cfg)
	if err != nil {
		t.Fatalf("NewExternal: %v", err)
	}
	t.Cleanup(func() { _ = e.Shutdown(context.Background()) })
	ctx, cancel := context.WithTimeout(context.Background(), waitGuard)
	defer cancel()
	if err := e.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	return e, fb, fl, mt
}

// ---------------------------------------------------------------------------
// Tests with Mosquitto.

func TestExternalAckAfterCommit(t *testing.T) {
	// With one message in flight per client, Mosquitto sends the hub the
	// second message only once the first is acknowledged.
	m := mosquittotest.Start(t, "max_inflight_messages 1\n")
	e, fb, _, mt := startExternal(t, m, nil)
	if !e.Connected() || testutil.ToFloat64(mt.BrokerConnected) != 1 {
		t.Fatal("not connected after Start")
	}
	fb.setHold()
	device := mustDialMQTT(t, m.Addr, nil)
	device.publish(t, "devices/d1/telemetry", 1, `{"temp":1,"seq":1}`)
	device.publish(t, "devices/d1/telemetry", 1, `{"temp":2,"seq":2}`)
	if w := fb.nextWrite(t); w.p.Seq != 1 || w.in.Device != "d1" || w.in.Transport != bridge.TransportMQTT {
		t.Fatalf("first write %+v", w)
	}
	// The first commit is held, so no PUBACK went to Mosquitto, so the
	// second message cannot arrive. A wrong early ack fails this however
	// slow the box; a correct implementation never does.
	time.Sleep(300 * time.Millisecond)
	fb.noWrite(t)
	fb.release()
	if w := fb.nextWrite(t); w.p.Seq != 2 {
		t.Fatalf("second write %+v", w)
	}
}

func TestExternalRejectionAndPresence(t *testing.T) {
	m := mosquittotest.Start(t, "")
	_, fb, fl, _ := startExternal(t, m, func(c *ExternalConfig) { c.MaxPayload = 1024 })
	device := mustDialMQTT(t, m.Addr, nil)
	answers := device.subscribe(t, "devices/d1/errors")

	device.publish(t, "devices/d1/telemetry", 1, `{"temp":`)
	if rej := fb.nextReject(t); rej.code != bridge.CodeBadRequest || rej.in.Device != "d1" {
		t.Fatalf("rejection %+v", rej)
	}
	if a := nextAnswer(t, answers); a.Code != bridge.CodeBadRequest || a.Topic != "devices/d1/telemetry" {
		t.Fatalf("answer %+v", a)
	}
	fl.expect(t, "online d1 1 message") // a rejected publish is a sign of life

	device.publish(t, "devices/d1/telemetry/temp", 1, string(make([]byte, 1025)))
	if rej := fb.nextReject(t); rej.code != bridge.CodePayloadTooLarge {
		t.Fatalf("rejection %+v", rej)
	}
	nextAnswer(t, answers)

	device.publish(t, "devices/d1/status", 1, "offline")
	fl.expect(t, "offline d1 1 will")
	device.publish(t, "devices/d1/heartbeat", 1, "")
	fl.expect(t, "online d1 2 message")
	device.publish(t, "devices/d1/telemetry/temp", 1, "21.5")
	if w := fb.nextWrite(t); metricsOf(w)[0] != "temp" {
		t.Fatalf("write %+v", w)
	}
	fb.noWrite(t)
}

func TestExternalWillThroughBroker(t *testing.T) {
	m := mosquittotest.Start(t, "")
	_, _, fl, _ := startExternal(t, m, nil)
	device := mustDialMQTT(t, m.Addr, func(o *paho.ClientOptions) {
		o.SetWill("devices/d1/status", "offline", 1, false)
	})
	device.publish(t, "devices/d1/status", 1, "online")
	fl.expect(t, "online d1 1 message")
	device.drop()
	fl.expect(t, "offline d1 1 will")
}

func TestExternalReconnectsAfterBrokerRestart(t *testing.T) {
	m := mosquittotest.Start(t, "")
	e, fb, _, mt := startExternal(t, m, nil)
	m.Stop()
	waitFor(t, "the connection loss", func() bool { return !e.Connected() })
	waitFor(t, "the gauge to drop", func() bool { return testutil.ToFloat64(mt.BrokerConnected) == 0 })
	m.Restart(t)
	waitFor(t, "the reconnection", e.Connected)
	// The restarted broker kept no session: messages reach the hub once it
	// has subscribed again.
	device := mustDialMQTT(t, m.Addr, nil)
	deadline := time.Now().Add(waitGuard)
	for {
		device.publish(t, "devices/d1/telemetry", 1, `{"temp":1}`)
		if w, ok := fb.tryWrite(); ok {
			if w.in.Device != "d1" {
				t.Fatalf("write %+v", w)
			}
			if testutil.ToFloat64(mt.BrokerConnected) != 1 {
				t.Fatal("gauge not back to 1")
			}
			return
		}
		time.Sleep(100 * time.Millisecond) // the pace of the publishes, until one gets through
		if time.Now().After(deadline) {
			t.Fatal("no message after the broker restarted")
		}
	}
}

func TestExternalShareGroup(t *testing.T) {
	m := mosquittotest.Start(t, "")
	_, fb, _, _ := startExternal(t, m, func(c *ExternalConfig) { c.ShareGroup = "hubs" })
	device := mustDialMQTT(t, m.Addr, nil)
	device.publish(t, "devices/d1/telemetry", 1, `{"temp":1}`)
	if w := fb.nextWrite(t); w.in.SourceTopic != "devices/d1/telemetry" {
		t.Fatalf("write %+v", w.in)
	}
}

func TestExternalSubscriptionRefused(t *testing.T) {
	// telehub's own broker with credentials refuses subscriptions outside
	// the device's topics, with 0x80 in the SUBACK: Start reports it.
	b := startMQTTBroker(t, func(c *BrokerConfig) { c.Authenticate = func(string, string) bool { return true } })
	e, err := NewExternal(ExternalConfig{URL: "tcp://" + b.Addr().String(), ClientID: "hub-refused",
		Username: "hub", Password: "x", Bridge: &fakeBridge{}, Presence: newFakePresence(),
		ConnectTimeout: 2 * time.Second, Logger: mqttDiscardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Shutdown(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), waitGuard)
	defer cancel()
	if err := e.Ready(); err == nil {
		t.Fatal("Ready before Start: nil")
	}
	if err := e.Start(ctx); err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Start: %v, want the refused subscription", err)
	}
	// Connected, but not ready: the refusal shows, not only in the logs.
	if !e.Connected() {
		t.Fatal("not connected after a refused subscription")
	}
	if err := e.Ready(); err == nil || !strings.Contains(err.Error(), "subscriptions failed") {
		t.Fatalf("Ready = %v, want the refused subscriptions", err)
	}
}

// ---------------------------------------------------------------------------
// Tests without a broker.

func TestNewExternalRejectsBadConfig(t *testing.T) {
	fb, fl := &fakeBridge{}, newFakePresence()
	ok := ExternalConfig{URL: "tcp://127.0.0.1:1883", ClientID: "hub", Bridge: fb, Presence: fl}
	tests := []struct {
		name string
		edit func(*ExternalConfig)
	}{
		{"no url", func(c *ExternalConfig) { c.URL = "" }},
		{"bad scheme", func(c *ExternalConfig) { c.URL = "http://127.0.0.1:1883" }},
		{"no host", func(c *ExternalConfig) { c.URL = "tcp://" }},
		{"unparsable url", func(c *ExternalConfig) { c.URL = "tcp://[::1" }},
		{"no client id", func(c *ExternalConfig) { c.ClientID = "" }},
		{"no bridge", func(c *ExternalConfig) { c.Bridge = nil }},
		{"no presence", func(c *ExternalConfig) { c.Presence = nil }},
		{"share group with slash", func(c *ExternalConfig) { c.ShareGroup = "a/b" }},
		{"share group with wildcard", func(c *ExternalConfig) { c.ShareGroup = "a+" }},
		{"negative payload", func(c *ExternalConfig) { c.MaxPayload = -1 }},
		{"negative keepalive", func(c *ExternalConfig) { c.KeepAlive = -time.Second }},
		{"negative queue", func(c *ExternalConfig) { c.AnswerQueue = -1 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := ok
			tt.edit(&cfg)
			if _, err := NewExternal(cfg); !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("NewExternal: %v, want ErrInvalidConfig", err)
			}
		})
	}
	for _, scheme := range []string{"tcp", "ssl", "tls", "mqtt", "mqtts", "ws", "wss"} {
		cfg := ok
		cfg.URL = scheme + "://127.0.0.1:1883"
		if _, err := NewExternal(cfg); err != nil {
			t.Errorf("scheme %s refused: %v", scheme, err)
		}
	}
}

// unreachableURL returns a loopback URL nobody listens on.
func unreachableURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return "tcp://" + addr
}

func newUnstartedExternal(t *testing.T, url string) (*External, *fakeBridge, *fakePresence) {
	t.Helper()
	fb, fl := &fakeBridge{}, newFakePresence()
	e, err := NewExternal(ExternalConfig{URL: url, ClientID: "hub", Bridge: fb, Presence: fl,
		MaxPayload: 1024, AnswerQueue: 2, ConnectTimeout: time.Second, MaxReconnectInterval: 100 * time.Millisecond,
		Logger: mqttDiscardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Shutdown(context.Background()) })
	return e, fb, fl
}

func TestExternalStartGivesUp(t *testing.T) {
	e, _, _ := newUnstartedExternal(t, unreachableURL(t))
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := e.Start(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Start: %v, want a deadline error", err)
	}
	if e.Connected() {
		t.Fatal("connected to nothing")
	}
	if err := e.Start(context.Background()); !errors.Is(err, ErrStarted) {
		t.Fatalf("second Start: %v, want ErrStarted", err)
	}
}

func TestExternalShutdownStopsStart(t *testing.T) {
	e, _, _ := newUnstartedExternal(t, unreachableURL(t))
	started := make(chan error, 1)
	go func() { started <- e.Start(context.Background()) }()
	time.Sleep(50 * time.Millisecond) // let it try at least once; not required
	if err := e.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-started:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("Start: %v, want ErrClosed", err)
		}
	case <-time.After(waitGuard):
		t.Fatal("Start did not return after Close")
	}
	if err := e.Shutdown(context.Background()); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestExternalStartAfterShutdown(t *testing.T) {
	e, _, _ := newUnstartedExternal(t, unreachableURL(t))
	_ = e.Shutdown(context.Background())
	if err := e.Start(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Start after Close: %v, want ErrClosed", err)
	}
}

// mqttFakeMessage is a paho.Message that counts its acks.
type mqttFakeMessage struct {
	topic   string
	payload []byte
	qos     byte
	acks    atomic.Int32
}

func (m *mqttFakeMessage) Duplicate() bool   { return false }
func (m *mqttFakeMessage) Qos() byte         { return m.qos }
func (m *mqttFakeMessage) Retained() bool    { return false }
func (m *mqttFakeMessage) Topic() string     { return m.topic }
func (m *mqttFakeMessage) MessageID() uint16 { return 1 }
func (m *mqttFakeMessage) Payload() []byte   { return m.payload }
func (m *mqttFakeMessage) Ack()              { m.acks.Add(1) }

// ackedMessages takes the acknowledgeable messages of q.
func ackedMessages(q *externalAcks) []paho.Message { return q.take(nil, false) }

func TestExternalAcksInOrder(t *testing.T) {
	var q externalAcks
	q.wake = make(chan struct{}, 1)
	msgs := make([]*mqttFakeMessage, 4)
	slots := make([]*externalAck, 4)
	for i := range msgs {
		msgs[i] = &mqttFakeMessage{topic: strconv.Itoa(i), qos: 1}
		slots[i] = q.push(msgs[i])
	}
	q0 := q.push(&mqttFakeMessage{qos: 0})
	q.release(q0, true) // QoS 0: nothing queued, nothing released
	q.release(slots[1], true)
	q.release(slots[2], false) // commit failed: never acknowledged
	if got := ackedMessages(&q); len(got) != 0 {
		t.Fatalf("acknowledged %d messages ahead of the first", len(got))
	}
	select {
	case <-q.wake:
		t.Fatal("woken for a release behind the head")
	default:
	}
	slots[0].committed(bridge.Result{})
	<-q.wake
	got := ackedMessages(&q)
	if len(got) != 2 || got[0] != paho.Message(msgs[0]) || got[1] != paho.Message(msgs[1]) {
		t.Fatalf("acknowledged %v", got)
	}
	slots[3].committed(bridge.Result{Err: errors.New("disk")})
	if got := ackedMessages(&q); len(got) != 0 {
		t.Fatalf("acknowledged a failed commit: %v", got)
	}
	if len(q.queue) != 0 {
		t.Fatalf("%d messages left in the queue", len(q.queue))
	}
	q.take(nil, true)
	late := q.push(&mqttFakeMessage{qos: 1})
	q.release(late, true)
	if len(q.queue) != 0 {
		t.Fatal("queued after close")
	}
}

func TestExternalOnMessage(t *testing.T) {
	e, fb, fl := newUnstartedExternal(t, "tcp://127.0.0.1:1")
	tests := []struct {
		name, topic, payload string
		telemetryErr         error
		write, acked         bool
		code                 string // of the rejection, "" for none
		presence             string // the next presence event, "" for none
	}{
		{"telemetry", "devices/d1/telemetry", `{"t":1}`, nil, true, true, "", "online d1 1 message"},
		{"plain", "devices/d1/telemetry/t", `1`, nil, true, true, "", ""},
		{"heartbeat", "devices/d1/heartbeat", ``, nil, false, true, "", ""},
		{"bad json", "devices/d1/telemetry", `{`, nil, false, true, bridge.CodeBadRequest, ""},
		{"too large", "devices/d1/telemetry", string(make([]byte, 1025)), nil, false, true, bridge.CodePayloadTooLarge, ""},
		{"bad id", "devices/d 1/telemetry", `{"t":1}`, nil, false, true, bridge.CodeBadRequest, ""},
		{"foreign", "plant/line1", `x`, nil, false, true, "", ""},
		{"own answer", "devices/d1/errors", `{}`, nil, false, true, "", ""},
		{"store failure", "devices/d1/telemetry", `{"t":1}`, errors.New("closed"), false, false, bridge.CodeInternal, ""},
		{"bridge refusal", "devices/d1/telemetry", `{"t":1}`, bridge.Errorf("no"), false, true, bridge.CodeBadRequest, ""},
		{"offline", "devices/d1/status", `offline`, nil, false, true, "", "offline d1 1 will"},
		{"online", "devices/d1/status", `online`, nil, false, true, "", "online d1 2 message"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fb.setErrors(tt.telemetryErr, nil)
			defer fb.setErrors(nil, nil)
			m := &mqttFakeMessage{topic: tt.topic, payload: []byte(tt.payload), qos: 1}
			e.onMessage(nil, m)
			if tt.write {
				fb.nextWrite(t)
			}
			fb.noWrite(t)
			if tt.code != "" {
				rej := fb.nextReject(t)
				if rej.code != tt.code {
					t.Fatalf("rejection %+v, want %s", rej, tt.code)
				}
				if topic.ValidDeviceID(rej.in.Device) == nil {
					<-e.answers // queued for the answer goroutine (not running here)
				}
			}
			if tt.presence != "" {
				fl.expect(t, tt.presence)
			}
			fl.none(t)
			got := ackedMessages(&e.acks)
			if acked := len(got) == 1; acked != tt.acked {
				t.Fatalf("acknowledged %v, want %v", acked, tt.acked)
			}
			if len(e.acks.queue) != 0 {
				t.Fatal("message left in the ack queue")
			}
		})
	}
}

func TestExternalAnswerQueueBounded(t *testing.T) {
	e, fb, _ := newUnstartedExternal(t, "tcp://127.0.0.1:1")
	before := testutil.ToFloat64(e.cfg.Metrics.MQTTDropped)
	for range 5 {
		e.onMessage(nil, &mqttFakeMessage{topic: "devices/d1/telemetry", payload: []byte("{"), qos: 0})
		fb.nextReject(t)
	}
	if got := len(e.answers); got != 2 {
		t.Fatalf("%d answers queued, want the queue's 2", got)
	}
	if got := testutil.ToFloat64(e.cfg.Metrics.MQTTDropped) - before; got != 3 {
		t.Fatalf("%v answers counted as dropped, want 3", got)
	}
}

func BenchmarkExternalOnMessage(b *testing.B) {
	fb, fl := &fakeBridge{}, newFakePresence()
	e, err := NewExternal(ExternalConfig{URL: "tcp://127.0.0.1:1", ClientID: "hub", Bridge: fb, Presence: fl,
		Logger: mqttDiscardLogger()})
	if err != nil {
		b.Fatal(err)
	}
	fb.discard = true
	m := &mqttFakeMessage{topic: "devices/pump-7/telemetry", payload: []byte(`{"temp":21.5,"hum":40}`), qos: 1}
	var batch []paho.Message
	b.ReportAllocs()
	for b.Loop() {
		e.onMessage(nil, m)
		batch = e.acks.take(batch[:0], false)
	}
}
