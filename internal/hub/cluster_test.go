package hub

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/telehub/telehub/internal/mosquittotest"
)

// clusterHub starts a hub of cluster c1 as node on the broker at addr.
func clusterHub(t *testing.T, addr, node string) *Hub {
	t.Helper()
	cfg := testConfig(t)
	cfg.MQTTAddr = ""
	cfg.MQTTBroker = "tcp://" + addr
	cfg.Cluster, cfg.NodeID = "c1", node
	h := startHub(t, cfg)
	waitFor(t, "/readyz of "+node+" after catch-up", func() bool {
		return getJSON(t, h, "/readyz", nil) == http.StatusOK
	})
	return h
}

// originOf returns the node of an event's origin, failing when it has
// none.
func originOf(t *testing.T, e apiEvent) string {
	t.Helper()
	o, _ := e.Data["origin"].(string)
	node, id, ok := strings.Cut(o, ":")
	if !ok || id == "" {
		t.Fatalf("event %s has origin %q, want node:id", e.ID, o)
	}
	return node
}

// TestClusterReplicas runs two hubs of one cluster on a real Mosquitto: a
// WebSocket device's readings (with and without seq, one resent) and its
// presence reach the other hub once, with the origin hub's node in
// origin; an MQTT device's reading is stored by both, each its own
// origin; nothing comes back to its origin.
func TestClusterReplicas(t *testing.T) {
	broker := mosquittotest.Start(t, "")
	a := clusterHub(t, broker.Addr, "hub-a")
	b := clusterHub(t, broker.Addr, "hub-b")

	d := dialDevice(t, a, "ws1")
	for _, f := range []string{
		`{"type":"telemetry","seq":1,"values":{"temp":21.5,"hum":40}}`,
		`{"type":"telemetry","seq":1,"values":{"temp":21.5,"hum":40}}`, // a resend: stored once
		`{"type":"telemetry","values":{"temp":22}}`,
	} {
		d.send(t, f)
		if m := d.next(t); m["type"] != "ack" {
			t.Fatalf("answer %v, want an ack", m)
		}
	}
	waitFor(t, "the WebSocket readings on hub B", func() bool { return len(events(t, b, "telemetry/ws1/#")) >= 3 })
	waitFor(t, "the device online on hub B", func() bool {
		var dev struct{ Online bool }
		return getJSON(t, b, "/v1/devices/ws1", &dev) == http.StatusOK && dev.Online
	})

	o := mqtt.NewClientOptions().AddBroker("tcp://" + broker.Addr).SetClientID("cluster-device").SetAutoReconnect(false)
	device := mqtt.NewClient(o)
	if tok := device.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("device connect: %v", tok.Error())
	}
	t.Cleanup(func() { device.Disconnect(100) })
	if tok := device.Publish("devices/mq1/telemetry", 1, false, `{"rpm":1200,"seq":5}`); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
	for _, h := range []*Hub{a, b} {
		waitFor(t, "the MQTT reading on both hubs", func() bool { return len(events(t, h, "telemetry/mq1/#")) == 1 })
	}

	// Let anything that would loop back arrive: a sync marker published
	// after everything sent so far comes back after it.
	for _, h := range []*Hub{a, b} {
		roundTrip(t, broker.Addr, h)
	}
	for name, h := range map[string]*Hub{"hub-a": a, "hub-b": b} {
		ws := events(t, h, "telemetry/ws1/#")
		if len(ws) != 3 {
			t.Fatalf("%s holds %d readings of ws1, want 3: %+v", name, len(ws), ws)
		}
		for _, e := range ws {
			if node := originOf(t, e); node != "hub-a" {
				t.Fatalf("%s: reading of ws1 with origin node %s, want hub-a", name, node)
			}
		}
		mq := events(t, h, "telemetry/mq1/#")
		if node := originOf(t, mq[0]); node != name {
			t.Fatalf("%s: MQTT reading with origin node %s, want its own", name, node)
		}
	}
	// The origin ids on B are A's event ids.
	wsA, wsB := events(t, a, "telemetry/ws1/#"), events(t, b, "telemetry/ws1/#")
	for i := range wsA {
		if want := "hub-a:" + wsA[i].ID; wsB[i].Data["origin"] != want || wsA[i].Data["origin"] != want {
			t.Fatalf("reading %d: origin %v on B, %v on A, want %s on both", i, wsB[i].Data["origin"], wsA[i].Data["origin"], want)
		}
	}
	if p := events(t, b, "presence/ws1"); len(p) != 1 || originOf(t, p[0]) != "hub-a" {
		t.Fatalf("presence of ws1 on hub B: %+v, want A's connect once", p)
	}

	// Hub A goes away: its devices go offline on hub B, once, by A's
	// forwarded disconnect or, when A's "offline" comes first, by B's own
	// word.
	stopHub(t, a)
	waitFor(t, "ws1 offline on hub B", func() bool { return len(events(t, b, "presence/ws1")) >= 2 })
	roundTrip(t, broker.Addr, b) // a second offline would have arrived by now
	p := events(t, b, "presence/ws1")
	if len(p) != 2 || p[1].Data["online"] != false || p[1].Data["reason"] != "disconnect" {
		t.Fatalf("presence of ws1 on hub B after A stopped: %+v", p)
	}
	var dev struct{ Online bool }
	if getJSON(t, b, "/v1/devices/ws1", &dev); dev.Online {
		t.Fatal("ws1 still online on hub B")
	}
}

