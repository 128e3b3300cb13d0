package storage

import (
	"errors"
	"testing"

	"github.com/telehub/telehub/bridge"
)

// clusterWrite is a one-event write of device with data {"v":n}.
func clusterWrite(device string, n int) *bridge.Write {
	return &bridge.Write{Device: device, Seen: t0, Events: []bridge.Event{{
		Kind: bridge.KindTelemetry, Topic: "telemetry/" + device + "/v", Device: device,
		Data: []byte(`{"v":` + string(rune('0'+n)) + `}`),
	}}}
}

// A write's outbox message is kept with it, read back in id order with
// the commit time, kept across a restart, and removed by ForwardedUpTo; a
// duplicate keeps none.
func TestOutbox(t *testing.T) {
	cfg := testConfig(t)
	s := openStore(t, cfg)
	for i, body := range []string{"m1", "", "m3"} {
		w := clusterWrite("d1", i)
		w.Seq, w.HasSeq = uint64(i+1), true
		if body != "" {
			w.Outbox = []byte(body)
		}
		submitSync(t, s, w)
	}
	dup := clusterWrite("d1", 9)
	dup.Seq, dup.HasSeq, dup.Outbox = 1, true, []byte("dup")
	if r := submitSync(t, s, dup); !r.Duplicate {
		t.Fatalf("resend not a duplicate: %+v", r)
	}
	got, err := s.Outbox(0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].ID != 1 || string(got[0].Body) != "m1" || got[1].ID != 3 || string(got[1].Body) != "m3" ||
		!got[0].Committed.Equal(t0) || !got[0].Time.Equal(t0) {
		t.Fatalf("outbox %+v, want m1 at 1 and m3 at 3, committed at %s", got, t0)
	}
	if got, _ := s.Outbox(1, 10); len(got) != 1 || got[0].ID != 3 {
		t.Fatalf("outbox after 1: %+v", got)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, cfg)
	submitSync(t, s, &bridge.Write{ForwardedUpTo: 1})
	if got, _ := s.Outbox(0, 10); len(got) != 1 || got[0].ID != 3 {
		t.Fatalf("outbox after a restart and removing up to 1: %+v", got)
	}
}

func TestForwardedUpToCarriesNothingElse(t *testing.T) {
	s := openStore(t, testConfig(t))
	err := s.Submit(&bridge.Write{ForwardedUpTo: 3, Device: "d1"})
	if !errors.Is(err, ErrInvalidWrite) {
		t.Fatalf("err %v, want ErrInvalidWrite", err)
	}
}

// A peer's write is stored once per origin node and device, across a
// restart; another node's or another device's same id is stored.
func TestOriginDedup(t *testing.T) {
	cfg := testConfig(t)
	s := openStore(t, cfg)
	peer := func(node, device string, id uint64) *bridge.Write {
		w := clusterWrite(device, int(id))
		w.Origin = &bridge.Origin{Node: node, ID: id, EventIDs: []string{"x"}}
		return w
	}
	steps := []struct {
		w   *bridge.Write
		dup bool
	}{
		{peer("a", "d1", 5), false},
		{peer("a", "d1", 5), true},
		{peer("a", "d1", 4), true},
		{peer("b", "d1", 5), false},
		{peer("a", "d2", 5), false},
		{peer("a", "d1", 6), false},
	}
	for i, st := range steps {
		if r := submitSync(t, s, st.w); r.Duplicate != st.dup {
			t.Fatalf("step %d: duplicate %v, want %v", i, r.Duplicate, st.dup)
		}
	}
	// Two of one node and device in one batch: the second is a duplicate.
	ch1, ch2 := submitAsync(t, s, peer("c", "d1", 1)), submitAsync(t, s, peer("c", "d1", 1))
	if r1, r2 := wait(t, ch1), wait(t, ch2); r1.Duplicate || !r2.Duplicate {
		t.Fatalf("same origin twice: %+v then %+v", r1, r2)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, cfg)
	if r := submitSync(t, s, peer("a", "d1", 6)); !r.Duplicate {
		t.Fatal("origin forgotten across a restart")
	}
}

// In cluster mode the hub's own records carry its origin; a peer's keep
// theirs; outside cluster mode data is as stored.
func TestOrigins(t *testing.T) {
	cfg := testConfig(t)
	cfg.Origins, cfg.Node = true, "n1"
	var live []Record
	cfg.OnCommit = func(recs []Record) { live = append(live, recs...) }
	s := openStore(t, cfg)
	submitSync(t, s, clusterWrite("d1", 1))
	peer := clusterWrite("d1", 2)
	peer.Events[0].Data = []byte(`{"origin":"n2:x","v":2}`)
	submitSync(t, s, peer)
	want := []string{`{"origin":"n1:` + s.IDs().FormatAt(1, t0) + `","v":1}`, `{"origin":"n2:x","v":2}`}
	recs, _, err := s.Scan(0, 2, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	latest, _, err := s.Latest(0, nil, 10)
	if err != nil {
		t.Fatal(err)
	}
	for name, got := range map[string][]Record{"scan": recs, "live": live, "latest": {latest[1], latest[0]}} {
		if len(got) != 2 || string(got[0].Data) != want[0] || string(got[1].Data) != want[1] {
			t.Fatalf("%s: %q, want %q", name, dataOf(got), want)
		}
	}

	plain := openStore(t, testConfig(t))
	submitSync(t, plain, clusterWrite("d1", 1))
	if recs, _, _ := plain.Scan(0, 1, nil, 0); len(recs) != 1 || string(recs[0].Data) != `{"v":1}` {
		t.Fatalf("outside a cluster: %q", dataOf(recs))
	}
}

func dataOf(recs []Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = string(r.Data)
	}
	return out
}
