package storage

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/telehub/telehub/bridge"
)

func TestAppendAndReadBack(t *testing.T) {
	s := openStore(t, testConfig(t))
	r1 := submitSync(t, s, reading("d1", t0, 1, "temp", "hum"))
	r2 := submitSync(t, s, reading("d2", t0.Add(time.Second), 2, "temp"))
	if r1.FirstID != 1 || r2.FirstID != 3 || r1.Duplicate || r2.Duplicate {
		t.Fatalf("results %+v %+v, want FirstID 1 and 3", r1, r2)
	}
	if got := s.LastID(); got != 3 {
		t.Fatalf("LastID = %d, want 3", got)
	}
	if got, ok := s.OldestID(); got != 1 || !ok {
		t.Fatalf("OldestID = %d %v, want 1 true", got, ok)
	}
	want := []Record{
		{ID: 1, Kind: bridge.KindTelemetry, Topic: "telemetry/d1/temp", Time: t0, Data: []byte(`{"topic":"telemetry/d1/temp","value":1}`)},
		{ID: 2, Kind: bridge.KindTelemetry, Topic: "telemetry/d1/hum", Time: t0, Data: []byte(`{"topic":"telemetry/d1/hum","value":1}`)},
		{ID: 3, Kind: bridge.KindTelemetry, Topic: "telemetry/d2/temp", Time: t0.Add(time.Second), Data: []byte(`{"topic":"telemetry/d2/temp","value":2}`)},
	}
	assertRecords(t, scanAll(t, s), want)
}

func assertRecords(t *testing.T, got, want []Record) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d records %v, want %d %v", len(got), ids(got), len(want), ids(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.ID != w.ID || g.Kind != w.Kind || g.Topic != w.Topic || !g.Time.Equal(w.Time) || !bytes.Equal(g.Data, w.Data) {
			t.Errorf("record %d = %+v (data %s), want %+v (data %s)", i, g, g.Data, w, w.Data)
		}
	}
}

func TestDevicesAndState(t *testing.T) {
	s := openStore(t, testConfig(t))
	submitSync(t, s, reading("d2", t0, 1, "temp", "hum"))
	submitSync(t, s, reading("d2", t0.Add(2*time.Second), 7, "temp"))
	submitSync(t, s, &bridge.Write{ // heartbeat: Seen only
		Device: "d2", Seen: t0.Add(5 * time.Second),
	})
	submitSync(t, s, &bridge.Write{ // presence only, no event
		Device: "d1", Transport: bridge.TransportMQTT, Seen: t0,
		Presence: &bridge.Presence{Online: true, Transport: bridge.TransportMQTT, Session: 3, Reason: bridge.ReasonConnect},
	})
	devs, err := s.Devices()
	if err != nil {
		t.Fatal(err)
	}
	want := []Device{
		{ID: "d1", Transport: "mqtt", Online: true, Session: 3, FirstSeen: t0, LastSeen: t0, Metrics: []string{}},
		{ID: "d2", Transport: "ws", FirstSeen: t0, LastSeen: t0.Add(5 * time.Second), Metrics: []string{"hum", "temp"}},
	}
	assertDevices(t, devs, want)
	d, states, err := s.Device("d2")
	if err != nil {
		t.Fatal(err)
	}
	assertDevices(t, []Device{d}, want[1:])
	wantStates := []MetricState{{Metric: "hum", State: []byte(`{"value":1}`)}, {Metric: "temp", State: []byte(`{"value":7}`)}}
	if !reflect.DeepEqual(states, wantStates) {
		t.Errorf("states = %s, want %s", states, wantStates)
	}
	if _, _, err := s.Device("nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Device(nope) err = %v, want ErrNotFound", err)
	}
}

func assertDevices(t *testing.T, got, want []Device) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d devices %+v, want %d", len(got), got, len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.ID != w.ID || g.Transport != w.Transport || g.Online != w.Online || g.Session != w.Session ||
			!g.FirstSeen.Equal(w.FirstSeen) || !g.LastSeen.Equal(w.LastSeen) || !slices.Equal(g.Metrics, w.Metrics) {
			t.Errorf("device %d = %+v, want %+v", i, g, w)
		}
	}
}

