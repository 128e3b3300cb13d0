package devices

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/telehub/telehub/bridge"
	"github.com/telehub/telehub/internal/metrics"
	"github.com/telehub/telehub/internal/testcert"
	"github.com/telehub/telehub/internal/topic"
)

// mqttBlockingInTests makes the brokers of startMQTTBroker read every
// connection on a goroutine of its own, as TLS connections are read
// (TestMQTTOnBlockingReads).
var mqttBlockingInTests bool

// mqttTestBroker is an embedded broker on 127.0.0.1:0 with fakes.
type mqttTestBroker struct {
	*Broker
	bridge *fakeBridge
	live   *fakePresence
	m      *metrics.Metrics
}

func mqttDiscardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// startMQTTBroker starts a broker; edit adjusts its config first.
func startMQTTBroker(t testing.TB, edit func(*BrokerConfig)) *mqttTestBroker {
	t.Helper()
	tb := &mqttTestBroker{bridge: &fakeBridge{}, live: newFakePresence(), m: metrics.New("test")}
	cfg := BrokerConfig{
		Addr: "127.0.0.1:0", Bridge: tb.bridge, Presence: tb.live,
		Logger: mqttDiscardLogger(), Metrics: tb.m,
	}
	if edit != nil {
		edit(&cfg)
	}
	b, err := NewBroker(cfg)
	if err != nil {
		t.Fatalf("NewBroker: %v", err)
	}
	b.sessions.blocking = mqttBlockingInTests
	t.Cleanup(func() { _ = b.Shutdown(context.Background()) })
	if err := b.Start(context.Background()); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	tb.Broker = b
	return tb
}

// conns returns how many connections the hook tracks: a connection is
// forgotten once its OnDisconnect ran.
func (b *mqttTestBroker) conns() int {
	n := 0
	b.hook.conns.Range(func(any, any) bool { n++; return true })
	return n
}

