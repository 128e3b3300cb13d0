package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/telehub/telehub/bridge"
)

// sizedWrite returns a write of device with n telemetry events, metrics
// m0, m1, ...
func sizedWrite(device string, seen time.Time, n int) *bridge.Write {
	metrics := make([]string, n)
	for i := range metrics {
		metrics[i] = fmt.Sprintf("m%d", i)
	}
	return reading(device, seen, n, metrics...)
}

// writeSizes stores one write of each size in sizes and returns the id
// after the last event.
func writeSizes(t *testing.T, s *Store, sizes []int) uint64 {
	t.Helper()
	next := uint64(1)
	if last := s.LastID(); last != 0 {
		next = last + 1
	}
	for _, n := range sizes {
		if r := submitSync(t, s, sizedWrite("d1", t0, n)); r.Err != nil || r.FirstID != next {
			t.Fatalf("write of %d events: %+v, want FirstID %d", n, r, next)
		}
		next += uint64(n)
	}
	return next
}

// recordKeys returns the keys of the event records of the closed data file
// at path, with the number of events of each.
func recordKeys(t *testing.T, path string) (keys []uint64, lens []uint64) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: guard, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketEvents).ForEach(func(k, v []byte) error {
			n, err := recordLen(v)
			keys, lens = append(keys, getID(k)), append(lens, n)
			return err
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return keys, lens
}

func TestRecordRoundTrip(t *testing.T) {
	tests := []struct {
		name   string
		topics []string
	}{
		{"one event", []string{"telemetry/d1/temp"}},
		{"three events", []string{"telemetry/d1/a", "telemetry/d1/b", "presence/d1"}},
		{"empty topics", []string{"", ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var rec, scratch []byte
			rec = binary.AppendUvarint(rec, uint64(len(tt.topics)))
			for i, topic := range tt.topics {
				rec, scratch = appendRecordEvent(rec, scratch, bridge.KindTelemetry, t0.UnixMilli()+int64(i), topic, []byte{byte(i)})
			}
			evs, err := decodeRecord(nil, rec)
			if err != nil || len(evs) != len(tt.topics) {
				t.Fatalf("decodeRecord = %d events, %v; want %d", len(evs), err, len(tt.topics))
			}
			for i, ev := range evs {
				f, err := decodeEvent(ev)
				if err != nil || string(f.topic) != tt.topics[i] || f.ms != t0.UnixMilli()+int64(i) || !slices.Equal(f.data, []byte{byte(i)}) {
					t.Errorf("event %d = %+v %v", i, f, err)
				}
			}
			if n, err := recordLen(rec); err != nil || n != uint64(len(tt.topics)) {
				t.Errorf("recordLen = %d %v", n, err)
			}
			if ms, err := recordTime(rec); err != nil || ms != t0.UnixMilli() {
				t.Errorf("recordTime = %d %v", ms, err)
			}
			if again := appendRecord(nil, evs); !slices.Equal(again, rec) {
				t.Errorf("appendRecord of the decoded events = %x, want %x", again, rec)
			}
		})
	}
}

func TestDecodeRecordRejects(t *testing.T) {
	one := appendRecord(nil, [][]byte{appendEvent(nil, bridge.KindTelemetry, 1, "t", nil)})
	tests := []struct {
		name string
		fn   func([]byte) error
		v    []byte
	}{
		{"record empty", decodeRecordErr, nil},
		{"record of no events", decodeRecordErr, []byte{0}},
		{"record count over bytes", decodeRecordErr, []byte{5, 1, 1}},
		{"record event truncated", decodeRecordErr, []byte{1, 0x80}},
		{"record event longer than value", decodeRecordErr, []byte{1, 4, 1, 0}},
		{"record trailing bytes", decodeRecordErr, append(slices.Clone(one), 7)},
		{"record fewer events than count", decodeRecordErr, append([]byte{2}, one[1:]...)},
		{"length empty", recordLenErr, nil},
		{"length zero", recordLenErr, []byte{0}},
		{"time empty", recordTimeErr, nil},
		{"time of no event", recordTimeErr, []byte{1}},
		{"time of a bad event", recordTimeErr, []byte{1, 1, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.fn(tt.v); !errors.Is(err, ErrCorrupt) {
				t.Errorf("error = %v, want ErrCorrupt", err)
			}
		})
	}
}

func decodeRecordErr(v []byte) error { _, err := decodeRecord(nil, v); return err }
func recordLenErr(v []byte) error    { _, err := recordLen(v); return err }
func recordTimeErr(v []byte) error   { _, err := recordTime(v); return err }

func FuzzDecodeRecord(f *testing.F) {
	f.Add(appendRecord(nil, [][]byte{
		appendEvent(nil, bridge.KindTelemetry, t0.UnixMilli(), "telemetry/d1/temp", []byte(`{"value":1}`)),
		appendEvent(nil, bridge.KindPresence, t0.UnixMilli(), "presence/d1", []byte(`{"online":true}`)),
	}))
	f.Add([]byte{})
	f.Add([]byte{0})
	f.Add([]byte{1, 0x80})
	f.Fuzz(func(t *testing.T, v []byte) {
		evs, err := decodeRecord(nil, v)
		n, nerr := recordLen(v)
		if err != nil {
			return
		}
		if nerr != nil || n != uint64(len(evs)) {
			t.Fatalf("recordLen = %d %v, decodeRecord %d events", n, nerr, len(evs))
		}
		// Varints need not be minimal, so compare the events, not the bytes.
		again, err := decodeRecord(nil, appendRecord(nil, evs))
		if err != nil || !slices.EqualFunc(again, evs, bytes.Equal) {
			t.Fatalf("re-encoded record decodes to %x %v, want %x", again, err, evs)
		}
		if ms, err := recordTime(v); err == nil {
			if want, _ := eventTime(evs[0]); ms != want {
				t.Fatalf("recordTime = %d, first event's %d", ms, want)
			}
		}
	})
}

func TestRecordsOfManySizes(t *testing.T) {
	cfg := testConfig(t)
	var (
		mu  sync.Mutex
		got []uint64
	)
	cfg.OnCommit = func(recs []Record) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, ids(recs)...)
	}
	s := openStore(t, cfg)
	sizes := []int{1, 2, 3, 5, 8, 13, 1, 1, 40, 100, 7, 300, 2}
	end := writeSizes(t, s, sizes)
	want := idRange(1, end-1)
	mu.Lock()
	if !slices.Equal(got, want) {
		t.Errorf("OnCommit ids %v, want 1..%d", got, end-1)
	}
	mu.Unlock()
	if g := ids(scanAll(t, s)); !slices.Equal(g, want) {
		t.Errorf("retained %v, want 1..%d", g, end-1)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	keys, lens := recordKeys(t, cfg.Path)
	if len(keys) != len(sizes) {
		t.Fatalf("%d records, want one per write (%d)", len(keys), len(sizes))
	}
	for i, n := range sizes {
		if lens[i] != uint64(n) {
			t.Errorf("record %d holds %d events, want %d", keys[i], lens[i], n)
		}
	}

	// The next id after a restart follows the last event of the last record.
	cfg.OnCommit = nil
	s = openStore(t, cfg)
	if last := s.LastID(); last != end-1 {
		t.Errorf("LastID after reopen = %d, want %d", last, end-1)
	}
	writeSizes(t, s, []int{4})
}

