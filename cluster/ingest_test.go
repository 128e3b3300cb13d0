package cluster

import (
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/telehub/telehub/bridge"
)

func peerFrame(id uint64, ids, frame string) string {
	return fmt.Sprintf(`{"id":%d,"ids":[%s],"committed":%d,"seen":%d,"frame":%s}`, id, ids, t0.UnixMilli()-250, t0.UnixMilli()-300, frame)
}

func peerPresenceMsg(id uint64, online bool, reason string) string {
	return fmt.Sprintf(`{"id":%d,"ids":["x-%d"],"committed":%d,"seen":%d,"presence":{"online":%v,"transport":"ws","reason":%q,"session":4}}`,
		id, id, t0.UnixMilli(), t0.UnixMilli(), online, reason)
}

// Peer readings are ingested with their origin and the peer's receive
// time; our own messages, other hubs' markers and invalid messages are
// acknowledged without storing; device topics are not the cluster's.
func TestIngestReadings(t *testing.T) {
	c, _, _, bb, _ := newTestCluster(t)
	var r results
	frame := `{"type":"telemetry","seq":3,"values":{"a":1,"b":2}}`
	cases := []struct {
		topic, payload string
		stored         bool
	}{
		{"telehub/c1/ws/n2/d1", peerFrame(7, `"x-7","x-8"`, frame), true},
		{"telehub/c1/ws/n1/d1", peerFrame(7, `"x-7","x-8"`, frame), false},              // our own: no loop back
		{"telehub/c1/sync/n2", "marker", false},                                         // another hub's marker
		{"telehub/c1/ws/n2/d1", `{"id":1}`, false},                                      // invalid
		{"telehub/c1/ws/n2/a+b", peerFrame(9, `"x-9"`, frame), false},                   // not a device id
		{"telehub/c1/ws/n2/d1", peerFrame(10, `"x-10"`, `{"type":"heartbeat"}`), false}, // not a reading
	}
	for i, cs := range cases {
		before := len(bb.all())
		if !c.Message(cs.topic, []byte(cs.payload), r.done) {
			t.Fatalf("case %d: %s not taken as the cluster's", i, cs.topic)
		}
		if stored := len(bb.all()) > before; stored != cs.stored {
			t.Fatalf("case %d (%s): stored %v, want %v", i, cs.topic, stored, cs.stored)
		}
	}
	if got := r.all(); len(got) != len(cases) {
		t.Fatalf("%d done calls for %d messages", len(got), len(cases))
	}
	for i, res := range r.all() {
		if res.Err != nil {
			t.Fatalf("message %d left unacknowledged: %v", i, res.Err)
		}
	}
	call := bb.all()[0]
	if call.in.Device != "d1" || call.in.Transport != bridge.TransportWS || call.origin.Node != "n2" || call.origin.ID != 7 ||
		len(call.origin.EventIDs) != 2 || !call.in.Received.Equal(t0.Add(-300_000_000)) || call.payload.Seq != 3 {
		t.Fatalf("ingested %+v", call)
	}
	if lag := testutil.CollectAndCount(c.met.ReplicationLag); lag != 1 {
		t.Fatalf("replication lag samples %d", lag)
	}
	if n := testutil.ToFloat64(c.met.Received.WithLabelValues(kindTelemetry)); n != 1 {
		t.Fatalf("received %v, want 1", n)
	}
	if c.Message("devices/d1/telemetry", []byte(`{"a":1}`), r.done) {
		t.Fatal("a device topic taken as the cluster's")
	}
}

// A duplicate is acknowledged and counted, a store failure left
// unacknowledged.
func TestIngestOutcomes(t *testing.T) {
	c, _, _, bb, _ := newTestCluster(t)
	var r results
	bb.result = bridge.Result{Duplicate: true}
	c.Message("telehub/c1/ws/n2/d1", []byte(peerFrame(7, `"x-7"`, `{"type":"telemetry","values":{"a":1}}`)), r.done)
	if n := testutil.ToFloat64(c.met.Skipped.WithLabelValues("duplicate")); n != 1 {
		t.Fatalf("duplicates counted %v", n)
	}
	bb.result = bridge.Result{Err: fmt.Errorf("disk full")}
	c.Message("telehub/c1/ws/n2/d1", []byte(peerFrame(8, `"x-8"`, `{"type":"telemetry","values":{"a":1}}`)), r.done)
	if got := r.all(); got[0].Err != nil || got[1].Err == nil {
		t.Fatalf("results %+v", got)
	}
}

