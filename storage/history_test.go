package storage

import (
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/telehub/telehub/bridge"
	"github.com/telehub/telehub/internal/topic"
)

// historyTopics are the topics historyStore cycles through: devices whose
// ids share prefixes and contain '-' and '.', which sort before '/'.
var historyTopics = []string{
	"telemetry/d1/temp", "telemetry/d1/hum", "presence/d1", "telemetry/d1-x/temp",
	"telemetry/d1.y/temp", "telemetry/d10/temp", "errors/d1", "telemetry/d1/temp/raw",
	"telemetry/d2/temp",
}

// historyStore returns a store of n events cycling through historyTopics,
// in writes of one to three events.
func historyStore(t testing.TB, cfg Config, n int) *Store {
	t.Helper()
	s := openStore(t, cfg)
	var last <-chan bridge.Result
	for i := 0; i < n; {
		w := &bridge.Write{Device: "d1", Seen: t0}
		for j := 0; j <= i%3 && i < n; j++ {
			w.Events = append(w.Events, bridge.Event{Kind: bridge.KindTelemetry, Topic: historyTopics[i%len(historyTopics)],
				Data: fmt.Appendf(nil, `{"i":%d}`, i)})
			i++
		}
		last = submitAsync(t, s, w) // batched: writes commit in order
	}
	if r := wait(t, last); r.Err != nil {
		t.Fatal(r.Err)
	}
	return s
}

// wantLatest is Latest done the slow way: every retained record, newest
// first, filtered.
func wantLatest(t *testing.T, s *Store, before uint64, filters []topic.Filter, limit int) []uint64 {
	t.Helper()
	all := scanAll(t, s)
	var out []uint64
	for i := len(all) - 1; i >= 0 && len(out) < limit; i-- {
		if (before == 0 || all[i].ID < before) && matchAny(filters, all[i].Topic) {
			out = append(out, all[i].ID)
		}
	}
	return out
}

// latestAll calls Latest until limit records or the end, as the API does.
func latestAll(t *testing.T, s *Store, before uint64, filters []topic.Filter, limit int) []Record {
	t.Helper()
	var out []Record
	for len(out) < limit {
		recs, next, err := s.Latest(before, filters, limit-len(out))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, recs...)
		if next == 0 {
			break
		}
		before = next
	}
	return out
}

func parseFilters(t testing.TB, raw ...string) []topic.Filter {
	t.Helper()
	var out []topic.Filter
	for _, s := range raw {
		f, err := topic.ParseFilter(s)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, f)
	}
	return out
}

func TestLatest(t *testing.T) {
	s := historyStore(t, testConfig(t), 200)
	filterSets := [][]string{
		nil, {"#"}, {"telemetry/d1/temp"}, {"telemetry/+/temp"}, {"telemetry/d1/#"}, {"+/d1"},
		{"telemetry/#"}, {"telemetry/+/+/raw"}, {"telemetry/d1-x/temp", "presence/+"}, {"errors/#", "telemetry/d2/temp"},
		{"telemetry/nope"}, {"nope/#"}, {"+/+"}, {"+/+/+"}, {"telemetry/d1"}, {"+/#"}, {"telemetry/+"},
	}
	for _, raw := range filterSets {
		filters := parseFilters(t, raw...)
		for _, before := range []uint64{0, 1, 2, 57, 150, 200, 201, 500} {
			for _, limit := range []int{1, 7, 300} {
				name := fmt.Sprintf("%v/before=%d/limit=%d", raw, before, limit)
				t.Run(name, func(t *testing.T) {
					got := latestAll(t, s, before, filters, limit)
					if want := wantLatest(t, s, before, filters, limit); !slices.Equal(ids(got), want) {
						t.Fatalf("got %v, want %v", ids(got), want)
					}
					for _, r := range got {
						if r.Data == nil || r.Topic == "" {
							t.Fatalf("record %+v without topic or data", r)
						}
					}
				})
			}
		}
	}
}

