package cluster

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/telehub/telehub/bridge"
	"github.com/telehub/telehub/storage"
)

func startCluster(t *testing.T, c *Cluster) {
	t.Helper()
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), guard)
		defer cancel()
		if err := c.Shutdown(ctx); err != nil {
			t.Error(err)
		}
	})
}

func telemetryEntry(id uint64, device string, events int, frame string) storage.OutboxEntry {
	return storage.OutboxEntry{ID: id, Committed: t0.Add(time.Second), Body: telemetryBody(device, events, t0, []byte(frame))}
}

// The outbox is published in id order after the hub's announcement and
// sync marker, with the ids and commit time, then removed.
func TestForward(t *testing.T) {
	c, st, br, _, _ := newTestCluster(t)
	st.add(telemetryEntry(4, "d1", 2, `{"type":"telemetry","seq":3,"values":{"a":1,"b":2}}`))
	st.add(storage.OutboxEntry{ID: 6, Committed: t0, Body: presenceBody("d2",
		&bridge.Presence{Online: true, Transport: bridge.TransportWS, Reason: bridge.ReasonConnect, Session: 9}, t0)})
	startCluster(t, c)
	c.Connected()
	waitFor(t, "the outbox forwarded", func() bool { return st.left() == 0 })
	msgs := br.all()
	if len(msgs) != 4 {
		t.Fatalf("published %+v, want online, marker and two messages", msgs)
	}
	if m := msgs[0]; m.topic != "telehub/c1/presence/n1" || !m.retained || m.payload != "online" {
		t.Fatalf("announcement %+v", m)
	}
	if m := msgs[1]; m.topic != "telehub/c1/sync/n1" || m.retained || m.payload != c.catchup.nonce(1) {
		t.Fatalf("marker %+v", m)
	}
	if m := msgs[2]; m.topic != "telehub/c1/ws/n1/d1" || m.retained {
		t.Fatalf("reading published as %+v", m)
	}
	got, err := parseMessage(levelWS, []byte(msgs[2].payload))
	if err != nil {
		t.Fatal(err)
	}
	ids := storage.NewIDCodec("aaaa")
	if got.ID != 4 || strings.Join(got.IDs, ",") != ids.Format(4)+","+ids.Format(5) ||
		got.Committed != t0.Add(time.Second).UnixMilli() || got.Seen != t0.UnixMilli() ||
		string(got.Frame) != `{"type":"telemetry","seq":3,"values":{"a":1,"b":2}}` {
		t.Fatalf("reading message %+v", got)
	}
	if m := msgs[3]; m.topic != "telehub/c1/presence/n1/d2" {
		t.Fatalf("presence published as %+v", m)
	}
	var p struct{ Presence peerPresence }
	if err := json.Unmarshal([]byte(msgs[3].payload), &p); err != nil || p.Presence.Session != 9 || !p.Presence.Online {
		t.Fatalf("presence message %s: %v", msgs[3].payload, err)
	}
	if st.removed[len(st.removed)-1] != 6 {
		t.Fatalf("removed up to %v, want 6", st.removed)
	}

	// A later commit wakes the forwarder; the announcement is not repeated.
	st.add(telemetryEntry(7, "d1", 1, `{"type":"telemetry","values":{"a":3}}`))
	c.Wake()
	waitFor(t, "the new reading forwarded", func() bool { return st.left() == 0 })
	if msgs := br.all(); len(msgs) != 5 || msgs[4].topic != "telehub/c1/ws/n1/d1" {
		t.Fatalf("published %+v", msgs)
	}

	// A clean stop says offline, as the will would.
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	if err := c.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if msgs := br.all(); len(msgs) != 6 || msgs[5] != (published{"telehub/c1/presence/n1", true, "offline"}) {
		t.Fatalf("after Shutdown: %+v", msgs)
	}
}

// Nothing is published while the client is offline, and nothing leaves
// the outbox before the broker acknowledged it: a batch not acknowledged
// is published again.
func TestForwardKeepsWhatTheBrokerDidNotAcknowledge(t *testing.T) {
	c, st, br, _, _ := newTestCluster(t)
	c.cfg.PublishTimeout = 20 * time.Millisecond
	br.set(false, false)
	st.add(telemetryEntry(1, "d1", 1, `{"type":"telemetry","values":{"a":1}}`))
	startCluster(t, c)
	c.Wake()
	c.Wake()
	br.set(true, true) // connected, acknowledging nothing
	c.Connected()
	waitFor(t, "two attempts", func() bool { return len(br.all()) >= 4 })
	if st.left() != 1 || len(st.removed) != 0 {
		t.Fatalf("outbox %d left, removed %v: forwarded without an acknowledgement", st.left(), st.removed)
	}
	br.set(true, false)
	waitFor(t, "the outbox forwarded once acknowledged", func() bool { return st.left() == 0 })
}