// A device online through a peer goes offline on that peer's word only,
// and never while connected here; when the peer dies, its devices go
// offline here.
func TestIngestPresence(t *testing.T) {
	c, _, _, bb, loc := newTestCluster(t)
	var r results
	msg := func(topic, payload string) int {
		before := len(bb.all())
		c.Message(topic, []byte(payload), r.done)
		return len(bb.all()) - before
	}
	if msg("telehub/c1/presence/n2/d1", peerPresenceMsg(1, true, "connect")) != 1 {
		t.Fatal("online not stored")
	}
	if msg("telehub/c1/presence/n3/d1", peerPresenceMsg(2, false, "disconnect")) != 0 {
		t.Fatal("offline from a hub the device is not online through stored")
	}
	loc["d1"] = true
	if msg("telehub/c1/presence/n2/d1", peerPresenceMsg(3, false, "disconnect")) != 0 {
		t.Fatal("offline of a device connected here stored")
	}
	delete(loc, "d1")
	if msg("telehub/c1/presence/n2/d1", peerPresenceMsg(4, false, "disconnect")) != 1 {
		t.Fatal("offline from the device's hub not stored")
	}
	if n := testutil.ToFloat64(c.met.Skipped.WithLabelValues("stale")); n != 2 {
		t.Fatalf("stale counted %v, want 2", n)
	}

	msg("telehub/c1/presence/n2/d2", peerPresenceMsg(5, true, "connect"))
	msg("telehub/c1/presence/n2/d3", peerPresenceMsg(6, true, "connect"))
	msg("telehub/c1/presence/n3/d4", peerPresenceMsg(7, true, "connect"))
	loc["d3"] = true
	before := len(bb.all())
	msg("telehub/c1/presence/n2", "online")
	if len(bb.all()) != before {
		t.Fatal("a peer's online changed presence")
	}
	msg("telehub/c1/presence/n2", "offline")
	calls := bb.all()[before:]
	if len(calls) != 1 || calls[0].device != "d2" || calls[0].presence.Online || calls[0].origin != nil ||
		calls[0].presence.Reason != bridge.ReasonDisconnect || calls[0].presence.Session != 4 {
		t.Fatalf("after n2 died: %+v, want d2 offline by this hub", calls)
	}
	if _, ok := c.peers.get("d4"); !ok {
		t.Fatal("a device of another peer forgotten")
	}
}

// Readiness: not before the first connection, not before this
// connection's marker is acknowledged, and again not after a reconnect.
func TestCatchup(t *testing.T) {
	c, _, _, _, _ := newTestCluster(t)
	if c.Ready() == nil {
		t.Fatal("ready before connecting")
	}
	c.Connected()
	c.Message("devices/d1/telemetry", nil, nil)
	c.Message("devices/d1/telemetry", nil, nil)
	if n := testutil.ToFloat64(c.met.CatchupBacklog); n != 2 {
		t.Fatalf("catch-up backlog %v, want 2", n)
	}
	c.Acked("telehub/c1/sync/n1", []byte("stale-marker"))
	c.Acked("telehub/c1/sync/n2", []byte(c.catchup.nonce(1)))
	if err := c.Ready(); err == nil {
		t.Fatal("ready on another marker")
	}
	c.Acked("telehub/c1/sync/n1", []byte(c.catchup.nonce(1)))
	if err := c.Ready(); err != nil {
		t.Fatalf("not ready after the marker: %v", err)
	}
	if testutil.ToFloat64(c.met.CaughtUp) != 1 || testutil.ToFloat64(c.met.CatchupBacklog) != 0 {
		t.Fatal("metrics do not say caught up")
	}
	c.Connected()
	c.Acked("telehub/c1/sync/n1", []byte(c.catchup.nonce(1)))
	if c.Ready() == nil {
		t.Fatal("ready after a reconnect on the old marker")
	}
}
