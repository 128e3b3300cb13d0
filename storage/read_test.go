package storage

import (
	"slices"
	"testing"

	"github.com/telehub/telehub/bridge"
)

// scanTopics are the topics of the events scanStore stores, in turn.
var scanTopics = []string{"telemetry/d1/temp", "telemetry/d1/hum", "presence/d1", "telemetry/d2/temp"}

// scanStore returns a store holding n events, one per write, whose topics
// cycle through scanTopics.
func scanStore(t testing.TB, n int) *Store {
	t.Helper()
	s := openStore(t, testConfig(t))
	for i := range n {
		w := &bridge.Write{Device: "d1", Seen: t0, Events: []bridge.Event{{
			Kind: bridge.KindTelemetry, Topic: scanTopics[i%len(scanTopics)], Data: []byte(`{"i":1}`),
		}}}
		submitAsync(t, s, w)
	}
	eventually(t, "events to commit", func() bool { return s.LastID() == uint64(n) })
	return s
}

func topicIs(topic string) func(string) bool {
	return func(t string) bool { return t == topic }
}

func TestScan(t *testing.T) {
	s := scanStore(t, 20)
	tests := []struct {
		name        string
		after, upTo uint64
		match       func(string) bool
		limit       int
		want        []uint64
		wantNext    uint64
	}{
		{"all", 0, 20, nil, 0, idRange(1, 20), 20},
		{"middle", 5, 10, nil, 0, idRange(6, 10), 10},
		{"up to beyond the last id", 0, 100, nil, 0, idRange(1, 20), 100},
		{"match", 0, 20, topicIs("telemetry/d1/temp"), 0, []uint64{1, 5, 9, 13, 17}, 20},
		{"limit", 0, 20, nil, 3, []uint64{1, 2, 3}, 3},
		{"match and limit", 0, 20, topicIs("telemetry/d2/temp"), 2, []uint64{4, 8}, 8},
		{"limit reaches the end", 17, 20, nil, 3, []uint64{18, 19, 20}, 20},
		{"match nothing", 0, 20, func(string) bool { return false }, 0, nil, 20},
		{"empty range", 10, 10, nil, 0, nil, 10},
		{"after beyond up to", 12, 10, nil, 0, nil, 10},
		{"after the last id", 20, 30, nil, 0, nil, 30},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs, next, err := s.Scan(tt.after, tt.upTo, tt.match, tt.limit)
			if err != nil {
				t.Fatal(err)
			}
			if got := ids(recs); !slices.Equal(got, tt.want) || next != tt.wantNext {
				t.Errorf("Scan = %v next %d, want %v next %d", got, next, tt.want, tt.wantNext)
			}
			for _, r := range recs {
				if want := scanTopics[(r.ID-1)%uint64(len(scanTopics))]; r.Topic != want {
					t.Errorf("record %d topic %q, want %q", r.ID, r.Topic, want)
				}
			}
		})
	}
}

func TestScanWindow(t *testing.T) {
	s := scanStore(t, scanWindow+500)
	last := s.LastID()
	none := func(string) bool { return false }
	recs, next, err := s.Scan(0, last, none, 0)
	if err != nil || len(recs) != 0 || next != scanWindow {
		t.Fatalf("first call: %d records, next %d, %v; want 0, %d", len(recs), next, err, scanWindow)
	}
	recs, next, err = s.Scan(next, last, none, 0)
	if err != nil || len(recs) != 0 || next != last {
		t.Fatalf("second call: %d records, next %d, %v; want 0, %d", len(recs), next, err, last)
	}
	recs, next, err = s.Scan(0, last, nil, 0)
	if err != nil || len(recs) != scanWindow || next != scanWindow {
		t.Fatalf("all: %d records, next %d, %v; want %d", len(recs), next, err, scanWindow)
	}
}

func TestScanDataOutlivesStore(t *testing.T) {
	s := scanStore(t, 3)
	recs, _, err := s.Scan(0, 3, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Reading bytes that alias the unmapped file would crash here.
	for _, r := range recs {
		if string(r.Data) != `{"i":1}` {
			t.Errorf("record %d data %q", r.ID, r.Data)
		}
	}
}
