package devices

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestBrokerLimitsDefaultsAndRejections(t *testing.T) {
	l, err := BrokerLimits{}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	want := BrokerLimits{
		MaxClients: DefaultMQTTMaxClients, MaxClientsPerAddress: DefaultMQTTMaxClientsPerAddress, MaxSessions: DefaultMQTTMaxSessions,
		SessionExpiry: DefaultMQTTSessionExpiry, MaxQueued: DefaultMQTTMaxQueued,
		MaxQueuedBytes: DefaultMQTTMaxQueuedBytes, MaxQueuedBytesTotal: DefaultMQTTMaxQueuedBytesTotal,
		MaxSubscriptions: DefaultMQTTMaxSubscriptions, MaxRetained: DefaultMQTTMaxRetained,
		MaxRetainedPerDevice: DefaultMQTTMaxRetainedPerDevice, MaxRetainedBytes: DefaultMQTTMaxRetainedBytes,
		ReceiveMaximum: DefaultMQTTReceiveMaximum,
	}
	if l != want {
		t.Fatalf("defaults %+v, want %+v", l, want)
	}
	bad := map[string]BrokerLimits{
		"negative clients":     {MaxClients: -1},
		"negative per address": {MaxClientsPerAddress: -1},
		"negative expiry":      {SessionExpiry: -time.Second},
		"negative retained":    {MaxRetainedBytes: -1},
		"queued over ids":      {MaxQueued: 1 << 16},
		"negative receive max": {ReceiveMaximum: -1},
		"receive max over ids": {ReceiveMaximum: 1 << 16},
		"expiry over uint32":   {SessionExpiry: (1 << 32) * time.Second},
	}
	for name, l := range bad {
		t.Run(name, func(t *testing.T) {
			cfg := BrokerConfig{Bridge: &fakeBridge{}, Presence: newFakePresence(), Limits: l}
			if _, err := NewBroker(cfg); !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("NewBroker: %v", err)
			}
		})
	}
}

// persistentSubscriber connects a raw MQTT 3.1.1 client with clean
// session off, subscribes it to filter at QoS 1 and disconnects it.
func persistentSubscriber(t *testing.T, b *mqttTestBroker, id, filter string) {
	t.Helper()
	c, _ := dialRaw(t, b.Addr().String(), rawConnect{version: 4, id: id})
	c.subscribe(1, filter)
	if ack := c.nextOf(packets.Suback); ack.ReasonCodes[0] != 1 {
		t.Fatalf("SUBACK %v", ack.ReasonCodes)
	}
	c.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}})
	c.closed()
}

// queued returns how many messages the session of client id holds.
func (b *mqttTestBroker) queued(t *testing.T, id string) int {
	t.Helper()
	cl, ok := b.server.Clients.Get(id)
	if !ok {
		t.Fatalf("no session %q", id)
	}
	return cl.State.Inflight.Len()
}

func (b *mqttTestBroker) dropped() float64 { return testutil.ToFloat64(b.m.MQTTDropped) }

// settled waits until n messages were queued for sessions ids or dropped:
// mochi acknowledges a publish before it delivers it.
func (b *mqttTestBroker) settled(t *testing.T, n int, ids ...string) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d messages queued or dropped", n), func() bool {
		got := int(b.dropped())
		for _, id := range ids {
			got += b.queued(t, id)
		}
		return got == n
	})
}

func TestBrokerQueuedLimits(t *testing.T) {
	const topic = "devices/d1/telemetry/text" // 25 bytes
	payload := strings.Repeat("x", 295)       // 320 bytes a message
	tests := []struct {
		name   string
		limits BrokerLimits
		want   int
	}{
		{"messages", BrokerLimits{MaxQueued: 5}, 5},
		// A session takes messages while it holds less than the limit.
		{"bytes", BrokerLimits{MaxQueuedBytes: 1000}, 4},
		{"bytes of all sessions", BrokerLimits{MaxQueuedBytesTotal: 2000}, 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := startMQTTBroker(t, func(c *BrokerConfig) { c.Limits = tt.limits })
			persistentSubscriber(t, b, "s1", topic)
			persistentSubscriber(t, b, "s2", topic)
			pub := mustDialMQTT(t, b.Addr().String(), nil)
			const sent = 8
			for range sent {
				pub.publish(t, topic, 1, payload)
			}
			b.settled(t, 2*sent, "s1", "s2")
			got := b.queued(t, "s1") + b.queued(t, "s2")
			want, over := 2*tt.want, 0
			if tt.name == "bytes of all sessions" {
				// A session's last message counts in the total from its
				// next delivery on: the total may pass the limit by one
				// message a session.
				want, over = tt.want, 2
			}
			if got < want || got > want+over {
				t.Fatalf("sessions hold %d messages, want %d (up to %d more)", got, want, over)
			}
			if d := b.dropped(); d != float64(2*sent-got) {
				t.Fatalf("dropped %v, want %d", d, 2*sent-got)
			}
		})
	}
}