// waitTakenOver waits until the hook tracks exactly one connection, the
// one that took the session over: the replaced one's OnDisconnect ran.
func (b *mqttTestBroker) waitTakenOver(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(waitGuard)
	for {
		n, replaced := 0, 0
		b.hook.conns.Range(func(_, v any) bool {
			n++
			if v.(*mqttConn).replaced.Load() {
				replaced++
			}
			return true
		})
		if n == 1 && replaced == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("hook tracks %d connections, %d replaced", n, replaced)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// nextMessage returns the next message of ch.
func nextMessage(t *testing.T, ch <-chan paho.Message) paho.Message {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(waitGuard):
		t.Fatal("no message")
		return nil
	}
}

// waitConns waits until the hook tracks n connections.
func (b *mqttTestBroker) waitConns(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(waitGuard)
	for b.conns() != n {
		if time.Now().After(deadline) {
			t.Fatalf("hook tracks %d connections, want %d", b.conns(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

var mqttClientSeq atomic.Uint64

// mqttTestClient is a paho device client; conn is its TCP connection.
type mqttTestClient struct {
	paho.Client
	mu   sync.Mutex
	conn net.Conn
}

// dialMQTT connects a paho client to the broker; edit adjusts its options.
func dialMQTT(t *testing.T, addr string, edit func(*paho.ClientOptions)) (*mqttTestClient, error) {
	t.Helper()
	c := &mqttTestClient{}
	o := paho.NewClientOptions().
		AddBroker("tcp://" + addr).
		SetClientID(fmt.Sprintf("test-%d", mqttClientSeq.Add(1))).
		SetAutoReconnect(false).
		SetConnectTimeout(waitGuard).
		SetWriteTimeout(waitGuard).
		SetCustomOpenConnectionFn(func(u *url.URL, _ paho.ClientOptions) (net.Conn, error) {
			conn, err := net.Dial("tcp", u.Host)
			c.mu.Lock()
			c.conn = conn
			c.mu.Unlock()
			return conn, err
		})
	if edit != nil {
		edit(o)
	}
	c.Client = paho.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(waitGuard) {
		t.Fatal("paho connect timed out")
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Disconnect(50) })
	return c, nil
}

// mustDialMQTT is dialMQTT that fails the test on a refused connection.
func mustDialMQTT(t *testing.T, addr string, edit func(*paho.ClientOptions)) *mqttTestClient {
	t.Helper()
	c, err := dialMQTT(t, addr, edit)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	return c
}

// drop closes the client's TCP connection without a DISCONNECT.
func (c *mqttTestClient) drop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	_ = c.conn.Close()
}

// publish publishes and waits for the publish to complete (PUBACK for QoS 1).
func (c *mqttTestClient) publish(t *testing.T, topic string, qos byte, payload string) {
	t.Helper()
	tok := c.Publish(topic, qos, false, payload)
	if !tok.WaitTimeout(waitGuard) {
		t.Fatalf("publish to %s: no PUBACK", topic)
	}
	if err := tok.Error(); err != nil {
		t.Fatalf("publish to %s: %v", topic, err)
	}
}

// subscribe returns the messages the client gets on filter.
func (c *mqttTestClient) subscribe(t *testing.T, filter string) <-chan paho.Message {
	t.Helper()
	ch := make(chan paho.Message, 64)
	tok := c.Subscribe(filter, 1, func(_ paho.Client, m paho.Message) { ch <- m })
	if !tok.WaitTimeout(waitGuard) || tok.Error() != nil {
		t.Fatalf("subscribe %s: %v", filter, tok.Error())
	}
	return ch
}

// mqttAnswerJSON is the JSON of an error answer.
type mqttAnswerJSON struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Topic   string `json:"topic"`
}

// nextAnswer decodes the next message of ch as an error answer.
func nextAnswer(t *testing.T, ch <-chan paho.Message) mqttAnswerJSON {
	t.Helper()
	select {
	case m := <-ch:
		var a mqttAnswerJSON
		if err := json.Unmarshal(m.Payload(), &a); err != nil {
			t.Fatalf("answer %q: %v", m.Payload(), err)
		}
		return a
	case <-time.After(waitGuard):
		t.Fatal("no error answer")
		return mqttAnswerJSON{}
	}
}

func metricsOf(w fakeWrite) []string {
	var names []string
	for _, r := range w.p.Readings {
		names = append(names, r.Metric)
	}
	return names
}

// ---------------------------------------------------------------------------
// Tests.

func TestNewBrokerRejectsBadConfig(t *testing.T) {
	fb, fl := &fakeBridge{}, newFakePresence()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	tests := []struct {
		name    string
		cfg     BrokerConfig
		invalid bool // ErrInvalidConfig rather than a listen error
	}{
		{"no bridge", BrokerConfig{Presence: fl}, true},
		{"no liveness", BrokerConfig{Bridge: fb}, true},
		{"negative payload", BrokerConfig{Bridge: fb, Presence: fl, MaxPayload: -1}, true},
		{"payload over MQTT limit", BrokerConfig{Bridge: fb, Presence: fl, MaxPayload: 1 << 30}, true},
		{"negative connect timeout", BrokerConfig{Bridge: fb, Presence: fl, ConnectTimeout: -time.Second}, true},
		{"address in use", BrokerConfig{Bridge: fb, Presence: fl, Addr: busy.Addr().String()}, false},
		{"bad address", BrokerConfig{Bridge: fb, Presence: fl, Addr: "127.0.0.1:http-alt-nope"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Logger = mqttDiscardLogger()
			b, err := NewBroker(tt.cfg)
			if err == nil {
				_ = b.Shutdown(context.Background())
				t.Fatal("NewBroker accepted the config")
			}
			if got := errors.Is(err, ErrInvalidConfig); got != tt.invalid {
				t.Fatalf("errors.Is(%v, ErrInvalidConfig) = %v, want %v", err, got, tt.invalid)
			}
		})
	}
}

func TestBrokerLifecycle(t *testing.T) {
	b, err := NewBroker(BrokerConfig{Addr: "127.0.0.1:0", Bridge: &fakeBridge{},
		Presence: newFakePresence(), Logger: mqttDiscardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	addr := b.Addr().(*net.TCPAddr)
	if addr.Port == 0 {
		t.Fatal("Addr did not resolve port 0")
	}
	if err := b.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(context.Background()); !errors.Is(err, ErrStarted) {
		t.Fatalf("second Serve: %v, want ErrStarted", err)
	}
	if err := b.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := b.Shutdown(context.Background()); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := b.Start(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Serve after Close: %v, want ErrClosed", err)
	}
	ln, err := net.Listen("tcp", addr.String())
	if err != nil {
		t.Fatalf("port not released: %v", err)
	}
	_ = ln.Close()
}

func TestBrokerShutdownWithoutStart(t *testing.T) {
	b, err := NewBroker(BrokerConfig{Addr: "127.0.0.1:0", Bridge: &fakeBridge{},
		Presence: newFakePresence(), Logger: mqttDiscardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	addr := b.Addr().String()
	if err := b.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("port not released: %v", err)
	}
	_ = ln.Close()
}

func TestBrokerTelemetryForms(t *testing.T) {
	b := startMQTTBroker(t, nil)
	c := mustDialMQTT(t, b.Addr().String(), nil)
	forms := []struct {
		name, topic, payload string
		metrics              []string
		seq                  uint64
	}{
		{"object", "devices/d1/telemetry", `{"temp":21.5,"hum":40,"door":"open","alarm":false,"seq":7}`,
			[]string{"alarm", "door", "hum", "temp"}, 7},
		{"wrapped", "devices/d1/telemetry", `{"ts":1764064800000,"seq":8,"values":{"temp":21.5}}`,
			[]string{"temp"}, 8},
		{"senml", "devices/d1/telemetry", `[{"bn":"room.","n":"temp","u":"Cel","v":21.5},{"n":"hum","v":40}]`,
			[]string{"room.hum", "room.temp"}, 0},
		{"plain number", "devices/d1/telemetry/temp", `21.5`, []string{"temp"}, 0},
		{"plain bool", "devices/d1/telemetry/alarm", `true`, []string{"alarm"}, 0},
		{"plain string", "devices/d1/telemetry/door", `open`, []string{"door"}, 0},
	}
	for _, qos := range []byte{0, 1} {
		for _, f := range forms {
			t.Run(fmt.Sprintf("qos%d/%s", qos, f.name), func(t *testing.T) {
				c.publish(t, f.topic, qos, f.payload)
				w := b.bridge.nextWrite(t)
				if w.in.Device != "d1" || w.in.Transport != bridge.TransportMQTT || w.in.SourceTopic != f.topic {
					t.Fatalf("input %+v", w.in)
				}
				if w.in.Received.IsZero() {
					t.Fatal("no receive time")
				}
				got := metricsOf(w)
				sortStrings(got)
				if strings.Join(got, ",") != strings.Join(f.metrics, ",") {
					t.Fatalf("metrics %v, want %v", got, f.metrics)
				}
				if w.p.Seq != f.seq || w.p.HasSeq != (f.seq != 0) {
					t.Fatalf("seq %d/%v, want %d", w.p.Seq, w.p.HasSeq, f.seq)
				}
			})
		}
	}
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

func TestBrokerQoS1AckAfterCommit(t *testing.T) {
	b := startMQTTBroker(t, nil)
	c := mustDialMQTT(t, b.Addr().String(), nil)
	b.bridge.setHold()
	tok := c.Publish("devices/d1/telemetry", 1, false, `{"temp":1}`)
	b.bridge.nextWrite(t)
	// The commit is held: the PUBACK must not come. Waiting proves nothing
	// about speed; a PUBACK within it is a failure however loaded the box.
	if tok.WaitTimeout(300 * time.Millisecond) {
		t.Fatal("PUBACK before the commit")
	}
	b.bridge.release()
	if !tok.WaitTimeout(waitGuard) || tok.Error() != nil {
		t.Fatalf("no PUBACK after the commit: %v", tok.Error())
	}
}

func TestBrokerQoS0DoesNotWait(t *testing.T) {
	b := startMQTTBroker(t, nil)
	c := mustDialMQTT(t, b.Addr().String(), nil)
	b.bridge.setHold()
	defer b.bridge.release()
	for i := range 3 {
		c.publish(t, "devices/d1/telemetry", 0, fmt.Sprintf(`{"temp":%d}`, i))
		b.bridge.nextWrite(t) // all three reach the bridge with no commit done
	}
}

func TestBrokerRejections(t *testing.T) {
	big := strings.Repeat("x", 2049)
	tests := []struct {
		name, topic, payload string
		telemetryErr         error
		code                 string
	}{
		{"bad json", "devices/d1/telemetry", `{"temp":`, nil, bridge.CodeBadRequest},
		{"nested value", "devices/d1/telemetry", `{"temp":{"c":1}}`, nil, bridge.CodeBadRequest},
		{"bad plain", "devices/d1/telemetry/temp", "\xff\xfe", nil, bridge.CodeBadRequest},
		{"bad metric in topic", "devices/d1/telemetry/bad metric", `1`, nil, bridge.CodeBadRequest},
		{"metric with levels", "devices/d1/telemetry/a/b", `1`, nil, bridge.CodeBadRequest},
		{"unknown topic", "devices/d1/config", `{}`, nil, bridge.CodeBadRequest},
		{"device root", "devices/d1", `{}`, nil, bridge.CodeBadRequest},
		{"bad status", "devices/d1/status", `sleeping`, nil, bridge.CodeBadRequest},
		{"oversized", "devices/d1/telemetry", `{"s":"` + big + `"}`, nil, bridge.CodePayloadTooLarge},
		{"oversized heartbeat", "devices/d1/heartbeat", big[:1025], nil, bridge.CodePayloadTooLarge},
		{"store failure", "devices/d1/telemetry", `{"temp":1}`, errors.New("disk full"), bridge.CodeInternal},
		{"bridge refusal", "devices/d1/telemetry", `{"temp":1}`, bridge.Errorf("no readings"), bridge.CodeBadRequest},
	}
	b := startMQTTBroker(t, func(c *BrokerConfig) { c.MaxPayload = 2048 })
	c := mustDialMQTT(t, b.Addr().String(), nil)
	answers := c.subscribe(t, "devices/d1/errors")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b.bridge.setErrors(tt.telemetryErr, nil)
			defer b.bridge.setErrors(nil, nil)
			for _, qos := range []byte{0, 1} {
				tok := c.Publish(tt.topic, qos, false, tt.payload)
				if tt.telemetryErr == nil || qos == 0 || tt.code != bridge.CodeInternal {
					// Rejected payloads are acknowledged; a store failure
					// leaves a QoS 1 publish unacknowledged.
					if !tok.WaitTimeout(waitGuard) || tok.Error() != nil {
						t.Fatalf("qos %d: publish not acknowledged: %v", qos, tok.Error())
					}
				}
				rej := b.bridge.nextReject(t)
				if rej.code != tt.code || rej.in.Device != "d1" || rej.in.SourceTopic != tt.topic ||
					rej.in.Transport != bridge.TransportMQTT {
					t.Fatalf("qos %d: rejection %+v, want code %s", qos, rej, tt.code)
				}
				a := nextAnswer(t, answers)
				if a.Code != tt.code || a.Topic != tt.topic || a.Message == "" {
					t.Fatalf("qos %d: answer %+v", qos, a)
				}
			}
			b.bridge.noWrite(t)
			if !c.IsConnectionOpen() {
				t.Fatal("client disconnected for a bad payload")
			}
		})
	}
	c.publish(t, "devices/d1/telemetry", 1, `{"temp":1}`)
	b.bridge.nextWrite(t)
}

func TestBrokerCommitFailureLeavesPublishUnacked(t *testing.T) {
	b := startMQTTBroker(t, nil)
	c := mustDialMQTT(t, b.Addr().String(), nil)
	answers := c.subscribe(t, "devices/d1/errors")
	b.bridge.setErrors(nil, errors.New("fsync failed"))
	tok := c.Publish("devices/d1/telemetry", 1, false, `{"temp":1}`)
	b.bridge.nextWrite(t)
	if rej := b.bridge.nextReject(t); rej.code != bridge.CodeInternal {
		t.Fatalf("rejection %+v", rej)
	}
	if a := nextAnswer(t, answers); a.Code != bridge.CodeInternal {
		t.Fatalf("answer %+v", a)
	}
	if tok.WaitTimeout(100 * time.Millisecond) {
		t.Fatal("PUBACK for a reading that was not stored")
	}
	if !c.IsConnectionOpen() {
		t.Fatal("client disconnected")
	}
}

func TestBrokerBadDeviceID(t *testing.T) {
	long := strings.Repeat("a", 65)
	tests := []struct{ name, topic, raw string }{
		{"space", "devices/bad id/telemetry", "bad id"},
		{"empty", "devices//telemetry", ""},
		{"too long", "devices/" + long + "/telemetry", long},
		{"leading dot", "devices/.d/telemetry", ".d"},
	}
	b := startMQTTBroker(t, nil)
	unbound := mustDialMQTT(t, b.Addr().String(), nil)
	bound := mustDialMQTT(t, b.Addr().String(), nil)
	answers := bound.subscribe(t, "devices/d7/errors")
	bound.publish(t, "devices/d7/heartbeat", 1, "")
	b.live.expect(t, "online d7 1 message")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			unbound.publish(t, tt.topic, 1, `{"temp":1}`)
			if rej := b.bridge.nextReject(t); rej.in.Device != tt.raw || rej.code != bridge.CodeBadRequest {
				t.Fatalf("unbound: rejection %+v, want device %q", rej, tt.raw)
			}
			// A connection that belongs to a device is answered there.
			bound.publish(t, tt.topic, 1, `{"temp":1}`)
			if rej := b.bridge.nextReject(t); rej.in.Device != "d7" {
				t.Fatalf("bound: rejection %+v", rej)
			}
			if a := nextAnswer(t, answers); a.Topic != tt.topic || a.Code != bridge.CodeBadRequest {
				t.Fatalf("answer %+v", a)
			}
			b.bridge.noWrite(t)
		})
	}
	b.live.none(t) // no presence for invalid ids
}

func TestBrokerForeignTopicsPassThrough(t *testing.T) {
	b := startMQTTBroker(t, nil)
	c := mustDialMQTT(t, b.Addr().String(), nil)
	other := c.subscribe(t, "plant/#")
	own := c.subscribe(t, "devices/d1/errors")
	c.publish(t, "plant/line1", 1, "hello")
	if m := nextMessage(t, other); string(m.Payload()) != "hello" {
		t.Fatalf("payload %q", m.Payload())
	}
	// A device publishing on its own answer topic is neither stored nor
	// answered (no loop).
	c.publish(t, "devices/d1/errors", 1, `{"code":"x"}`)
	nextMessage(t, own)
	c.publish(t, "devices/d1/telemetry", 1, `{"temp":1}`)
	b.bridge.nextWrite(t)
	b.bridge.noReject(t)
}

func TestBrokerOversizedPacketDropsConnection(t *testing.T) {
	b := startMQTTBroker(t, func(c *BrokerConfig) { c.MaxPayload = 1024 })
	lost := make(chan struct{})
	c := mustDialMQTT(t, b.Addr().String(), func(o *paho.ClientOptions) {
		o.SetConnectionLostHandler(func(paho.Client, error) { close(lost) })
	})
	c.Publish("devices/d1/telemetry", 0, false, strings.Repeat("x", 1024+mqttPacketOverhead+1))
	select {
	case <-lost:
	case <-time.After(waitGuard):
		t.Fatal("connection kept after a packet over the limit")
	}
	b.bridge.noWrite(t)
}

func TestBrokerHeartbeat(t *testing.T) {
	b := startMQTTBroker(t, nil)
	c := mustDialMQTT(t, b.Addr().String(), nil)
	c.publish(t, "devices/d1/heartbeat", 1, "")
	b.live.expect(t, "online d1 1 message")
	before := b.live.heardCount("d1")
	c.publish(t, "devices/d1/heartbeat", 0, strings.Repeat("x", 1024))
	c.publish(t, "devices/d1/heartbeat", 1, "ping")
	if got := b.live.heardCount("d1"); got < before+2 {
		t.Fatalf("heard %d times, want at least %d", got, before+2)
	}
	b.bridge.noWrite(t)
	b.live.none(t)
}

func TestBrokerPresenceWithoutCredentials(t *testing.T) {
	b := startMQTTBroker(t, nil)
	c := mustDialMQTT(t, b.Addr().String(), nil)
	b.waitConns(t, 1)
	b.live.none(t) // connected, but not a device's yet
	if got := testutil.ToFloat64(b.m.DevicesConnected.WithLabelValues("mqtt")); got != 0 {
		t.Fatalf("devices connected %v before any publish", got)
	}
	c.publish(t, "devices/d1/telemetry", 1, `{"temp":1}`)
	b.live.expect(t, "online d1 1 message")
	if got := testutil.ToFloat64(b.m.DevicesConnected.WithLabelValues("mqtt")); got != 1 {
		t.Fatalf("devices connected %v, want 1", got)
	}
	// Publishing for another device refreshes that one (no credentials).
	c.publish(t, "devices/d2/telemetry", 1, `{"temp":1}`)
	b.live.expect(t, "online d2 1 message")
	c.Disconnect(250)
	b.live.expect(t, "offline d1 1 disconnect")
	b.waitConns(t, 0)
	b.live.none(t)
	if got := testutil.ToFloat64(b.m.DevicesConnected.WithLabelValues("mqtt")); got != 0 {
		t.Fatalf("devices connected %v after disconnect", got)
	}
}

func TestBrokerWillOnDrop(t *testing.T) {
	b := startMQTTBroker(t, nil)
	watcher := mustDialMQTT(t, b.Addr().String(), nil)
	status := watcher.subscribe(t, "devices/d1/status")
	c := mustDialMQTT(t, b.Addr().String(), func(o *paho.ClientOptions) {
		o.SetWill("devices/d1/status", "offline", 1, false)
	})
	c.publish(t, "devices/d1/status", 1, "online")
	b.live.expect(t, "online d1 1 message")
	nextMessage(t, status)
	c.drop()
	b.live.expect(t, "offline d1 1 will")
	b.waitConns(t, 1) // the dropped connection's OnDisconnect ran
	b.live.none(t)    // and called no disconnect
	if m := nextMessage(t, status); string(m.Payload()) != "offline" {
		t.Fatalf("will payload %q", m.Payload())
	}
}

func TestBrokerDropWithoutWill(t *testing.T) {
	b := startMQTTBroker(t, nil)
	c := mustDialMQTT(t, b.Addr().String(), nil)
	c.publish(t, "devices/d1/telemetry", 1, `{"temp":1}`)
	b.live.expect(t, "online d1 1 message")
	c.drop()
	b.live.expect(t, "offline d1 1 disconnect")
}

func TestBrokerStatusPublishes(t *testing.T) {
	b := startMQTTBroker(t, nil)
	c := mustDialMQTT(t, b.Addr().String(), nil)
	other := mustDialMQTT(t, b.Addr().String(), nil)
	c.publish(t, "devices/d1/status", 1, "online")
	b.live.expect(t, "online d1 1 message")
	c.publish(t, "devices/d1/status", 1, "offline")
	b.live.expect(t, "offline d1 1 will")
	// After saying offline, the connection no longer keeps the device
	// alive by its packets; its next publish brings it back.
	c.publish(t, "devices/d1/heartbeat", 1, "")
	b.live.expect(t, "online d1 2 message")
	// A status offline from a connection that does not hold the device
	// ends the device's current session all the same.
	other.publish(t, "devices/d1/status", 1, "offline")
	b.live.expect(t, "offline d1 2 will")
	b.bridge.noWrite(t)
}

func TestBrokerTakeoverKeepsDeviceOnline(t *testing.T) {
	tests := []struct {
		name  string
		creds bool
	}{
		{"credentials", true},
		{"no credentials", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := startMQTTBroker(t, func(c *BrokerConfig) {
				if tt.creds {
					c.Authenticate = func(u, p string) bool { return p == "secret-"+u }
				}
			})
			opts := func(o *paho.ClientOptions) {
				o.SetClientID("pump-7").SetUsername("d1").SetPassword("secret-d1").
					SetCleanSession(false).SetWill("devices/d1/status", "offline", 1, false)
			}
			first := mustDialMQTT(t, b.Addr().String(), opts)
			if tt.creds {
				b.live.expect(t, "online d1 1 connect")
			} else {
				first.publish(t, "devices/d1/telemetry", 1, `{"temp":1}`)
				b.live.expect(t, "online d1 1 message")
			}
			second := mustDialMQTT(t, b.Addr().String(), opts)
			if tt.creds {
				b.live.expect(t, "online d1 2 connect")
			}
			b.waitTakenOver(t) // the first connection's OnDisconnect ran
			b.live.none(t)     // neither its will nor its disconnect counted
			second.publish(t, "devices/d1/telemetry", 1, `{"temp":2}`)
			if !tt.creds {
				b.live.expect(t, "online d1 2 message")
			}
			second.Disconnect(250)
			b.live.expect(t, "offline d1 2 disconnect")
		})
	}
}

