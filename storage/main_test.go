package storage

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/telehub/telehub/bridge"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// guard bounds every wait in these tests; it only fires when something is
// broken, never as a timing assertion.
const guard = 20 * time.Second

// epochEnv names the variable that moves the tests' clock (RFC 3339). The
// suite runs again with it set years ahead of and behind the real clock
// (TestSuiteIgnoresTheRealClock), so a test that meets the real clock fails.
const epochEnv = "TELEHUB_TEST_EPOCH"

// t0 is the base time of the tests' writes and the time of the stores'
// clock (testConfig): the tests never meet the real clock.
var t0 = testEpoch()

func testEpoch() time.Time {
	if v := os.Getenv(epochEnv); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			panic(fmt.Sprintf("%s=%q: %v", epochEnv, v, err))
		}
		return t.UTC()
	}
	return time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
}

// testConfig returns a config on a fresh file in a test directory, with
// the store's clock stopped at t0.
func testConfig(t testing.TB) Config {
	t.Helper()
	return Config{
		Path:         filepath.Join(t.TempDir(), "data", "telehub.db"),
		Logger:       slog.New(slog.DiscardHandler),
		NoFsync:      true,
		TrimInterval: time.Hour,
		Now:          func() time.Time { return t0 },
	}
}

// openStore opens a store and closes it when the test ends.
func openStore(t testing.TB, cfg Config) *Store {
	t.Helper()
	s, err := Open(cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// submitAsync submits w and returns the channel its Result arrives on.
func submitAsync(t testing.TB, s *Store, w *bridge.Write) <-chan bridge.Result {
	t.Helper()
	ch := make(chan bridge.Result, 1)
	w.Done = func(r bridge.Result) { ch <- r }
	if err := s.Submit(w); err != nil {
		t.Fatalf("Submit: %v", err)
	}
	return ch
}

// wait returns the Result from ch.
func wait(t testing.TB, ch <-chan bridge.Result) bridge.Result {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(guard):
		t.Fatal("Done was not called")
		return bridge.Result{}
	}
}

// submitSync submits w and waits for its Result, failing on an error.
func submitSync(t testing.TB, s *Store, w *bridge.Write) bridge.Result {
	t.Helper()
	r := wait(t, submitAsync(t, s, w))
	if r.Err != nil {
		t.Fatalf("write of %s: %v", w.Device, r.Err)
	}
	return r
}

// reading returns a write of one telemetry event per metric, each with the
// value v, seen at seen.
func reading(device string, seen time.Time, v int, metrics ...string) *bridge.Write {
	w := &bridge.Write{Device: device, Transport: bridge.TransportWS, Seen: seen}
	for _, m := range metrics {
		w.Events = append(w.Events, bridge.Event{
			Kind:   bridge.KindTelemetry,
			Topic:  "telemetry/" + device + "/" + m,
			Device: device,
			Metric: m,
			State:  fmt.Appendf(nil, `{"value":%d}`, v),
			Data:   fmt.Appendf(nil, `{"topic":"telemetry/%s/%s","value":%d}`, device, m, v),
		})
	}
	return w
}

// withSeq sets the device seq of w.
func withSeq(w *bridge.Write, seq uint64) *bridge.Write {
	w.Seq, w.HasSeq = seq, true
	return w
}

// hold blocks the writer goroutine inside the Done of a write of device
// "hold" until release is called, so that writes submitted meanwhile are
// committed together in the next batch.
func hold(t testing.TB, s *Store) (release func()) {
	t.Helper()
	held, rel := make(chan struct{}), make(chan struct{})
	w := reading("hold", t0, 0, "x")
	w.Done = func(r bridge.Result) {
		close(held)
		<-rel
	}
	if err := s.Submit(w); err != nil {
		t.Fatalf("Submit: %v", err)
	}
	select {
	case <-held:
	case <-time.After(guard):
		t.Fatal("writer did not take the hold write")
	}
	var once atomic.Bool
	release = func() {
		if once.CompareAndSwap(false, true) {
			close(rel)
		}
	}
	t.Cleanup(release)
	return release
}

// eventually polls cond until it holds, failing after the guard.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(guard)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// scanAll returns every retained record.
func scanAll(t testing.TB, s *Store) []Record {
	t.Helper()
	var out []Record
	after, upTo := uint64(0), s.LastID()
	for after < upTo {
		recs, next, err := s.Scan(after, upTo, nil, 0)
		if err != nil {
			t.Fatalf("Scan: %v", err)
		}
		out = append(out, recs...)
		after = next
	}
	return out
}

// ids returns the ids of recs.
func ids(recs []Record) []uint64 {
	out := make([]uint64, len(recs))
	for i, r := range recs {
		out[i] = r.ID
	}
	return out
}

// idRange returns the ids from..to inclusive.
func idRange(from, to uint64) []uint64 {
	var out []uint64
	for id := from; id <= to; id++ {
		out = append(out, id)
	}
	return out
}

// fakeClock is an injectable clock for retention by age.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock(t time.Time) *fakeClock {
	c := new(fakeClock)
	c.ns.Store(t.UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time      { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Set(t time.Time)     { c.ns.Store(t.UnixNano()) }
func (c *fakeClock) Add(d time.Duration) { c.ns.Add(int64(d)) }