// roundTrip publishes a message through the broker to h's cluster topics
// and waits until h has counted it, so that what was published before has
// arrived.
func roundTrip(t *testing.T, addr string, h *Hub) {
	t.Helper()
	o := mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(fmt.Sprintf("probe-%p", h)).SetAutoReconnect(false)
	c := mqtt.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("probe connect: %v", tok.Error())
	}
	defer c.Disconnect(100)
	own := h.metrics.Cluster.Skipped.WithLabelValues("own")
	before := testutil.ToFloat64(own)
	node := h.cluster.Node()
	if tok := c.Publish("telehub/c1/sync/"+node, 1, false, "probe"); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("probe publish: %v", tok.Error())
	}
	waitFor(t, "the probe to come back", func() bool { return testutil.ToFloat64(own) > before })
}

// TestClusterCatchUp stops hub B while hub A stores WebSocket readings;
// B, restarted on its data, receives them from its persistent session, and
// once /readyz says ready it holds every one of them, exactly once.
func TestClusterCatchUp(t *testing.T) {
	broker := mosquittotest.Start(t, "")
	a := clusterHub(t, broker.Addr, "hub-a")
	b := clusterHub(t, broker.Addr, "hub-b")
	cfgB := b.cfg
	stopHub(t, b)

	d := dialDevice(t, a, "ws2")
	const n = 50
	for seq := 1; seq <= n; seq++ {
		d.send(t, fmt.Sprintf(`{"type":"telemetry","seq":%d,"values":{"temp":%d}}`, seq, seq))
		if m := d.next(t); m["type"] != "ack" {
			t.Fatalf("answer %v, want an ack", m)
		}
	}
	waitFor(t, "hub A to forward its readings", func() bool {
		return testutil.ToFloat64(a.metrics.Cluster.Forwarded.WithLabelValues("telemetry")) == n
	})

	b = startHub(t, cfgB)
	waitFor(t, "/readyz of the restarted hub B", func() bool {
		return getJSON(t, b, "/readyz", nil) == http.StatusOK
	})
	if got := events(t, b, "telemetry/ws2/#"); len(got) != n {
		t.Fatalf("hub B ready with %d of the %d readings stored while it was away", len(got), n)
	}
	roundTrip(t, broker.Addr, b)
	if got := events(t, b, "telemetry/ws2/#"); len(got) != n {
		t.Fatalf("hub B holds %d readings of ws2, want %d once each", len(got), n)
	}
}
