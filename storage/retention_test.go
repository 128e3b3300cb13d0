package storage

import (
	"slices"
	"testing"
	"time"

	"github.com/telehub/telehub/bridge"
)

// fill stores n events of device "old", 100 per write, seen at seen.
func fill(t *testing.T, s *Store, n int, seen time.Time) {
	t.Helper()
	for n > 0 {
		w := &bridge.Write{Device: "old", Seen: seen}
		for i := 0; i < 100 && n > 0; i, n = i+1, n-1 {
			w.Events = append(w.Events, bridge.Event{Kind: bridge.KindTelemetry, Topic: "telemetry/old/m", Data: []byte(`{}`)})
		}
		submitSync(t, s, w)
	}
}

func TestRetentionBoundedSteps(t *testing.T) {
	const filled = 5000
	tests := []struct {
		name string
		// limit returns the config of the reopened store and the clock
		// time of the writes made after reopening.
		limit func(cfg *Config, clock *fakeClock)
		// wantFinal is the number of events retained once idle trimming
		// is done, with the two later writes of one event each.
		wantFinal uint64
	}{
		{"count", func(cfg *Config, _ *fakeClock) { cfg.MaxEvents = 10 }, 10},
		{"age", func(cfg *Config, clock *fakeClock) {
			cfg.MaxAge = time.Hour
			clock.Add(2 * time.Hour)
		}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock(t0)
			cfg := testConfig(t)
			cfg.Now = clock.Now
			s := openStore(t, cfg)
			fill(t, s, filled, t0)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}

			tt.limit(&cfg, clock)
			s = openStore(t, cfg)
			// Each write appends one event and may trim 2*1+1024.
			step := uint64(2 + trimBase)
			for i := uint64(1); i <= 2; i++ {
				submitSync(t, s, reading("new", clock.Now(), 1, "temp"))
				oldest, ok := s.OldestID()
				if want := 1 + i*step; !ok || oldest != want {
					t.Fatalf("after write %d: OldestID = %d %v, want %d", i, oldest, ok, want)
				}
				if recs, next, err := s.Scan(0, s.LastID(), nil, 1); err != nil || len(recs) != 1 || recs[0].ID != oldest || next != oldest {
					t.Fatalf("Scan from 0 after trimming = %v %d %v, want record %d", ids(recs), next, err, oldest)
				}
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}

			cfg.TrimInterval = 5 * time.Millisecond
			s = openStore(t, cfg)
			last := uint64(filled + 2)
			eventually(t, "idle trimming", func() bool {
				oldest, ok := s.OldestID()
				return ok && last-oldest+1 == tt.wantFinal
			})
			if got := ids(scanAll(t, s)); !slices.Equal(got, idRange(last-tt.wantFinal+1, last)) {
				t.Errorf("retained %v", got)
			}
		})
	}
}

func TestRetentionByAge(t *testing.T) {
	clock := newFakeClock(t0)
	cfg := testConfig(t)
	cfg.Now = clock.Now
	cfg.MaxAge = time.Hour
	s := openStore(t, cfg)
	for i := range 6 {
		submitSync(t, s, reading("d1", t0.Add(time.Duration(i)*10*time.Minute), i, "temp"))
	}
	clock.Set(t0.Add(time.Hour + 15*time.Minute)) // events seen before t0+15m expire
	submitSync(t, s, reading("d1", clock.Now(), 9, "temp"))
	if oldest, ok := s.OldestID(); !ok || oldest != 3 {
		t.Fatalf("OldestID = %d %v, want 3", oldest, ok)
	}
	if got := ids(scanAll(t, s)); !slices.Equal(got, idRange(3, 7)) {
		t.Fatalf("retained %v, want 3..7", got)
	}
	// The latest state is kept even when its events expire.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	clock.Add(3 * time.Hour)
	cfg.TrimInterval = 5 * time.Millisecond
	s = openStore(t, cfg)
	eventually(t, "every event to expire", func() bool { _, ok := s.OldestID(); return !ok })
	if got := s.LastID(); got != 7 {
		t.Errorf("LastID = %d after trimming everything, want 7", got)
	}
	if recs, next, err := s.Scan(0, 7, nil, 0); err != nil || len(recs) != 0 || next != 7 {
		t.Errorf("Scan of an empty log = %v %d %v", ids(recs), next, err)
	}
	if _, states, err := s.Device("d1"); err != nil || len(states) != 1 || string(states[0].State) != `{"value":9}` {
		t.Errorf("state after every event expired = %s %v", states, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Ids of trimmed events are never reused, even after a restart.
	s = openStore(t, cfg)
	if r := submitSync(t, s, reading("d1", clock.Now(), 10, "temp")); r.FirstID != 8 {
		t.Errorf("first id after trimming everything and restarting = %d, want 8", r.FirstID)
	}
	if oldest, ok := s.OldestID(); !ok || oldest != 8 {
		t.Errorf("OldestID = %d %v, want 8", oldest, ok)
	}
}

// TestRetentionSteadyState trims in the transactions that append, as the
// hub does once MaxEvents is reached: every batch deletes a run of oldest
// events spanning several B-tree leaves, and exactly the newest MaxEvents
// stay, in order.
func TestRetentionSteadyState(t *testing.T) {
	const maxEvents = 1000
	cfg := testConfig(t)
	cfg.MaxEvents = maxEvents
	s := openStore(t, cfg)
	last := uint64(0)
	for batch := range 12 {
		release := hold(t, s) // one event of device "hold"
		last++
		var pending []<-chan bridge.Result
		for i := range 60 + batch*20 {
			w := reading("d"+string(rune('a'+i%7)), t0, i, "temp", "hum", "energy", "door", "pump")
			pending = append(pending, submitAsync(t, s, w))
			last += 5
		}
		release()
		for _, ch := range pending {
			if r := wait(t, ch); r.Err != nil {
				t.Fatal(r.Err)
			}
		}
		first := uint64(1)
		if last > maxEvents {
			first = last - maxEvents + 1
		}
		want := idRange(first, last)
		if got := ids(scanAll(t, s)); !slices.Equal(got, want) {
			t.Fatalf("batch %d: retained %d events %v..., want %d..%d", batch, len(got), got[:min(3, len(got))], want[0], last)
		}
		if oldest, ok := s.OldestID(); !ok || oldest != want[0] {
			t.Fatalf("batch %d: OldestID = %d %v, want %d", batch, oldest, ok, want[0])
		}
	}
}