func TestBrokerCredentials(t *testing.T) {
	b := startMQTTBroker(t, func(c *BrokerConfig) {
		c.Authenticate = func(u, p string) bool { return p == "secret-"+u }
	})
	addr := b.Addr().String()
	refused := []struct {
		name string
		opts func(*paho.ClientOptions)
	}{
		{"bad password", func(o *paho.ClientOptions) { o.SetUsername("d1").SetPassword("wrong") }},
		{"no credentials", nil},
		{"invalid device id", func(o *paho.ClientOptions) { o.SetUsername("d 1").SetPassword("secret-d 1") }},
		{"will of another device", func(o *paho.ClientOptions) {
			o.SetUsername("d1").SetPassword("secret-d1").SetWill("devices/d2/status", "offline", 1, false)
		}},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := dialMQTT(t, addr, tt.opts); err == nil {
				t.Fatal("connection accepted")
			}
		})
	}
	b.live.none(t)

	c := mustDialMQTT(t, addr, func(o *paho.ClientOptions) { o.SetUsername("d1").SetPassword("secret-d1") })
	b.live.expect(t, "online d1 1 connect")
	answers := c.subscribe(t, "devices/d1/errors")
	forbidden := []string{"devices/d2/telemetry", "devices/bad id/telemetry", "plant/line1"}
	for _, topic := range forbidden {
		t.Run("publish "+topic, func(t *testing.T) {
			c.publish(t, topic, 1, `{"temp":1}`)
			if rej := b.bridge.nextReject(t); rej.code != bridge.CodeForbidden || rej.in.Device != "d1" {
				t.Fatalf("rejection %+v", rej)
			}
			if a := nextAnswer(t, answers); a.Code != bridge.CodeForbidden || a.Topic != topic {
				t.Fatalf("answer %+v", a)
			}
			b.bridge.noWrite(t)
		})
	}
	t.Run("subscribe elsewhere", func(t *testing.T) {
		tok := c.Subscribe("devices/d2/#", 1, nil)
		if !tok.WaitTimeout(waitGuard) {
			t.Fatal("no SUBACK")
		}
		if qos := tok.(*paho.SubscribeToken).Result()["devices/d2/#"]; qos != 0x80 {
			t.Fatalf("subscription granted with %#x", qos)
		}
	})
	c.publish(t, "devices/d1/telemetry", 1, `{"temp":1}`)
	if w := b.bridge.nextWrite(t); w.in.Device != "d1" {
		t.Fatalf("write %+v", w.in)
	}
	if !c.IsConnectionOpen() {
		t.Fatal("client disconnected")
	}
	c.Disconnect(250)
	b.live.expect(t, "offline d1 1 disconnect")
}

