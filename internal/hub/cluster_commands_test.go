package hub

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/telehub/telehub/internal/mosquittotest"
)

// TestClusterCommandAcrossHubs runs two hubs of one cluster on a real
// Mosquitto: a command created on hub B (with ?wait=) for a WebSocket
// device connected to hub A reaches the device through A, and its result
// reaches B's answer; both hubs hold the same final command, with ids that
// name hub B.
func TestClusterCommandAcrossHubs(t *testing.T) {
	broker := mosquittotest.Start(t, "")
	a := clusterHub(t, broker.Addr, "hub-a")
	b := clusterHub(t, broker.Addr, "hub-b")
	d := dialDevice(t, a, "pump-9")
	waitFor(t, "the device online on hub B", func() bool {
		var dev struct{ Online bool }
		return getJSON(t, b, "/v1/devices/pump-9", &dev) == http.StatusOK && dev.Online
	})
	go func() {
		for m := range d.in {
			if m["type"] == "command" {
				_ = d.conn.WriteString(fmt.Sprintf(`{"type":"command_ack","id":%q}`, m["id"]))
				_ = d.conn.WriteString(fmt.Sprintf(`{"type":"command_result","id":%q,"status":"ok","result":{"pong":true}}`, m["id"]))
				return
			}
		}
	}()
	var c command
	st := doJSON(t, b, http.MethodPost, "/v1/devices/pump-9/commands?wait=30s", `{"name":"ping"}`, &c)
	if st != http.StatusCreated || c.State != "succeeded" || c.Result["pong"] != true {
		t.Fatalf("create on hub B: %d %+v, want 201 succeeded with the device's result", st, c)
	}
	if ident, _, ok := strings.Cut(c.ID, "-"); !ok || ident != b.store.IDs().Identity() {
		t.Fatalf("command id %q does not name hub B's store %s", c.ID, b.store.IDs().Identity())
	}
	if got := waitCommand(t, a, c.ID, "succeeded"); got.Result["pong"] != true {
		t.Fatalf("on hub A: %+v", got)
	}
}

// TestClusterEventsAfterPeerID: on a hub of a cluster, /v1/events?after=
// with the other hub's id answers the readings since that id's time minus
// the margin, so a reader that moves between hubs misses nothing.
func TestClusterEventsAfterPeerID(t *testing.T) {
	broker := mosquittotest.Start(t, "")
	a := clusterHub(t, broker.Addr, "hub-a")
	b := clusterHub(t, broker.Addr, "hub-b")
	d := dialDevice(t, a, "ws2")
	for i := range 3 {
		d.send(t, fmt.Sprintf(`{"type":"telemetry","seq":%d,"values":{"temp":%d}}`, i+1, 20+i))
		if m := d.next(t); m["type"] != "ack" {
			t.Fatalf("answer %v, want an ack", m)
		}
	}
	waitFor(t, "the readings on hub B", func() bool { return len(events(t, b, "telemetry/ws2/#")) == 3 })
	onA := events(t, a, "telemetry/ws2/#")
	var after []apiEvent
	path := "/v1/events?" + url.Values{"topic": {"telemetry/ws2/#"}, "after": {onA[1].ID}}.Encode()
	if st := getJSON(t, b, path, &after); st != http.StatusOK || len(after) != 3 {
		t.Fatalf("hub B after hub A's id %s: %d, %d readings, want all 3 (inside the margin)", onA[1].ID, st, len(after))
	}
}

// TestClusterWatcherResumesOnPeer: an SSE watcher that read hub A resumes
// on hub B with A's last id: a reset with since, then every reading, the
// ones it had seen (inside the margin) told apart by their origin.
func TestClusterWatcherResumesOnPeer(t *testing.T) {
	broker := mosquittotest.Start(t, "")
	a := clusterHub(t, broker.Addr, "hub-a")
	b := clusterHub(t, broker.Addr, "hub-b")
	onA := openSSE(t, a, url.Values{"topic": {"telemetry/ws3/#"}}, "")
	d := dialDevice(t, a, "ws3")
	send := func(seq int) {
		d.send(t, fmt.Sprintf(`{"type":"telemetry","seq":%d,"values":{"temp":%d}}`, seq, seq))
		if m := d.next(t); m["type"] != "ack" {
			t.Fatalf("answer %v, want an ack", m)
		}
	}
	send(1)
	send(2)
	seen := map[string]bool{}
	var last string
	for range 2 {
		e := onA.next(t)
		seen[fmt.Sprint(e.Data["origin"])], last = true, e.ID
	}
	onA.close()
	send(3) // committed on A after the watcher left
	waitFor(t, "the readings on hub B", func() bool { return len(events(t, b, "telemetry/ws3/#")) == 3 })

	onB := openSSE(t, b, url.Values{"topic": {"telemetry/ws3/#"}}, last)
	if r := onB.next(t); r.Event != "reset" || r.Data["since"] == nil || r.Data["oldest"] == nil {
		t.Fatalf("first event on hub B %+v, want a reset with since", r)
	}
	var fresh []any
	for range 3 {
		e := onB.next(t)
		if !seen[fmt.Sprint(e.Data["origin"])] {
			fresh = append(fresh, e.Data["value"])
		}
	}
	if len(fresh) != 1 || fresh[0] != float64(3) {
		t.Fatalf("readings not seen on hub A: %v, want the third only", fresh)
	}
}
