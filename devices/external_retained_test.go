package devices

import (
	"context"
	"fmt"
	"testing"

	"github.com/telehub/telehub/internal/mosquittotest"
)

// retainedMessage is a message as a broker sends its stored retained copy.
type retainedMessage struct{ *mqttFakeMessage }

func (retainedMessage) Retained() bool { return true }

// The broker's retained copies of device messages are acknowledged and
// ignored; the cluster's retained messages still reach the cluster.
func TestExternalOnMessageIgnoresRetainedCopies(t *testing.T) {
	fb, fl, peers := &fakeBridge{}, newFakePresence(), &fakePeers{}
	e, err := NewExternal(ExternalConfig{URL: "tcp://127.0.0.1:1", ClientID: "hub", Bridge: fb, Presence: fl,
		Peers: peers, Logger: mqttDiscardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	for _, topic := range []string{"devices/d1/telemetry", "devices/d1/telemetry/temp", "devices/d1/heartbeat",
		"devices/d1/status", "devices/d1/commands/c1/result", "devices/d1/commands/c1/ack"} {
		m := &mqttFakeMessage{topic: topic, payload: []byte("offline"), qos: 1}
		e.onMessage(nil, retainedMessage{m})
		if got := ackedMessages(&e.acks); len(got) != 1 {
			t.Fatalf("%s: %d messages acknowledged, want 1", topic, len(got))
		}
	}
	fb.noWrite(t)
	fb.noReject(t)
	fl.none(t)
	e.onMessage(nil, retainedMessage{&mqttFakeMessage{topic: "telehub/c1/presence/n2", payload: []byte("offline"), qos: 1}})
	if _, msgs, _ := peers.state(); len(msgs) != 1 || msgs[0] != "telehub/c1/presence/n2 offline" {
		t.Fatalf("cluster messages %q, want the retained one", msgs)
	}
}

// A hub that connects to a broker holding retained device messages, and
// connects again, stores none of them and takes no device offline for a
// stale retained will; live messages go on as before.
func TestExternalRetainedCopiesAcrossRestarts(t *testing.T) {
	m := mosquittotest.Start(t, "")
	device := mustDialMQTT(t, m.Addr, nil)
	publishRetained(t, device, "devices/rw2/telemetry/x", "5")
	publishRetained(t, device, "devices/rw3/status", "offline") // a will from an earlier life

	fb, fl := &fakeBridge{}, newFakePresence()
	id := fmt.Sprintf("hub-%d", mqttClientSeq.Add(1))
	hub := startExternalWith(t, m, id, fb, fl)
	// Messages published after the subscription come after the copies
	// the broker sent for it: the first write and event are the live ones.
	device.publish(t, "devices/rw3/heartbeat", 1, "")
	fl.expect(t, "online rw3 1 message")
	device.publish(t, "devices/live/telemetry/x", 1, "1")
	if w := fb.nextWrite(t); w.in.Device != "live" {
		t.Fatalf("first write from %s, want the live reading", w.in.Device)
	}
	fl.expect(t, "online live 1 message")

	// The hub restarts on its persistent session and subscribes again: the
	// broker sends the retained copies once more.
	if err := hub.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	startExternalWith(t, m, id, fb, fl)
	device.publish(t, "devices/live2/heartbeat", 1, "")
	fl.expect(t, "online live2 1 message") // nothing for rw3 before it
	device.publish(t, "devices/live/telemetry/x", 1, "2")
	if w := fb.nextWrite(t); w.in.Device != "live" {
		t.Fatalf("write from %s after the restart, want the live reading", w.in.Device)
	}
	fb.noWrite(t)
	fl.none(t)
	if _, online := fl.Session("rw3"); !online {
		t.Fatal("rw3 taken offline by its retained will")
	}
}

// startExternalWith starts an External on m under client id with the
// given fakes, so that a test can restart the hub on the same session.
func startExternalWith(t *testing.T, m *mosquittotest.Broker, id string, fb *fakeBridge, fl *fakePresence) *External {
	t.Helper()
	e, _, _, _ := startExternal(t, m, func(c *ExternalConfig) { c.ClientID, c.Bridge, c.Presence = id, fb, fl })
	return e
}

// publishRetained publishes payload to topic at QoS 1 with the retain flag
// and waits for the PUBACK.
func publishRetained(t *testing.T, c *mqttTestClient, topic, payload string) {
	t.Helper()
	tok := c.Publish(topic, 1, true, payload)
	if !tok.WaitTimeout(waitGuard) || tok.Error() != nil {
		t.Fatalf("retained publish to %s: %v", topic, tok.Error())
	}
}