func TestBrokerPingCountsAsHeard(t *testing.T) {
	b := startMQTTBroker(t, func(c *BrokerConfig) {
		c.Authenticate = func(string, string) bool { return true }
	})
	mustDialMQTT(t, b.Addr().String(), func(o *paho.ClientOptions) {
		o.SetUsername("d1").SetPassword("x").SetKeepAlive(2 * time.Second)
	})
	b.live.expect(t, "online d1 1 connect")
	deadline := time.Now().Add(waitGuard)
	for b.live.heardCount("d1") == 0 { // only PINGREQs are sent
		if time.Now().After(deadline) {
			t.Fatal("PINGREQ not counted as heard")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestBrokerShutdownReleasesWaitingPublish(t *testing.T) {
	b := startMQTTBroker(t, nil)
	c := mustDialMQTT(t, b.Addr().String(), nil)
	b.bridge.setHold()
	tok := c.Publish("devices/d1/telemetry", 1, false, `{"temp":1}`)
	b.bridge.nextWrite(t)
	closed := make(chan error, 1)
	go func() { closed <- b.Shutdown(context.Background()) }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(waitGuard):
		t.Fatal("Close hangs on a publish waiting for its commit")
	}
	b.bridge.release() // the late commit must not block or panic
	if tok.WaitTimeout(50*time.Millisecond) && tok.Error() == nil {
		t.Fatal("publish acknowledged though its wait was abandoned")
	}
}

func TestBrokerShutdownWithSilentConnection(t *testing.T) {
	b := startMQTTBroker(t, nil)
	conn, err := net.Dial("tcp", b.Addr().String()) // never sends CONNECT
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	closed := make(chan error, 1)
	go func() { closed <- b.Shutdown(context.Background()) }()
	select {
	case <-closed:
	case <-time.After(waitGuard):
		t.Fatal("Close hangs on a connection that never sent CONNECT")
	}
}

func TestBrokerConnectTimeout(t *testing.T) {
	b := startMQTTBroker(t, func(c *BrokerConfig) { c.ConnectTimeout = 50 * time.Millisecond })
	conn, err := net.Dial("tcp", b.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(waitGuard))
	if _, err := conn.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("silent connection not closed by the broker: %v", err)
	}
}

func TestBrokerTLS(t *testing.T) {
	cert := testcert.New(t)
	serverTLS, clientTLS := cert.Server, cert.Client
	b := startMQTTBroker(t, func(c *BrokerConfig) { c.TLS = serverTLS })
	c := paho.NewClient(paho.NewClientOptions().AddBroker("ssl://" + b.Addr().String()).
		SetClientID("tls-device").SetTLSConfig(clientTLS).SetAutoReconnect(false).SetConnectTimeout(waitGuard))
	if tok := c.Connect(); !tok.WaitTimeout(waitGuard) || tok.Error() != nil {
		t.Fatalf("connect over TLS: %v", tok.Error())
	}
	defer c.Disconnect(50)
	if tok := c.Publish("devices/d1/telemetry", 1, false, `{"temp":1}`); !tok.WaitTimeout(waitGuard) || tok.Error() != nil {
		t.Fatalf("publish over TLS: %v", tok.Error())
	}
	b.bridge.nextWrite(t)
	// A plain-TCP client gets no MQTT session from the TLS listener.
	if _, err := dialMQTT(t, b.Addr().String(), func(o *paho.ClientOptions) { o.SetConnectTimeout(time.Second) }); err == nil {
		t.Fatal("plain connection accepted by the TLS listener")
	}
}

func TestBrokerWithPresence(t *testing.T) {
	live, events := newTestPresence(t, time.Minute)
	b := startMQTTBroker(t, func(c *BrokerConfig) {
		c.Presence = live
		c.Authenticate = func(u, p string) bool { return p == "token-"+u }
	})
	opts := func(o *paho.ClientOptions) {
		o.SetUsername("d1").SetPassword("token-d1").SetWill("devices/d1/status", "offline", 1, false)
	}
	c := mustDialMQTT(t, b.Addr().String(), opts)
	events.expect(t, "d1 online=true mqtt session=1 connect")
	c.publish(t, "devices/d1/telemetry", 1, `{"temp":1}`)
	c.drop()
	events.expect(t, "d1 online=false mqtt session=1 will")
	c = mustDialMQTT(t, b.Addr().String(), opts)
	events.expect(t, "d1 online=true mqtt session=2 connect")
	c.Disconnect(250)
	events.expect(t, "d1 online=false mqtt session=2 disconnect")
	if _, online, transport, ok := live.LastSeen("d1"); !ok || online || transport != "mqtt" {
		t.Fatalf("LastSeen: online %v transport %q known %v", online, transport, ok)
	}
}

// ---------------------------------------------------------------------------
// Hook units: states reached only by timing, driven directly.

// mqttHookHarness drives a brokerHook without the network.
func newMQTTHookHarness(t testing.TB, auth func(string, string) bool) (*brokerHook, *mqtt.Server, *fakeBridge, *fakePresence) {
	t.Helper()
	fb, fl := &fakeBridge{}, newFakePresence()
	cfg, err := BrokerConfig{Bridge: fb, Presence: fl, Authenticate: auth, Logger: mqttDiscardLogger()}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	server := mqtt.New(&mqtt.Options{InlineClient: true, Logger: cfg.Logger})
	closing := make(chan struct{})
	t.Cleanup(func() { close(closing) })
	return newBrokerHook(cfg, server, closing, cfg.Logger), server, fb, fl
}

func mqttHookClient(server *mqtt.Server, id, username string) *mqtt.Client {
	cl := server.NewClient(nil, "test", id, false)
	cl.Properties.Username = []byte(username)
	cl.Properties.ProtocolVersion = 4
	return cl
}

func mqttPublishPacket(topic string, qos byte, payload string) packets.Packet {
	return packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos},
		TopicName:   topic, Payload: []byte(payload), PacketID: 1,
	}
}