// A filter of a topic answers from the index: one call, whatever the log
// holds in between.
func TestLatestUsesIndex(t *testing.T) {
	s := historyStore(t, testConfig(t), 9000)
	recs, next, err := s.Latest(0, parseFilters(t, "telemetry/d2/temp"), 300)
	if err != nil || len(recs) != 300 || next != 0 {
		t.Fatalf("Latest: %d records, next %d, %v; want 300 in one call", len(recs), next, err)
	}
	// The log read backwards stops at its window and says where to go on.
	recs, next, err = s.Latest(0, parseFilters(t, "#"), scanWindow+10)
	if err != nil || len(recs) != scanWindow || next != 9000-scanWindow+1 {
		t.Fatalf("Latest of #: %d records, next %d, %v", len(recs), next, err)
	}
}

// indexKeys returns the number of keys of the topic index and the number
// of them whose event is not retained.
func indexKeys(t *testing.T, s *Store) (n, stale int) {
	t.Helper()
	oldest, _ := s.OldestID()
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketTopics).ForEach(func(k, _ []byte) error {
			_, id, ok := indexedTopic(k)
			n++
			if !ok || id < oldest || id > s.LastID() {
				stale++
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return n, stale
}

// Retention trims the index with the log, cut records included.
func TestIndexFollowsRetention(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxEvents = 50
	s := historyStore(t, cfg, 400)
	eventually(t, "retention", func() bool { o, ok := s.OldestID(); return ok && s.LastID()-o+1 <= 50 })
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, cfg)
	retained := len(scanAll(t, s))
	if n, stale := indexKeys(t, s); n != retained || stale != 0 {
		t.Fatalf("index holds %d keys (%d stale), want the %d retained events", n, stale, retained)
	}
	got := latestAll(t, s, 0, parseFilters(t, "telemetry/d1/temp"), 1000)
	if want := wantLatest(t, s, 0, parseFilters(t, "telemetry/d1/temp"), 1000); !slices.Equal(ids(got), want) || len(want) == 0 {
		t.Fatalf("got %v, want %v", ids(got), want)
	}
}

// A file of the layout before the index is upgraded on open: the index is
// built from the log and the layout version raised.
func TestOpenUpgradesIndex(t *testing.T) {
	cfg := testConfig(t)
	s := historyStore(t, cfg, 300)
	want := wantLatest(t, s, 0, parseFilters(t, "telemetry/+/temp"), 100)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(cfg.Path, 0o600, &bolt.Options{Timeout: guard})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketTopics).Put([]byte("stale\x00\x00\x00\x00\x00\x00\x00\x00\x01"), []byte{}); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Put(metaFormat, []byte{layoutWithoutIndex})
	})
	_ = db.Close()
	if err != nil {
		t.Fatal(err)
	}
	s = openStore(t, cfg)
	if got := latestAll(t, s, 0, parseFilters(t, "telemetry/+/temp"), 100); !slices.Equal(ids(got), want) {
		t.Fatalf("after the upgrade: %v, want %v", ids(got), want)
	}
	if n, stale := indexKeys(t, s); n != 300 || stale != 0 {
		t.Fatalf("index holds %d keys (%d stale), want 300", n, stale)
	}
	if v, err := s.storedVersion(); err != nil || v != formatVersion {
		t.Fatalf("layout version %d (%v), want %d", v, err, formatVersion)
	}
}

// A recovered file gets its topic index built again from the log it holds.
func TestRecoverRebuildsIndex(t *testing.T) {
	cfg := testConfig(t)
	s := historyStore(t, cfg, 300)
	want := wantLatest(t, s, 0, parseFilters(t, "telemetry/d1/temp"), 100)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	to := filepath.Join(t.TempDir(), "recovered.db")
	if _, err := Recover(cfg.Path, to); err != nil {
		t.Fatal(err)
	}
	cfg.Path = to
	s = openStore(t, cfg)
	if got := latestAll(t, s, 0, parseFilters(t, "telemetry/d1/temp"), 100); !slices.Equal(ids(got), want) || len(want) == 0 {
		t.Fatalf("after Recover: %v, want %v", ids(got), want)
	}
	if n, stale := indexKeys(t, s); n != 300 || stale != 0 {
		t.Fatalf("index holds %d keys (%d stale), want 300", n, stale)
	}
}
