package hub

import (
	"fmt"
	"net"
	"net/http"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/telehub/telehub/internal/mosquittotest"
)

// TestClusterDeviceMovesBeforeForward: hub A acknowledges seq 1..7 of a
// WebSocket device but cannot forward them (its broker address refuses
// connections) and stops; the device moves to hub B and sends 8..20; A
// returns on the real broker and forwards 1..7 from its outbox. B then
// holds every seq 1..20 exactly once.
func TestClusterDeviceMovesBeforeForward(t *testing.T) {
	broker := mosquittotest.Start(t, "")
	b := clusterHub(t, broker.Addr, "hub-b")

	cfgA := testConfig(t)
	cfgA.MQTTAddr = ""
	cfgA.MQTTBroker = "tcp://" + refusedAddr(t)
	cfgA.Cluster, cfgA.NodeID = "c1", "hub-a"
	a := startHub(t, cfgA)
	sendSeqs(t, dialDevice(t, a, "ws3"), 1, 7)
	if n := testutil.ToFloat64(a.metrics.Cluster.Forwarded.WithLabelValues("telemetry")); n != 0 {
		t.Fatalf("hub A forwarded %v readings without a broker", n)
	}
	stopHub(t, a)

	sendSeqs(t, dialDevice(t, b, "ws3"), 8, 20)

	cfgA.MQTTBroker = "tcp://" + broker.Addr
	a = startHub(t, cfgA)
	waitFor(t, "hub A to forward its 7 readings", func() bool {
		return testutil.ToFloat64(a.metrics.Cluster.Forwarded.WithLabelValues("telemetry")) == 7
	})
	roundTrip(t, broker.Addr, b)
	waitFor(t, "the readings of A on hub B", func() bool { return len(events(t, b, "telemetry/ws3/#")) >= 20 })
	roundTrip(t, broker.Addr, b)
	count := make(map[float64]int)
	for _, e := range events(t, b, "telemetry/ws3/#") {
		seq, _ := e.Data["device_seq"].(float64)
		count[seq]++
	}
	for seq := 1; seq <= 20; seq++ {
		if count[float64(seq)] != 1 {
			t.Errorf("hub B holds seq %d %d times, want once (all: %v)", seq, count[float64(seq)], count)
		}
	}
	if len(count) != 20 {
		t.Errorf("hub B holds seqs %v, want 1..20", count)
	}
	if getJSON(t, b, "/readyz", nil) != http.StatusOK {
		t.Error("hub B not ready")
	}
}

// refusedAddr returns a local address nothing listens on.
func refusedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// sendSeqs sends readings seq from..to (temp = seq) and waits for each ack.
func sendSeqs(t *testing.T, d *wsDevice, from, to int) {
	t.Helper()
	for seq := from; seq <= to; seq++ {
		d.send(t, fmt.Sprintf(`{"type":"telemetry","seq":%d,"values":{"temp":%d}}`, seq, seq))
		if m := d.next(t); m["type"] != "ack" {
			t.Fatalf("answer to seq %d: %v, want an ack", seq, m)
		}
	}
}