func TestBrokerHookRevivesTimedOutSession(t *testing.T) {
	h, server, _, fl := newMQTTHookHarness(t, func(string, string) bool { return true })
	cl := mqttHookClient(server, "c1", "d1")
	h.OnSessionEstablished(cl, packets.Packet{})
	fl.expect(t, "online d1 1 connect")
	v, _ := h.conns.Load(cl)
	c := v.(*mqttConn)

	fl.timeout("d1") // the device timed out while its connection was quiet
	fl.expect(t, "offline d1 1 timeout")
	c.lastHeard = time.Now().Add(-2 * mqttRecheck)
	_, _ = h.OnPacketRead(cl, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}})
	fl.expect(t, "online d1 2 message")
	h.OnDisconnect(cl, io.EOF, false)
	fl.expect(t, "offline d1 2 disconnect")
}

func TestBrokerHookYieldsToNewerSession(t *testing.T) {
	h, server, _, fl := newMQTTHookHarness(t, func(string, string) bool { return true })
	cl := mqttHookClient(server, "c1", "d1")
	h.OnSessionEstablished(cl, packets.Packet{})
	fl.expect(t, "online d1 1 connect")
	fl.Connect("d1", "ws", bridge.ReasonConnect) // the device reconnected over WebSocket
	fl.expect(t, "online d1 2 connect")
	v, _ := h.conns.Load(cl)
	v.(*mqttConn).lastHeard = time.Now().Add(-2 * mqttRecheck)
	_, _ = h.OnPacketRead(cl, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}})
	h.OnDisconnect(cl, io.EOF, false)
	fl.none(t) // the MQTT connection no longer spoke for the device
}