func TestScanInsideRecord(t *testing.T) {
	s := openStore(t, testConfig(t))
	sizes := []int{3, 1, 4, 1, 5, 9, 2, 6}
	end := writeSizes(t, s, sizes)
	last := end - 1
	for after := uint64(0); after < last; after++ {
		for _, upTo := range []uint64{after + 1, after + 3, last, last + 10} {
			if upTo > last+10 {
				continue
			}
			recs, next, err := s.Scan(after, upTo, nil, 0)
			want := idRange(after+1, min(upTo, last))
			if err != nil || !slices.Equal(ids(recs), want) || next != upTo {
				t.Fatalf("Scan(%d, %d) = %v next %d %v; want %v next %d", after, upTo, ids(recs), next, err, want, upTo)
			}
		}
		// One record at a time, continuing from inside records.
		recs, next, err := s.Scan(after, last, nil, 1)
		if err != nil || !slices.Equal(ids(recs), []uint64{after + 1}) || next != after+1 {
			t.Fatalf("Scan(%d, %d, limit 1) = %v next %d %v", after, last, ids(recs), next, err)
		}
	}
	// A topic filter still sees the events of a record one by one.
	recs, _, err := s.Scan(1, last, topicIs("telemetry/d1/m0"), 0)
	if err != nil || len(recs) != len(sizes)-1 {
		t.Errorf("filtered scan = %v %v, want the first event of each later write", ids(recs), err)
	}
}