func TestRestartKeepsEverything(t *testing.T) {
	cfg := testConfig(t)
	s := openStore(t, cfg)
	submitSync(t, s, withSeq(reading("d1", t0, 1, "temp"), 5))
	submitSync(t, s, &bridge.Write{Device: "d1", Seen: t0, Presence: &bridge.Presence{Online: true, Transport: "ws", Session: 9}})
	submitSync(t, s, reading("d2", t0, 2, "hum", "temp"))
	ident, last := s.IDs().Identity(), s.LastID()
	devs, err := s.Devices()
	if err != nil {
		t.Fatal(err)
	}
	_, states, err := s.Device("d2")
	if err != nil {
		t.Fatal(err)
	}
	recs := scanAll(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s2 := openStore(t, cfg)
	if got := s2.IDs().Identity(); got != ident {
		t.Errorf("identity %q after restart, want %q", got, ident)
	}
	if got := s2.LastID(); got != last {
		t.Errorf("LastID %d after restart, want %d", got, last)
	}
	devs2, err := s2.Devices()
	if err != nil {
		t.Fatal(err)
	}
	assertDevices(t, devs2, devs)
	if _, states2, err := s2.Device("d2"); err != nil || !reflect.DeepEqual(states2, states) {
		t.Errorf("states after restart = %s %v, want %s", states2, err, states)
	}
	assertRecords(t, scanAll(t, s2), recs)
	if r := submitSync(t, s2, withSeq(reading("d1", t0, 3, "temp"), 5)); !r.Duplicate {
		t.Errorf("seq 5 after restart: %+v, want duplicate", r)
	}
	if r := submitSync(t, s2, withSeq(reading("d1", t0, 3, "temp"), 6)); r.FirstID != last+1 {
		t.Errorf("first id after restart = %d, want %d", r.FirstID, last+1)
	}
}

func TestIdentity(t *testing.T) {
	a := openStore(t, testConfig(t))
	b := openStore(t, testConfig(t))
	for _, s := range []*Store{a, b} {
		if !validIdentity([]byte(s.IDs().Identity())) {
			t.Errorf("identity %q is not 12 hex digits", s.IDs().Identity())
		}
	}
	if a.IDs().Identity() == b.IDs().Identity() {
		t.Errorf("two data files share identity %q", a.IDs().Identity())
	}
	id := a.IDs().Format(7)
	if _, err := b.IDs().Parse(id); !errors.Is(err, ErrForeignID) {
		t.Errorf("other store parsed %q: %v, want ErrForeignID", id, err)
	}
}

func TestDedup(t *testing.T) {
	type step struct {
		device  string
		seq     uint64
		hasSeq  bool
		wantDup bool
	}
	tests := []struct {
		name string
		// sameBatch commits the steps in one transaction.
		sameBatch bool
		steps     []step
	}{
		{"across batches", false, []step{
			{"d1", 5, true, false}, {"d1", 5, true, true}, {"d1", 4, true, true},
			{"d1", 6, true, false}, {"d1", 0, false, false}, {"d1", 6, true, true},
			{"d2", 1, true, false}, {"d2", 0, true, true},
		}},
		{"within one batch", true, []step{
			{"d1", 5, true, false}, {"d1", 5, true, true}, {"d1", 4, true, true},
			{"d2", 0, true, false}, {"d1", 6, true, false}, {"d1", 0, false, false},
			{"d2", 0, true, true}, {"d1", 7, true, false},
		}},
		{"seq zero first", false, []step{{"d1", 0, true, false}, {"d1", 0, true, true}, {"d1", 1, true, false}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var batches atomic.Int32
			cfg := testConfig(t)
			cfg.OnCommit = func([]Record) { batches.Add(1) }
			s := openStore(t, cfg)
			var release func()
			if tt.sameBatch {
				release = hold(t, s)
			}
			results := make([]bridge.Result, len(tt.steps))
			chans := make([]<-chan bridge.Result, len(tt.steps))
			for i, st := range tt.steps {
				w := reading(st.device, t0, i, "temp")
				w.Seq, w.HasSeq = st.seq, st.hasSeq
				chans[i] = submitAsync(t, s, w)
				if !tt.sameBatch {
					results[i] = wait(t, chans[i])
				}
			}
			if release != nil {
				before := batches.Load()
				release()
				defer func() {
					if n := batches.Load() - before; n != 1 {
						t.Errorf("steps committed in %d batches, want 1", n)
					}
				}()
			}
			stored := 0
			for i, st := range tt.steps {
				r := results[i]
				if tt.sameBatch {
					r = wait(t, chans[i])
				}
				if r.Err != nil || r.Duplicate != st.wantDup {
					t.Errorf("step %d %+v: result %+v", i, st, r)
				}
				if r.Duplicate && r.FirstID != 0 {
					t.Errorf("step %d: duplicate with FirstID %d", i, r.FirstID)
				}
				if !r.Duplicate {
					stored++
				}
			}
			if got := len(scanAll(t, s)); tt.sameBatch && got != stored+1 || !tt.sameBatch && got != stored {
				t.Errorf("%d events retained, %d writes stored", got, stored)
			}
		})
	}
}

func TestSubmitRejects(t *testing.T) {
	s := openStore(t, testConfig(t))
	tests := []struct {
		name string
		w    *bridge.Write
	}{
		{"nil", nil},
		{"no device", &bridge.Write{Seen: t0}},
		{"event without topic", &bridge.Write{Device: "d1", Events: []bridge.Event{{Kind: bridge.KindTelemetry}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := s.Submit(tt.w); !errors.Is(err, ErrInvalidWrite) {
				t.Errorf("Submit = %v, want ErrInvalidWrite", err)
			}
		})
	}
}

func TestClosed(t *testing.T) {
	s := openStore(t, testConfig(t))
	submitSync(t, s, reading("d1", t0, 1, "temp"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	called := false
	w := reading("d1", t0, 2, "temp")
	w.Done = func(bridge.Result) { called = true }
	if err := s.Submit(w); !errors.Is(err, ErrClosed) {
		t.Errorf("Submit after Close = %v, want ErrClosed", err)
	}
	if called {
		t.Error("Done called for a refused write")
	}
	if _, _, err := s.Scan(0, 10, nil, 0); !errors.Is(err, ErrClosed) {
		t.Errorf("Scan after Close = %v, want ErrClosed", err)
	}
	if _, err := s.Devices(); !errors.Is(err, ErrClosed) {
		t.Errorf("Devices after Close = %v, want ErrClosed", err)
	}
	if _, _, err := s.Device("d1"); !errors.Is(err, ErrClosed) {
		t.Errorf("Device after Close = %v, want ErrClosed", err)
	}
	if got := s.LastID(); got != 1 {
		t.Errorf("LastID after Close = %d, want 1", got)
	}
}

// isClosed reports whether Close has marked the store closed.
func (s *Store) isClosed() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.closed
}

func TestCloseFlushesQueue(t *testing.T) {
	cfg := testConfig(t)
	s := openStore(t, cfg)
	release := hold(t, s)
	const n = 100
	chans := make([]<-chan bridge.Result, n)
	for i := range n {
		chans[i] = submitAsync(t, s, reading("d1", t0, i, "temp"))
	}
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	eventually(t, "Close to begin", s.isClosed)
	if err := s.Submit(reading("d1", t0, 0, "temp")); !errors.Is(err, ErrClosed) {
		t.Errorf("Submit while closing = %v, want ErrClosed", err)
	}
	release()
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	for i, ch := range chans {
		select {
		case r := <-ch:
			if r.Err != nil || r.FirstID != uint64(i+2) {
				t.Errorf("write %d: %+v, want FirstID %d", i, r, i+2)
			}
		default:
			t.Fatalf("write %d: Done not called before Close returned", i)
		}
	}
	s2 := openStore(t, cfg)
	if got := len(scanAll(t, s2)); got != n+1 {
		t.Errorf("%d events after reopen, want %d", got, n+1)
	}
}

func TestSubmitBlockedOnFullQueueGetsErrClosed(t *testing.T) {
	cfg := testConfig(t)
	cfg.QueueSize = 1
	s := openStore(t, cfg)
	release := hold(t, s)
	first := submitAsync(t, s, reading("d1", t0, 1, "temp")) // fills the queue
	blocked := make(chan error, 1)
	go func() { blocked <- s.Submit(reading("d1", t0, 2, "temp")) }()
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case err := <-blocked:
		if !errors.Is(err, ErrClosed) {
			t.Errorf("blocked Submit = %v, want ErrClosed", err)
		}
	case <-time.After(guard):
		t.Fatal("blocked Submit did not return after Close began")
	}
	release()
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if r := wait(t, first); r.Err != nil || r.FirstID != 2 {
		t.Errorf("queued write: %+v", r)
	}
}

func TestConcurrentSubmit(t *testing.T) {
	const (
		goroutines = 16
		perG       = 300
		events     = 2
	)
	cfg := testConfig(t)
	cfg.MaxBatch = 64
	var (
		onCommitNext atomic.Uint64 // next id OnCommit must see
		orderErr     atomic.Value
	)
	onCommitNext.Store(1)
	cfg.OnCommit = func(recs []Record) {
		for _, r := range recs {
			if r.ID != onCommitNext.Load() {
				orderErr.CompareAndSwap(nil, r.ID)
			}
			onCommitNext.Store(r.ID + 1)
		}
	}
	s := openStore(t, cfg)
	firstIDs := make([][]uint64, goroutines)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			dev := string(rune('a' + g))
			var done sync.WaitGroup
			firstIDs[g] = make([]uint64, perG)
			for i := range perG {
				w := withSeq(reading(dev, t0, i, "temp", "hum"), uint64(i+1))
				done.Add(1)
				w.Done = func(r bridge.Result) {
					defer done.Done()
					if r.Err != nil || r.Duplicate {
						t.Errorf("write %s/%d: %+v", dev, i, r)
					}
					if r.FirstID+events > onCommitNext.Load() {
						t.Errorf("Done of id %d before OnCommit saw it", r.FirstID)
					}
					firstIDs[g][i] = r.FirstID
				}
				if err := s.Submit(w); err != nil {
					t.Errorf("Submit: %v", err)
					done.Done()
				}
			}
			done.Wait()
		})
	}
	wg.Wait()
	if v := orderErr.Load(); v != nil {
		t.Fatalf("OnCommit out of id order at id %v", v)
	}
	var all []uint64
	for g := range firstIDs {
		if !slices.IsSorted(firstIDs[g]) {
			t.Errorf("goroutine %d: writes not stored in submit order", g)
		}
		all = append(all, firstIDs[g]...)
	}
	slices.Sort(all)
	for i, id := range all {
		if id != uint64(i*events+1) {
			t.Fatalf("FirstIDs not consecutive: position %d has %d", i, id)
		}
	}
	if got, want := s.LastID(), uint64(goroutines*perG*events); got != want {
		t.Errorf("LastID = %d, want %d", got, want)
	}
}

