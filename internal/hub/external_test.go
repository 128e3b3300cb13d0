package hub

import (
	"net/http"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/telehub/telehub/internal/mosquittotest"
)

// TestExternalBroker runs the hub against a real Mosquitto
// (--mqtt-broker): devices publish to Mosquitto, the hub stores their
// readings (a resend once, a reboot's reading again), and /readyz follows the broker connection.
func TestExternalBroker(t *testing.T) {
	broker := mosquittotest.Start(t, "")
	cfg := testConfig(t)
	cfg.MQTTAddr = ""
	cfg.MQTTBroker = "tcp://" + broker.Addr
	h := startHub(t, cfg)
	if h.MQTTAddr() != "" {
		t.Fatalf("embedded broker runs alongside the external one at %s", h.MQTTAddr())
	}
	waitFor(t, "/readyz to report the broker connected", func() bool {
		return getJSON(t, h, "/readyz", nil) == http.StatusOK
	})

	o := mqtt.NewClientOptions().AddBroker("tcp://" + broker.Addr).SetClientID("ext-device").
		SetAutoReconnect(false)
	device := mqtt.NewClient(o)
	if tok := device.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("device connect: %v", tok.Error())
	}
	t.Cleanup(func() { device.Disconnect(100) })
	for _, p := range []struct{ topic, payload string }{
		{"devices/ext1/telemetry", `{"temp":21.5,"seq":1}`},
		{"devices/ext1/telemetry", `{"temp":99,"seq":1}`},             // a resend: stored once
		{"devices/ext1/telemetry", `{"temp":22,"seq":1,"boot":"b2"}`}, // a reboot: a new epoch, stored
		{"devices/ext1/telemetry/rpm", "1200"},
	} {
		if tok := device.Publish(p.topic, 1, false, p.payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}
	var got []apiEvent
	waitFor(t, "the readings in the hub", func() bool {
		got = events(t, h, "telemetry/ext1/#")
		return len(got) >= 3
	})
	if len(got) != 3 || got[0].Data["value"] != 21.5 || got[1].Data["value"] != 22.0 || got[2].Data["value"] != 1200.0 {
		t.Fatalf("stored %+v, want temp 21.5 once, 22 after the reboot and rpm 1200", got)
	}

	// The broker goes away: not ready; it comes back: ready again.
	broker.Stop()
	waitFor(t, "/readyz to report the broker gone", func() bool {
		return getJSON(t, h, "/readyz", nil) == http.StatusServiceUnavailable
	})
	broker.Restart(t)
	waitFor(t, "/readyz after the broker restarted", func() bool {
		return getJSON(t, h, "/readyz", nil) == http.StatusOK
	})
}
