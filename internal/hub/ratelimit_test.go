package hub

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/telehub/telehub/internal/mosquittotest"
)

// Rate of the paced tests: 3*testRate messages take 2.5 s past the
// burst. The rate is low enough that a hub on a loaded machine still
// takes the messages several times faster when nothing slows it down.
const (
	testRate  = 20
	testBurst = 10
)

// requirePaced fails unless n messages, the first sent at start, took at
// least what the rate allows past the burst to be acknowledged. Only a
// lower bound is sure: a loaded machine takes longer, never shorter.
func requirePaced(t *testing.T, start time.Time, n int) {
	t.Helper()
	least := time.Duration(n-testBurst) * time.Second / testRate
	if took := time.Since(start); took < least {
		t.Fatalf("%d messages acknowledged in %v, want at least %v at %d/s with a burst of %d",
			n, took, least, testRate, testBurst)
	}
}

// throttled returns telehub_messages_throttled_total.
func throttled(t *testing.T, h *Hub) float64 {
	t.Helper()
	sum := 0.0
	for _, m := range scrape(t, h)["telehub_messages_throttled_total"].GetMetric() {
		sum += m.GetCounter().GetValue()
	}
	return sum
}

// storedInOrder fails unless device's readings are exactly 1..n, each
// once, in order of storage.
func storedInOrder(t *testing.T, h *Hub, device string, n int) {
	t.Helper()
	got := events(t, h, "telemetry/"+device+"/#")
	if len(got) != n {
		t.Fatalf("%d readings of %s stored, want %d", len(got), device, n)
	}
	for i, e := range got {
		if v := e.Data["value"]; v != float64(i+1) {
			t.Fatalf("reading %d of %s is %v, want %d", i, device, v, i+1)
		}
	}
}

