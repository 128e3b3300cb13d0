package hub

import (
	"net/http"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/telehub/telehub/devices"
	"github.com/telehub/telehub/internal/mosquittotest"
)

// TestClusterPublishingConnectionBlip cuts only the connection hub A
// forwards on (another client takes its client id over, as a broker does
// with a half-open connection): the broker sends A's will, and hub B marks
// A's WebSocket device offline. When that connection is back, A states
// again the presence of the devices still connected to it: B shows the
// device online again, with its session, and follows it from then on (its
// next reading once, its disconnect). No reading is stored twice.
func TestClusterPublishingConnectionBlip(t *testing.T) {
	broker := mosquittotest.Start(t, "")
	a := clusterHub(t, broker.Addr, "hub-a")
	b := clusterHub(t, broker.Addr, "hub-b")

	d := dialDevice(t, a, "ws7")
	sendSeqs(t, d, 1, 3)
	waitFor(t, "the readings and presence of ws7 on hub B", func() bool {
		return len(events(t, b, "telemetry/ws7/#")) == 3 && len(events(t, b, "presence/ws7")) == 1
	})

	kickClientID(t, broker.Addr, "telehub-c1-hub-a"+devices.PeerClientSuffix)
	waitFor(t, "ws7 offline on hub B (A's will)", func() bool { return len(events(t, b, "presence/ws7")) >= 2 })
	waitFor(t, "ws7 online again on hub B", func() bool { return len(events(t, b, "presence/ws7")) >= 3 })
	p := events(t, b, "presence/ws7")
	want := []struct {
		online bool
		reason string
	}{{true, "connect"}, {false, "disconnect"}, {true, "connect"}}
	for i, w := range want {
		if p[i].Data["online"] != w.online || p[i].Data["reason"] != w.reason || p[i].Data["session"] != p[0].Data["session"] {
			t.Fatalf("presence of ws7 on hub B: event %d is %v, want online %v, reason %s, session %v", i, p[i].Data, w.online, w.reason, p[0].Data["session"])
		}
	}
	if node := originOf(t, p[2]); node != "hub-a" {
		t.Fatalf("restated presence on hub B has origin node %s, want hub-a", node)
	}
	var dev struct{ Online bool }
	if getJSON(t, b, "/v1/devices/ws7", &dev) != http.StatusOK || !dev.Online {
		t.Fatal("ws7 not online on hub B after the publishing connection came back")
	}
	if n := len(events(t, a, "presence/ws7")); n != 2 {
		t.Fatalf("hub A holds %d presence events of ws7, want its connect and the one stated again", n)
	}

	sendSeqs(t, d, 4, 4)
	_ = d.conn.WriteClose(1000, nil)
	waitFor(t, "ws7's disconnect on hub B", func() bool { return len(events(t, b, "presence/ws7")) >= 4 })
	roundTrip(t, broker.Addr, b)
	if p := events(t, b, "presence/ws7"); len(p) != 4 || p[3].Data["online"] != false || originOf(t, p[3]) != "hub-a" {
		t.Fatalf("presence of ws7 on hub B after it disconnected from A: %+v", p)
	}
	count := make(map[float64]int)
	for _, e := range events(t, b, "telemetry/ws7/#") {
		seq, _ := e.Data["device_seq"].(float64)
		count[seq]++
	}
	for seq := 1; seq <= 4; seq++ {
		if count[float64(seq)] != 1 {
			t.Errorf("hub B holds seq %d %d times, want once (all: %v)", seq, count[float64(seq)], count)
		}
	}
}

// kickClientID connects a client with the given client id and a clean
// session, which makes the broker drop the connection that had it and
// send that connection's will (a takeover by a persistent session would
// not); the kicker neither reconnects nor leaves a will of its own.
func kickClientID(t *testing.T, addr, id string) {
	t.Helper()
	o := mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).
		SetCleanSession(true).SetAutoReconnect(false).SetConnectTimeout(5 * time.Second)
	c := mqtt.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect as %s: %v", id, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(0) })
}