// A connection taken over before its own OnSessionEstablished ran (its
// goroutine was late after the CONNACK) takes no presence session: its
// successor's stays the device's current one.
func TestBrokerHookTakenOverBeforeEstablished(t *testing.T) {
	h, server, _, fl := newMQTTHookHarness(t, func(string, string) bool { return true })
	late, next := mqttHookClient(server, "c1", "d1"), mqttHookClient(server, "c1", "d1")
	h.OnSessionEstablish(late, packets.Packet{})
	h.OnSessionEstablish(next, packets.Packet{})
	late.Stop(packets.ErrSessionTakenOver) // what mochi does to the connection next replaces
	h.OnSessionEstablished(next, packets.Packet{})
	fl.expect(t, "online d1 1 connect")
	h.OnSessionEstablished(late, packets.Packet{})
	h.OnDisconnect(late, packets.ErrSessionTakenOver, false)
	fl.none(t)
	if _, ok := h.conns.Load(late); ok {
		t.Fatal("the stopped connection was registered")
	}
	h.OnDisconnect(next, io.EOF, false)
	fl.expect(t, "offline d1 1 disconnect")
}

func TestBrokerHookDelayedWill(t *testing.T) {
	h, server, _, fl := newMQTTHookHarness(t, nil)
	cl := mqttHookClient(server, "c1", "")
	cl.Properties.Will = mqtt.Will{TopicName: "devices/d1/status", Payload: []byte("offline"),
		Flag: 1, WillDelayInterval: 30}
	h.OnSessionEstablished(cl, packets.Packet{})
	if _, err := h.OnPublish(cl, mqttPublishPacket("devices/d1/telemetry", 0, `{"t":1}`)); err != nil {
		t.Fatal(err)
	}
	fl.expect(t, "online d1 1 message")
	h.OnDisconnect(cl, io.EOF, false)
	fl.none(t) // the will decides, later
	h.OnWillSent(cl, packets.Packet{TopicName: "devices/d1/status", Payload: []byte("offline")})
	fl.expect(t, "offline d1 1 will")
}