func TestOpenRejects(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cfg  Config
		want error
	}{
		{"no path", Config{}, ErrInvalidConfig},
		{"negative max events", Config{Path: filepath.Join(dir, "a.db"), MaxEvents: -1}, ErrInvalidConfig},
		{"negative max age", Config{Path: filepath.Join(dir, "a.db"), MaxAge: -time.Second}, ErrInvalidConfig},
		{"negative queue", Config{Path: filepath.Join(dir, "a.db"), QueueSize: -1}, ErrInvalidConfig},
		{"negative batch", Config{Path: filepath.Join(dir, "a.db"), MaxBatch: -1}, ErrInvalidConfig},
		{"negative max bytes", Config{Path: filepath.Join(dir, "a.db"), MaxBytes: -1}, ErrInvalidConfig},
		{"negative open timeout", Config{Path: filepath.Join(dir, "a.db"), OpenTimeout: -1}, ErrInvalidConfig},
		{"negative trim interval", Config{Path: filepath.Join(dir, "a.db"), TrimInterval: -1}, ErrInvalidConfig},
		{"directory is a file", Config{Path: filepath.Join(file, "a.db")}, nil},
		{"not a bbolt file", Config{Path: file}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Open(tt.cfg)
			if err == nil {
				_ = s.Close()
				t.Fatal("Open succeeded")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("Open = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestOpenLocked(t *testing.T) {
	cfg := testConfig(t)
	openStore(t, cfg)
	cfg.OpenTimeout = 50 * time.Millisecond
	s, err := Open(cfg)
	if err == nil {
		_ = s.Close()
		t.Fatal("second Open of a locked file succeeded")
	}
	if !errors.Is(err, bolterrors.ErrTimeout) {
		t.Errorf("Open = %v, want bbolt timeout", err)
	}
}

func TestOpenCorrupt(t *testing.T) {
	tests := []struct {
		name  string
		key   []byte
		value []byte
	}{
		{"bad identity", metaIdentity, []byte("not-an-identity")},
		{"other format", metaFormat, []byte{99}},
		{"short high water", metaHighWater, []byte{1, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t)
			s := openStore(t, cfg)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			rawPut(t, cfg.Path, bucketMeta, tt.key, tt.value)
			s2, err := Open(cfg)
			if err == nil {
				_ = s2.Close()
				t.Fatal("Open succeeded")
			}
			if !errors.Is(err, ErrCorrupt) {
				t.Errorf("Open = %v, want ErrCorrupt", err)
			}
		})
	}
}

func TestReadCorrupt(t *testing.T) {
	cfg := testConfig(t)
	s := openStore(t, cfg)
	submitSync(t, s, reading("d1", t0, 1, "temp"))
	submitSync(t, s, reading("d2", t0, 1, "temp"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	rawPut(t, cfg.Path, bucketEvents, putID(nil, 2), []byte{1, 0x80})
	rawPut(t, cfg.Path, bucketDevices, []byte("d2"), []byte{0, 0xff})
	s = openStore(t, cfg)
	if _, _, err := s.Scan(0, 2, nil, 0); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Scan = %v, want ErrCorrupt", err)
	}
	if _, _, err := s.Device("d2"); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Device = %v, want ErrCorrupt", err)
	}
	if _, err := s.Devices(); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Devices = %v, want ErrCorrupt", err)
	}

	// A write of the device with the bad record fails alone; the others of
	// its batch are stored.
	release := hold(t, s) // event 3
	bad := submitAsync(t, s, reading("d2", t0, 1, "temp"))
	good := submitAsync(t, s, reading("d1", t0, 1, "temp"))
	release()
	if r := wait(t, bad); !errors.Is(r.Err, ErrCorrupt) {
		t.Errorf("write to a corrupt device record: %+v, want ErrCorrupt", r)
	}
	if r := wait(t, good); r.Err != nil || r.FirstID != 4 {
		t.Errorf("write beside the failed one: %+v, want FirstID 4", r)
	}
}

func TestTrimCorruptEvent(t *testing.T) {
	cfg := testConfig(t)
	s := openStore(t, cfg)
	for i := range 3 {
		submitSync(t, s, reading("d1", t0, i, "temp"))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	rawPut(t, cfg.Path, bucketEvents, putID(nil, 1), []byte{1, 0x80})
	cfg.MaxAge = time.Hour
	cfg.Now = newFakeClock(t0.Add(30 * time.Minute)).Now
	s = openStore(t, cfg)
	// An event that cannot be decoded counts as expired: trimming it does
	// not stop commits, and the others are not expired yet.
	if r := submitSync(t, s, reading("d1", t0, 3, "temp")); r.FirstID != 4 {
		t.Errorf("write: %+v, want FirstID 4", r)
	}
	if got := ids(scanAll(t, s)); !slices.Equal(got, idRange(2, 4)) {
		t.Errorf("retained %v, want 2..4", got)
	}
}

// rawPut writes key=value into bucket of the closed data file at path.
func rawPut(t *testing.T, path string, bucket, key, value []byte) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: guard})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucket).Put(key, value) })
	if err != nil {
		t.Fatal(err)
	}
}