func TestPartialTrim(t *testing.T) {
	cfg := testConfig(t)
	s := openStore(t, cfg)
	writeSizes(t, s, []int{10, 10, 10}) // 1..30
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	cfg.MaxEvents = 23
	s = openStore(t, cfg)
	// The write appends 5 and the trim drops 12: the first record and the
	// first two events of the second, which is stored again from event 13.
	writeSizes(t, s, []int{5}) // 31..35
	if oldest, ok := s.OldestID(); !ok || oldest != 13 {
		t.Errorf("OldestID = %d %v, want 13", oldest, ok)
	}
	if got := ids(scanAll(t, s)); !slices.Equal(got, idRange(13, 35)) {
		t.Errorf("retained %v, want 13..35", got)
	}
	if recs, next, err := s.Scan(13, 15, nil, 0); err != nil || !slices.Equal(ids(recs), []uint64{14, 15}) || next != 15 {
		t.Errorf("Scan(13, 15) = %v next %d %v", ids(recs), next, err)
	}
	if recs, next, err := s.Scan(0, 12, nil, 0); err != nil || len(recs) != 0 || next != 12 {
		t.Errorf("Scan(0, 12) of trimmed events = %v next %d %v", ids(recs), next, err)
	}
	cfg.MaxEvents = 22
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Restart after a partial trim: the cut record is read back under the
	// id of its first remaining event.
	s = openStore(t, cfg)
	if oldest, ok := s.OldestID(); !ok || oldest != 13 {
		t.Errorf("OldestID after reopen = %d %v, want 13", oldest, ok)
	}
	writeSizes(t, s, []int{1}) // 36; retains 15..36
	if got := ids(scanAll(t, s)); !slices.Equal(got, idRange(15, 36)) {
		t.Errorf("retained after reopen %v, want 15..36", got)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	keys, lens := recordKeys(t, cfg.Path)
	if wantKeys, wantLens := []uint64{15, 21, 31, 36}, []uint64{6, 10, 5, 1}; !slices.Equal(keys, wantKeys) || !slices.Equal(lens, wantLens) {
		t.Errorf("records %v of %v events, want %v of %v", keys, lens, wantKeys, wantLens)
	}
	s = openStore(t, cfg)
	if oldest, ok := s.OldestID(); !ok || oldest != 15 || s.LastID() != 36 {
		t.Errorf("range after second reopen = %d %v..%d, want 15..36", oldest, ok, s.LastID())
	}
}

func TestOpenOlderLayout(t *testing.T) {
	cfg := testConfig(t)
	s := openStore(t, cfg)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	rawPut(t, cfg.Path, bucketMeta, metaFormat, []byte{1})
	s2, err := Open(cfg)
	if err == nil {
		_ = s2.Close()
		t.Fatal("Open of a layout 1 file succeeded")
	}
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "older") {
		t.Errorf("Open = %v, want ErrCorrupt naming the older layout", err)
	}
}