// A session that expires takes its subscriptions and messages with it.
func TestBrokerSessionExpiry(t *testing.T) {
	b := startMQTTBroker(t, func(c *BrokerConfig) { c.Limits.SessionExpiry = time.Second })
	v5, ack := dialRaw(t, b.Addr().String(), rawConnect{version: 5, id: "v5", clean: true,
		props: packets.Properties{SessionExpiryInterval: 1 << 30, SessionExpiryIntervalFlag: true}})
	if !ack.Properties.SessionExpiryIntervalFlag || ack.Properties.SessionExpiryInterval != 1 {
		t.Fatalf("CONNACK session expiry %d, want the limit of 1 s", ack.Properties.SessionExpiryInterval)
	}
	_ = v5.conn.Close()

	persistentSubscriber(t, b, "s1", "devices/d1/telemetry")
	mustDialMQTT(t, b.Addr().String(), nil).publish(t, "devices/d1/telemetry", 1, `{"temp":1}`)
	deadline := time.Now().Add(waitGuard)
	for {
		_, kept := b.server.Clients.Get("s1")
		subs := b.server.Topics.Subscribers("devices/d1/telemetry").Subscriptions
		if !kept && len(subs) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("session kept %v, subscribers %d", kept, len(subs))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if d := b.dropped(); d != 1 {
		t.Fatalf("dropped %v, want the 1 queued message", d)
	}
}

func TestBrokerSubscriptionLimit(t *testing.T) {
	b := startMQTTBroker(t, func(c *BrokerConfig) { c.Limits.MaxSubscriptions = 2 })
	for _, v := range []byte{4, 5} {
		t.Run(fmt.Sprint("mqtt ", v), func(t *testing.T) {
			c, _ := dialRaw(t, b.Addr().String(), rawConnect{version: v, id: fmt.Sprint("subs", v), clean: true})
			c.subscribe(3, "a/1", "a/2", "a/3")
			refused := map[byte]byte{4: 0x80, 5: packets.ErrQuotaExceeded.Code}[v]
			if ack := c.nextOf(packets.Suback); ack.PacketID != 3 || fmt.Sprint(ack.ReasonCodes) != fmt.Sprint([]byte{1, 1, refused}) {
				t.Fatalf("SUBACK id %d codes %v", ack.PacketID, ack.ReasonCodes)
			}
			c.subscribe(4, "a/2", "a/4") // a filter held again counts once
			if ack := c.nextOf(packets.Suback); fmt.Sprint(ack.ReasonCodes) != fmt.Sprint([]byte{1, refused}) {
				t.Fatalf("SUBACK codes %v", ack.ReasonCodes)
			}
		})
	}
}

func TestBrokerRetainedLimits(t *testing.T) {
	b := startMQTTBroker(t, func(c *BrokerConfig) {
		c.Limits = BrokerLimits{MaxRetained: 4, MaxRetainedPerDevice: 2, MaxRetainedBytes: 200}
	})
	c := mustDialMQTT(t, b.Addr().String(), nil)
	retain := func(topic, payload string) {
		t.Helper()
		tok := c.Publish(topic, 1, true, payload)
		if !tok.WaitTimeout(waitGuard) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}
	retained := func() int { return b.server.Topics.Retained.Len() - len(b.server.Topics.Messages("$SYS/#")) }
	steps := []struct {
		topic, payload string
		want           int // retained messages after
	}{
		{"devices/d1/telemetry/a", "1", 1},
		{"devices/d1/telemetry/b", "2", 2},
		{"devices/d1/telemetry/c", "3", 2}, // per device
		{"devices/d1/telemetry/a", "4", 2}, // replaces
		{"plant/1", "x", 3},
		{"plant/2", strings.Repeat("x", 150), 3}, // bytes
		{"plant/3", "x", 4},
		{"plant/4", "x", 4}, // in total
		{"plant/3", "", 3},  // cleared
		{"plant/4", "x", 4},
	}
	for i, s := range steps {
		retain(s.topic, s.payload)
		if got := retained(); got != s.want {
			t.Fatalf("step %d (%s): %d retained, want %d", i, s.topic, got, s.want)
		}
	}
	for range 4 { // every reading is stored, retained or not
		b.bridge.nextWrite(t)
	}
	if d := b.dropped(); d != 3 {
		t.Fatalf("dropped %v, want 3 retains refused", d)
	}
}

func TestBrokerClientAndSessionLimits(t *testing.T) {
	t.Run("clients", func(t *testing.T) {
		b := startMQTTBroker(t, func(c *BrokerConfig) { c.Limits.MaxClients = 1 })
		mustDialMQTT(t, b.Addr().String(), nil)
		if _, err := dialMQTT(t, b.Addr().String(), nil); err == nil {
			t.Fatal("second client accepted")
		}
	})
	t.Run("sessions", func(t *testing.T) {
		b := startMQTTBroker(t, func(c *BrokerConfig) { c.Limits.MaxSessions = 2 })
		persistentSubscriber(t, b, "s1", "devices/d1/telemetry")
		pub := mustDialMQTT(t, b.Addr().String(), nil)
		pub.publish(t, "devices/d1/telemetry", 1, `{"temp":1}`)
		b.settled(t, 1, "s1")
		pub.Disconnect(250)
		waitFor(t, "the publisher's session gone", func() bool { return b.server.Clients.Len() == 2 })
		persistentSubscriber(t, b, "s2", "devices/d1/telemetry")
		persistentSubscriber(t, b, "s3", "devices/d1/telemetry")
		if _, kept := b.server.Clients.Get("s1"); kept {
			t.Fatal("oldest session kept past the limit")
		}
		b.queued(t, "s2")
		b.queued(t, "s3")
		if d := b.dropped(); d != 1 {
			t.Fatalf("dropped %v, want s1's queued message", d)
		}
	})
}

// Deliveries to a subscriber that never reads stop at its session's
// limit, and are counted as dropped.
func TestBrokerNeverReadingSubscriber(t *testing.T) {
	b := startMQTTBroker(t, func(c *BrokerConfig) { c.Limits.MaxQueued = 10 })
	c, _ := dialRaw(t, b.Addr().String(), rawConnect{version: 4, id: "sink", clean: true})
	c.subscribe(1, "devices/#")
	c.nextOf(packets.Suback) // and never reads again
	pub := mustDialMQTT(t, b.Addr().String(), func(o *paho.ClientOptions) { o.SetClientID("pub") })
	for range 30 {
		pub.publish(t, "devices/d1/telemetry", 1, `{"temp":1}`)
	}
	b.settled(t, 30, "sink")
	if n := b.queued(t, "sink"); n != 10 {
		t.Fatalf("session holds %d, want 10", n)
	}
	if d := b.dropped(); d != 20 {
		t.Fatalf("dropped %v, want 20", d)
	}
}

// A will that would pass the retained limits is published unretained.
func TestBrokerHookWillRetainLimit(t *testing.T) {
	h, server, _, _ := newMQTTHookHarness(t, nil)
	h.retained = newMQTTRetained(BrokerLimits{MaxRetained: 1, MaxRetainedPerDevice: 1, MaxRetainedBytes: 1 << 10})
	h.retained.set("devices/d1/status", "d1", 20)
	cl := mqttHookClient(server, "c1", "")
	before := testutil.ToFloat64(h.dropped)
	tests := []struct {
		topic  string
		retain bool
	}{
		{"devices/d1/status", true}, // replaces the one retained
		{"devices/d2/status", false},
	}
	for _, tt := range tests {
		will, err := h.OnWill(cl, mqtt.Will{TopicName: tt.topic, Payload: []byte("offline"), Retain: true})
		if err != nil || will.Retain != tt.retain {
			t.Fatalf("%s: retain %v, err %v; want retain %v", tt.topic, will.Retain, err, tt.retain)
		}
	}
	if d := testutil.ToFloat64(h.dropped) - before; d != 1 {
		t.Fatalf("dropped %v, want 1", d)
	}
}

// BenchmarkBrokerHookDeliver measures the check of each delivery to a
// subscriber against its session's limits.
func BenchmarkBrokerHookDeliver(b *testing.B) {
	h, server, _, _ := newMQTTHookHarness(b, nil)
	cl := mqttHookClient(server, "sub", "")
	for i := range 20 { // a subscriber with messages in flight
		cl.State.Inflight.Set(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1},
			TopicName: "devices/d1/telemetry", PacketID: uint16(i + 1), Payload: []byte("{}")})
	}
	b.ReportAllocs()
	for b.Loop() {
		if !h.OnACLCheck(cl, "devices/d1/telemetry", false) {
			b.Fatal("delivery refused")
		}
	}
}