// A WebSocket device sending three times its rate is slowed, not refused:
// every frame is acked and every reading stored once, in order.
func TestDeviceRateSlowsWebSocketDevice(t *testing.T) {
	cfg := testConfig(t)
	cfg.DeviceRate, cfg.DeviceBurst = testRate, testBurst
	h := startHub(t, cfg)
	d := dialDevice(t, h, "fast-ws")
	const n = 3 * testRate
	start := time.Now()
	sent := make(chan error, 1)
	go func() { // the answers are read below while this sends
		for seq := 1; seq <= n; seq++ {
			if err := d.conn.WriteString(fmt.Sprintf(`{"type":"telemetry","seq":%d,"values":{"n":%d}}`, seq, seq)); err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()
	for seq := 1; seq <= n; seq++ {
		if m := d.next(t); m["type"] != "ack" || m["seq"] != float64(seq) {
			t.Fatalf("answer %v, want the ack of seq %d", m, seq)
		}
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	requirePaced(t, start, n)
	storedInOrder(t, h, "fast-ws", n)
	if got := rejectedTotal(t, h); got != 0 {
		t.Fatalf("%v payloads rejected, want none", got)
	}
}

// An MQTT QoS 1 publisher over its rate is slowed too: every publish is
// acknowledged and stored once, in order.
func TestDeviceRateSlowsMQTTPublisher(t *testing.T) {
	cfg := testConfig(t)
	cfg.DeviceRate, cfg.DeviceBurst = testRate, testBurst
	h := startHub(t, cfg)
	c := mqttClient(t, h, "fast-mqtt-client", func(o *mqtt.ClientOptions) { o.SetMaxResumePubInFlight(1 << 16) })
	const n = 3 * testRate
	tokens := make([]mqtt.Token, 0, n)
	start := time.Now()
	for seq := 1; seq <= n; seq++ {
		tokens = append(tokens, c.Publish("devices/fast-mqtt/telemetry", 1, false, fmt.Sprintf(`{"seq":%d,"n":%d}`, seq, seq)))
	}
	for i, tok := range tokens {
		if !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %d not acknowledged: %v", i+1, tok.Error())
		}
	}
	requirePaced(t, start, n)
	storedInOrder(t, h, "fast-mqtt", n)
	if got := rejectedTotal(t, h); got != 0 {
		t.Fatalf("%v payloads rejected, want none", got)
	}
}

// A device waiting for its rate does not slow another device, and a hub
// shutting down ends the wait at once (goleak checks what is left).
func TestDeviceRateIsPerDeviceAndEndsOnShutdown(t *testing.T) {
	cfg := testConfig(t)
	cfg.DeviceRate, cfg.DeviceBurst = 0.001, 1 // a second message waits 1000 s
	h, err := New(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	slow := dialDevice(t, h, "slow")
	slow.send(t, `{"type":"telemetry","seq":1,"values":{"n":1}}`)
	if m := slow.next(t); m["type"] != "ack" {
		t.Fatalf("answer %v, want an ack", m)
	}
	slow.send(t, `{"type":"telemetry","seq":2,"values":{"n":2}}`)
	c := mqttClient(t, h, "slow-mqtt-client", nil)
	over := c.Publish("devices/slow-mqtt/telemetry", 1, false, `{"seq":1,"n":1}`)
	if !over.WaitTimeout(10*time.Second) || over.Error() != nil {
		t.Fatalf("first publish not acknowledged: %v", over.Error())
	}
	over = c.Publish("devices/slow-mqtt/telemetry", 1, false, `{"seq":2,"n":2}`)
	waitFor(t, "both devices to wait for their rate", func() bool { return throttled(t, h) == 2 })

	other := dialDevice(t, h, "other")
	other.send(t, `{"type":"telemetry","seq":1,"values":{"n":1}}`)
	if m := other.next(t); m["type"] != "ack" {
		t.Fatalf("answer %v to another device, want an ack", m)
	}
	publish(t, mqttClient(t, h, "other-mqtt-client", nil), "devices/other-mqtt/telemetry", 1, `{"seq":1,"n":1}`)
	select {
	case m := <-slow.in:
		t.Fatalf("the throttled device was answered %v before its rate allowed it", m)
	default:
	}
	if over.WaitTimeout(0) {
		t.Fatal("the throttled publish was acknowledged before its rate allowed it")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second) // far below the 1000 s wait
	defer cancel()
	if err := h.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown with throttled devices: %v", err)
	}
}

// Through an external broker the hub cannot slow one device down without
// stalling all: over the rate, readings with a seq are all stored, and one
// without seq is refused with rate_limited.
func TestDeviceRateThroughExternalBroker(t *testing.T) {
	broker := mosquittotest.Start(t, "")
	cfg := testConfig(t)
	cfg.MQTTAddr = ""
	cfg.MQTTBroker = "tcp://" + broker.Addr
	cfg.DeviceRate, cfg.DeviceBurst = 0.001, 1
	h := startHub(t, cfg)
	waitFor(t, "/readyz to report the broker connected", func() bool {
		return getJSON(t, h, "/readyz", nil) == http.StatusOK
	})
	o := mqtt.NewClientOptions().AddBroker("tcp://" + broker.Addr).SetClientID("ext-fast").SetAutoReconnect(false)
	device := mqtt.NewClient(o)
	if tok := device.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("device connect: %v", tok.Error())
	}
	t.Cleanup(func() { device.Disconnect(100) })
	answers := subscribe(t, device, "devices/ext-fast/errors")
	const n = 5
	for seq := 1; seq <= n; seq++ {
		publish(t, device, "devices/ext-fast/telemetry", 1, fmt.Sprintf(`{"seq":%d,"n":%d}`, seq, seq))
	}
	waitFor(t, "the readings with seq", func() bool { return len(events(t, h, "telemetry/ext-fast/#")) >= n })
	storedInOrder(t, h, "ext-fast", n)

	publish(t, device, "devices/ext-fast/telemetry", 1, `{"n":6}`)
	select {
	case m := <-answers:
		var ans struct{ Code, Topic string }
		if err := json.Unmarshal(m.Payload(), &ans); err != nil || ans.Code != "rate_limited" || ans.Topic != "devices/ext-fast/telemetry" {
			t.Fatalf("answer %s (%v), want code rate_limited", m.Payload(), err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no rate_limited answer")
	}
	storedInOrder(t, h, "ext-fast", n)
}
