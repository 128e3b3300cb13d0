package hub

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/telehub/telehub/internal/config"
)

// A device over its rate limit gets rate_limited answers on both
// transports; what it sent within the limit is stored, the rest is not.
func TestDeviceRateLimit(t *testing.T) {
	cfg := testConfig(t)
	cfg.DeviceRate, cfg.DeviceBurst = 0.001, 3 // three messages, then none for the test's length
	h := startHub(t, cfg)

	d := dialDevice(t, h, "fast-ws")
	for seq := 1; seq <= 5; seq++ {
		d.send(t, fmt.Sprintf(`{"type":"telemetry","seq":%d,"values":{"n":%d}}`, seq, seq))
	}
	var acks, limited int
	for range 5 {
		switch m := d.next(t); {
		case m["type"] == "ack":
			acks++
		case m["type"] == "error" && m["code"] == "rate_limited":
			limited++
		default:
			t.Fatalf("unexpected answer %v", m)
		}
	}
	if acks != 3 || limited != 2 {
		t.Fatalf("%d acks and %d rate_limited errors, want 3 and 2", acks, limited)
	}
	if n := len(events(t, h, "telemetry/fast-ws/#")); n != 3 {
		t.Fatalf("%d readings stored, want 3", n)
	}

	c := mqttClient(t, h, "fast-mqtt-client", nil)
	answers := subscribe(t, c, "devices/fast-mqtt/errors")
	for i := range 3 {
		publish(t, c, "devices/fast-mqtt/telemetry", 1, fmt.Sprintf(`{"n":%d}`, i))
	}
	// Over the limit: answered, and left unacknowledged so that the device
	// resends it later instead of losing it.
	over := c.Publish("devices/fast-mqtt/telemetry", 1, false, `{"n":3}`)
	select {
	case m := <-answers:
		var ans struct{ Code, Topic string }
		if err := json.Unmarshal(m.Payload(), &ans); err != nil || ans.Code != "rate_limited" || ans.Topic != "devices/fast-mqtt/telemetry" {
			t.Fatalf("answer %s (%v), want code rate_limited", m.Payload(), err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no rate_limited answer")
	}
	if over.WaitTimeout(300 * time.Millisecond) {
		t.Fatal("a QoS 1 publish refused for the rate limit was acknowledged")
	}
	if n := len(events(t, h, "telemetry/fast-mqtt/#")); n != 3 {
		t.Fatalf("%d MQTT readings stored, want 3", n)
	}
	waitFor(t, "the rate_limited error events", func() bool {
		for _, e := range events(t, h, "errors/#") {
			if e.Data["code"] == "rate_limited" {
				return true
			}
		}
		return false
	})
}

// With the default configuration a flooding device is limited: past its
// burst, its messages are refused with rate_limited.
func TestDefaultDeviceRateLimitStopsAFlood(t *testing.T) {
	h := startHub(t, testConfig(t))
	d := dialDevice(t, h, "flood")
	const n = 3 * config.DefaultDeviceBurst // more than the burst and what a test's length refills
	sent := make(chan error, 1)
	go func() { // the answers are read below while this sends
		for seq := 1; seq <= n; seq++ {
			if err := d.conn.WriteString(fmt.Sprintf(`{"type":"telemetry","seq":%d,"values":{"n":1}}`, seq)); err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()
	var acks, limited int
	for range n {
		switch m := d.next(t); {
		case m["type"] == "ack":
			acks++
		case m["type"] == "error" && m["code"] == "rate_limited":
			limited++
		default:
			t.Fatalf("unexpected answer %v", m)
		}
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	if limited == 0 || acks < config.DefaultDeviceBurst {
		t.Fatalf("%d acks and %d rate_limited errors, want at least %d acks and some refusals", acks, limited, config.DefaultDeviceBurst)
	}
}