func TestBrokerHookWillOtherForms(t *testing.T) {
	h, server, fb, fl := newMQTTHookHarness(t, nil)
	cl := mqttHookClient(server, "c1", "")
	h.OnSessionEstablished(cl, packets.Packet{})
	h.OnWillSent(cl, packets.Packet{TopicName: "devices/d1/telemetry/temp", Payload: []byte("3")})
	if w := fb.nextWrite(t); w.in.Device != "d1" || len(w.p.Readings) != 1 {
		t.Fatalf("will not ingested: %+v", w)
	}
	h.OnWillSent(cl, packets.Packet{TopicName: "devices/d1/status", Payload: []byte("online")})
	h.OnWillSent(cl, packets.Packet{TopicName: "devices/d1/status", Payload: []byte("gone")})
	if rej := fb.nextReject(t); rej.code != bridge.CodeBadRequest {
		t.Fatalf("rejection %+v", rej)
	}
	fl.none(t) // a will is no sign of life
}

func TestBrokerHookCountsDrops(t *testing.T) {
	h, server, _, _ := newMQTTHookHarness(t, nil)
	before := testutil.ToFloat64(h.dropped)
	h.OnPublishDropped(mqttHookClient(server, "c1", ""), packets.Packet{})
	if got := testutil.ToFloat64(h.dropped) - before; got != 1 {
		t.Fatalf("dropped counted %v", got)
	}
}

// ---------------------------------------------------------------------------
// Routing.

func TestRouteMQTT(t *testing.T) {
	tests := []struct {
		topic, payload string
		kind           mqttTopicKind
		device, metric string
		code           string // "" when valid
	}{
		{"plant/line1", "x", mqttForeign, "", "", ""},
		{"devices", "x", mqttForeign, "", "", ""},
		{"devices/d1/telemetry", `{"t":1}`, mqttTelemetry, "d1", "", ""},
		{"devices/d1/telemetry/temp", `1`, mqttMetric, "d1", "temp", ""},
		{"devices/d1/heartbeat", ``, mqttHeartbeat, "d1", "", ""},
		{"devices/d1/status", `online`, mqttStatus, "d1", "", ""},
		{"devices/d1/status", `offline`, mqttStatus, "d1", "", ""},
		{"devices/d1/errors", `{}`, mqttAnswer, "d1", "", ""},
		{"devices/d1/status", `Online`, mqttStatus, "d1", "", bridge.CodeBadRequest},
		{"devices/d1/telemetry/", `1`, mqttInvalid, "d1", "", bridge.CodeBadRequest},
		{"devices/d1/telemetry/+", `1`, mqttInvalid, "d1", "", bridge.CodeBadRequest},
		{"devices/d1/other", `1`, mqttInvalid, "d1", "", bridge.CodeBadRequest},
		{"devices/d1/telemetry/x/y", `1`, mqttInvalid, "d1", "", bridge.CodeBadRequest},
		{"devices/d+/telemetry", `{"t":1}`, mqttInvalid, "", "", bridge.CodeBadRequest},
		{"devices/#", `{"t":1}`, mqttInvalid, "", "", bridge.CodeBadRequest},
		{"devices/d1/telemetry", strings.Repeat(" ", 101), mqttTelemetry, "d1", "", bridge.CodePayloadTooLarge},
		{"devices/d1/heartbeat", strings.Repeat(" ", 100), mqttHeartbeat, "d1", "", ""},
		{"devices/d1/commands/00000000000000aa/result", `{"status":"ok"}`, mqttCommandResult, "d1", "", ""},
		{"devices/d1/commands/00000000000000aa/result", `{"status":`, mqttCommandResult, "d1", "", bridge.CodeBadRequest},
		{"devices/d1/commands/00000000000000aa/ack", ``, mqttCommandAck, "d1", "", ""},
		{"devices/d1/commands/00000000000000aa/ack", strings.Repeat(" ", 101), mqttCommandAck, "d1", "", bridge.CodePayloadTooLarge},
		{"devices/d1/commands//ack", ``, mqttInvalid, "d1", "", bridge.CodeBadRequest},
		{"devices/d1/commands/x/nak", ``, mqttInvalid, "d1", "", bridge.CodeBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.topic+" "+tt.payload, func(t *testing.T) {
			r, err := routeMQTT(tt.topic, []byte(tt.payload), 100)
			if r.kind != tt.kind || r.device != tt.device || r.metric != tt.metric {
				t.Fatalf("route %+v, want kind %d device %q metric %q", r, tt.kind, tt.device, tt.metric)
			}
			code := ""
			var be *bridge.Error
			if errors.As(err, &be) {
				code = be.Code
			} else if err != nil {
				t.Fatalf("error %v is no *bridge.Error", err)
			}
			if code != tt.code {
				t.Fatalf("error %v, want code %q", err, tt.code)
			}
		})
	}
}