// The next batches are published while the removal of the first is
// being committed: one removal is in flight at a time, and the next one
// takes everything acknowledged meanwhile.
func TestForwardPublishesWhileRemoving(t *testing.T) {
	c, st, br, _, _ := newTestCluster(t)
	c.cfg.Batch = 1
	for id := uint64(1); id <= 3; id++ {
		st.add(telemetryEntry(id, "d1", 1, `{"type":"telemetry","values":{"a":1}}`))
	}
	st.setHold(true)
	startCluster(t, c)
	c.Connected()
	// announcement, marker, then the three readings, with the removal
	// of the first held.
	waitFor(t, "the readings published", func() bool { return len(br.all()) == 5 })
	if n := st.holding(); n != 1 {
		t.Fatalf("%d removals submitted, want 1: a removal went out before the one before it was committed", n)
	}
	st.setHold(false)
	st.release()
	waitFor(t, "the outbox forwarded", func() bool { return st.left() == 0 })
	if msgs := br.all(); len(msgs) != 5 {
		t.Fatalf("published %d messages, want announcement, marker and three readings: %+v", len(msgs), msgs)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.removed) != 2 || st.removed[0] != 1 || st.removed[1] != 3 {
		t.Fatalf("removed up to %v, want [1 3]", st.removed)
	}
}

// Removals are at most one per RemoveInterval: what the broker
// acknowledged after one waits for the next.
func TestForwardRemovesAtMostOncePerInterval(t *testing.T) {
	c, st, br, _, _ := newTestCluster(t)
	c.cfg.Batch = 1
	c.cfg.RemoveInterval = time.Hour
	for id := uint64(1); id <= 3; id++ {
		st.add(telemetryEntry(id, "d1", 1, `{"type":"telemetry","values":{"a":1}}`))
	}
	startCluster(t, c)
	c.Connected()
	waitFor(t, "the readings published and the first removed", func() bool {
		st.mu.Lock()
		defer st.mu.Unlock()
		return len(br.all()) == 5 && len(st.removed) == 1
	})
	if n := st.left(); n != 2 {
		t.Fatalf("%d messages left in the outbox, want 2 until the next removal", n)
	}
}

// A failed removal leaves the messages in the outbox without publishing
// them again: the forwarder removes them again.
func TestForwardRetriesAFailedRemoval(t *testing.T) {
	c, st, br, _, _ := newTestCluster(t)
	st.failRemovals = 1
	st.add(telemetryEntry(1, "d1", 1, `{"type":"telemetry","values":{"a":1}}`))
	startCluster(t, c)
	c.Connected()
	waitFor(t, "the outbox removed after a failure", func() bool { return st.left() == 0 })
	if msgs := br.all(); len(msgs) != 3 {
		t.Fatalf("published %d messages, want announcement, marker and one reading: %+v", len(msgs), msgs)
	}
}

// The forwarder's rule: this hub's WebSocket readings and presence
// changes, not MQTT ones, not a peer's, not those of a device online
// through a peer.
func TestForwardRule(t *testing.T) {
	c, _, _, _, _ := newTestCluster(t)
	f := c.Forwarder()
	p := &bridge.Payload{Readings: []bridge.Reading{{Metric: "a"}}}
	raw := []byte(`{"type":"telemetry","values":{"a":1}}`)
	if f.Telemetry(&bridge.Input{Device: "d1", Transport: bridge.TransportWS, Raw: raw}, p) == nil {
		t.Fatal("a WebSocket reading is not forwarded")
	}
	for name, in := range map[string]bridge.Input{
		"mqtt":   {Device: "d1", Transport: bridge.TransportMQTT, Raw: raw},
		"no raw": {Device: "d1", Transport: bridge.TransportWS},
		"peer":   {Device: "d1", Transport: bridge.TransportWS, Raw: raw, Origin: &bridge.Origin{Node: "n2"}},
	} {
		if f.Telemetry(&in, p) != nil {
			t.Errorf("%s: forwarded", name)
		}
	}
	ws := &bridge.Presence{Transport: bridge.TransportWS, Reason: bridge.ReasonDisconnect}
	if f.Presence("d1", ws, t0) == nil {
		t.Fatal("a WebSocket presence change is not forwarded")
	}
	if f.Presence("d1", &bridge.Presence{Transport: bridge.TransportMQTT, Reason: bridge.ReasonWill}, t0) != nil {
		t.Error("an MQTT presence change is forwarded: every hub sees those itself")
	}
	c.peers.set("d1", peerDevice{node: "n2"})
	if f.Presence("d1", ws, t0) != nil {
		t.Error("a presence change of a device online through a peer is forwarded")
	}
}

// When the connection the hub forwards on comes back after a loss (its
// will was sent), the forwarder has the presence of the hub's WebSocket
// devices stated again, once, also while the broker is away (the writes
// wait in the outbox); a connection alone restates nothing.
func TestRejoinedRestatesPresence(t *testing.T) {
	c, _, br, bb, _ := newTestCluster(t)
	loc := restatingLocal{restated: make(chan string, 4)}
	c.Attach(Links{Bridge: bb, Broker: br, Local: loc})
	startCluster(t, c)
	c.Connected()
	waitFor(t, "the announcement", func() bool { return len(br.all()) == 2 })
	if len(loc.restated) != 0 {
		t.Fatal("a connection restated presence")
	}

	c.Rejoined()
	c.Connected()
	select {
	case tr := <-loc.restated:
		if tr != bridge.TransportWS {
			t.Fatalf("restated transport %q, want ws", tr)
		}
	case <-time.After(guard):
		t.Fatal("Rejoined restated nothing")
	}
	waitFor(t, "the announcement again", func() bool { return len(br.all()) == 4 })
	if n := len(loc.restated); n != 0 {
		t.Fatalf("one Rejoined restated %d times more", n)
	}

	br.set(false, false)
	c.Rejoined()
	select {
	case <-loc.restated:
	case <-time.After(guard):
		t.Fatal("Rejoined while the broker is away restated nothing")
	}
}