// The writer's device cache is bounded: past the bound it is dropped, and
// dedup and device records carry on from the file.
func TestDeviceCacheBound(t *testing.T) {
	saved := maxCachedDevices
	maxCachedDevices = 4
	t.Cleanup(func() { maxCachedDevices = saved })
	s := openStore(t, testConfig(t))
	write := func(device string, seq uint64) bridge.Result {
		return submitSync(t, s, &bridge.Write{Device: device, Transport: bridge.TransportWS, Seen: time.Now(), Seq: seq, HasSeq: true,
			Events: []bridge.Event{{Kind: bridge.KindTelemetry, Topic: "telemetry/" + device + "/n", Device: device, Metric: "n",
				State: []byte(`{"value":1}`), Data: []byte(`{"n":1}`)}}})
	}
	for i := range 10 {
		if r := write(fmt.Sprintf("d%d", i), 5); r.Err != nil || r.Duplicate {
			t.Fatalf("d%d: %+v", i, r)
		}
	}
	if n := len(s.w.devices); n > 4+1 {
		t.Errorf("device cache holds %d records, bound 4 (+1 of the last batch)", n)
	}
	for i := range 10 {
		if r := write(fmt.Sprintf("d%d", i), 5); r.Err != nil || !r.Duplicate {
			t.Fatalf("d%d resend after the cache was dropped: %+v, want a duplicate", i, r)
		}
	}
	devs, err := s.Devices()
	if err != nil || len(devs) != 10 {
		t.Fatalf("devices %d, %v", len(devs), err)
	}
}