func FuzzRouteMQTT(f *testing.F) {
	f.Add("devices/d1/telemetry", []byte(`{"temp":21.5,"seq":3}`))
	f.Add("devices/d1/telemetry/temp", []byte(`21.5`))
	f.Add("devices/d1/status", []byte(`offline`))
	f.Add("devices/d1/heartbeat", []byte(``))
	f.Add("devices/d1/commands/0000000000000001/ack", []byte(``))
	f.Add("devices/d1/commands/0000000000000001/result", []byte(`{"status":"ok"}`))
	f.Add("devices/d1/telemetry", []byte(`[{"bn":"a.","n":"b","v":1}]`))
	f.Add("devices//", []byte(`x`))
	f.Add("devices/\xff/telemetry", []byte(`{}`))
	f.Fuzz(func(t *testing.T, name string, payload []byte) {
		r, err := routeMQTT(name, payload, 1024)
		if err != nil {
			var be *bridge.Error
			if !errors.As(err, &be) || be.Code == "" || be.Message == "" {
				t.Fatalf("error %v is no complete *bridge.Error", err)
			}
		}
		if r.device != "" && topic.ValidDeviceID(r.device) != nil {
			t.Fatalf("route names invalid device %q", r.device)
		}
		if r.kind == mqttForeign && strings.HasPrefix(name, "devices/") {
			t.Fatalf("device topic %q routed as foreign", name)
		}
		if err == nil && r.kind >= mqttTelemetry && r.device == "" {
			t.Fatalf("valid route %+v without device", r)
		}
		if err == nil && (r.kind == mqttCommandAck || r.kind == mqttCommandResult) && (r.answer.ID == "" || r.answer.ID != r.commandID) {
			t.Fatalf("answer route %+v without its command id", r)
		}
		if err == nil && r.stores() && len(r.payload.Readings) == 0 {
			t.Fatalf("telemetry route %+v without readings", r)
		}
		if err == nil && len(payload) > 1024 && r.kind != mqttForeign && r.kind != mqttAnswer {
			t.Fatalf("payload of %d bytes accepted", len(payload))
		}
	})
}

// ---------------------------------------------------------------------------
// Benchmarks.

func BenchmarkRouteMQTT(b *testing.B) {
	payload := []byte(`{"temp":21.5,"hum":40,"seq":42}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := routeMQTT("devices/pump-7/telemetry", payload, DefaultMaxPayload); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBrokerHookPublish(b *testing.B) {
	for _, qos := range []byte{0, 1} {
		b.Run(fmt.Sprintf("qos%d", qos), func(b *testing.B) {
			h, server, fb, _ := newMQTTHookHarness(b, nil)
			fb.discard = true
			cl := mqttHookClient(server, "c1", "")
			h.OnSessionEstablished(cl, packets.Packet{})
			pk := mqttPublishPacket("devices/pump-7/telemetry", qos, `{"temp":21.5,"hum":40}`)
			b.ReportAllocs()
			for b.Loop() {
				// QoS 1: mochi is told to answer nothing, the PUBACK
				// follows the commit (mqtt_acks.go).
				if _, err := h.OnPublish(cl, pk); err != nil && (qos == 0 || !errors.Is(err, packets.ErrRejectPacket)) {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkBrokerHookPacketRead(b *testing.B) {
	h, server, _, _ := newMQTTHookHarness(b, func(string, string) bool { return true })
	cl := mqttHookClient(server, "c1", "d1")
	h.OnSessionEstablished(cl, packets.Packet{})
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}}
	b.ReportAllocs()
	for b.Loop() {
		_, _ = h.OnPacketRead(cl, pk)
	}
}

// mqttRawPacket encodes an MQTT 3.1.1 packet: type byte, remaining length,
// body.
func mqttRawPacket(typ byte, body []byte) []byte {
	b := []byte{typ}
	for n := len(body); ; {
		d := byte(n % 128)
		n /= 128
		if n > 0 {
			d |= 0x80
		}
		b = append(b, d)
		if n == 0 {
			break
		}
	}
	return append(b, body...)
}

func mqttRawString(s string) []byte { return append([]byte{byte(len(s) >> 8), byte(len(s))}, s...) }

// BenchmarkBrokerIngest measures device messages per second through the
// embedded broker: one raw TCP client writes pre-encoded PUBLISH packets
// in large writes; QoS 1 acks are read and discarded.
func BenchmarkBrokerIngest(b *testing.B) {
	for _, qos := range []byte{0, 1} {
		b.Run(fmt.Sprintf("qos%d", qos), func(b *testing.B) {
			cb := &countingBridge{done: make(chan struct{}), want: int64(b.N)}
			tb := startMQTTBroker(b, func(c *BrokerConfig) { c.Bridge = cb })
			conn, err := net.Dial("tcp", tb.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			connect := append(append(mqttRawString("MQTT"), 4, 0x02, 0, 60), mqttRawString("bench")...)
			if _, err := conn.Write(mqttRawPacket(0x10, connect)); err != nil {
				b.Fatal(err)
			}
			if _, err := io.ReadFull(conn, make([]byte, 4)); err != nil { // CONNACK
				b.Fatal(err)
			}
			go func() { _, _ = io.Copy(io.Discard, conn) }() // PUBACKs
			body := mqttRawString("devices/pump-7/telemetry")
			if qos == 1 {
				body = append(body, 0, 1) // packet id
			}
			pk := mqttRawPacket(0x30|qos<<1, append(body, `{"temp":21.5,"hum":40}`...))
			batch := bytesRepeat(pk, 256)
			b.SetBytes(int64(len(pk)))
			b.ResetTimer()
			for sent := 0; sent < b.N; sent += 256 {
				n := min(256, b.N-sent)
				if _, err := conn.Write(batch[:n*len(pk)]); err != nil {
					b.Fatal(err)
				}
			}
			select {
			case <-cb.done:
			case <-time.After(time.Minute):
				b.Fatalf("%d of %d messages ingested", cb.n.Load(), b.N)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msg/s")
		})
	}
}

func bytesRepeat(b []byte, n int) []byte {
	out := make([]byte, 0, len(b)*n)
	for range n {
		out = append(out, b...)
	}
	return out
}
