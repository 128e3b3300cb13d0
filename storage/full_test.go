package storage

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/telehub/telehub/bridge"
)

// logLines records the messages of the records logged at level or above.
type logLines struct {
	level slog.Level
	mu    sync.Mutex
	lines []string
}

func (l *logLines) Enabled(_ context.Context, lv slog.Level) bool { return lv >= l.level }
func (l *logLines) WithAttrs([]slog.Attr) slog.Handler            { return l }
func (l *logLines) WithGroup(string) slog.Handler                 { return l }
func (l *logLines) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	line := r.Level.String() + " " + r.Message
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "failures" || a.Key == "failures_not_logged" {
			line += " " + a.String()
		}
		return true
	})
	l.lines = append(l.lines, line)
	return nil
}

func (l *logLines) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

// fillUp writes 4 KiB readings of d1 until one fails, and returns the
// number acknowledged and the failure.
func fillUp(t *testing.T, s *Store) (acked int, failure error) {
	t.Helper()
	big := bytes.Repeat([]byte("x"), 4096)
	for i := 0; ; i++ {
		if i > 10_000 {
			t.Fatal("MaxBytes never reached")
		}
		w := &bridge.Write{Device: "d1", Seen: t0, Seq: uint64(i + 1), HasSeq: true,
			Events: []bridge.Event{{Kind: bridge.KindTelemetry, Topic: "telemetry/d1/blob", Data: big}}}
		if r := wait(t, submitAsync(t, s, w)); r.Err != nil {
			return acked, r.Err
		}
		acked++
	}
}

// TestDiskFull fills the file to MaxBytes: writes fail with ErrFull, a
// *bridge.Error of code storage_full; WriteErr says so; the failures are
// logged once per interval with their count; and when space returns the
// store writes again by itself, without a write having to come first.
func TestDiskFull(t *testing.T) {
	logs := &logLines{level: slog.LevelInfo}
	clock := newFakeClock(t0)
	cfg := testConfig(t)
	cfg.MaxBytes = 1 << 20
	cfg.Logger = slog.New(logs)
	cfg.Now = clock.Now
	cfg.TrimInterval = 5 * time.Millisecond // the probe's interval
	s := openStore(t, cfg)
	if err := s.WriteErr(); err != nil {
		t.Fatalf("WriteErr of a new store: %v", err)
	}

	acked, failure := fillUp(t, s)
	if !errors.Is(failure, ErrFull) {
		t.Fatalf("failure %v, want ErrFull", failure)
	}
	if be, ok := errors.AsType[*bridge.Error](failure); !ok || be.Code != bridge.CodeStorageFull {
		t.Errorf("failure %v is not a bridge error of code storage_full", failure)
	}
	// Pages the last commits freed may still take a write or two: larger
	// writes, until one fails. From then on no commit frees anything.
	big := func(i int) *bridge.Write {
		w := withSeq(reading("d2", t0, i, "temp"), uint64(i+1))
		w.Events[0].Data = bytes.Repeat([]byte("y"), 8192)
		return w
	}
	n := 0
	for ; wait(t, submitAsync(t, s, big(n))).Err == nil; n++ {
		acked++
		if n > 100 {
			t.Fatal("8 KiB writes never failed")
		}
	}
	if err := s.WriteErr(); !errors.Is(err, ErrFull) {
		t.Fatalf("WriteErr while full: %v, want ErrFull", err)
	}

	// 100 more refused writes, and the probes meanwhile: no more log
	// lines within the interval; one line after it, counting them.
	mark := len(logs.all())
	for i := range 100 {
		if r := wait(t, submitAsync(t, s, big(n+1+i))); !errors.Is(r.Err, ErrFull) {
			t.Fatalf("write %d while full: %+v, want ErrFull", i, r)
		}
	}
	if lines := logs.all()[mark:]; len(lines) != 0 {
		t.Fatalf("log lines while full within the interval: %q, want none", lines)
	}
	if err := s.WriteErr(); !errors.Is(err, ErrFull) {
		t.Fatalf("WriteErr while full: %v, want ErrFull", err)
	}
	clock.Add(failLogEvery)
	if r := wait(t, submitAsync(t, s, big(n+200))); !errors.Is(r.Err, ErrFull) {
		t.Fatalf("write while full: %+v", r)
	}
	lines := logs.all()[mark:]
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "ERROR ") || strings.HasSuffix(lines[0], "failures=1") {
		t.Errorf("log an interval later: %q, want one line counting the failures since the last", lines)
	}

	// Space returns: the cap is lifted on the writer goroutine, in the
	// Done of one more refused write, so that nothing races with bbolt.
	// No write follows: the store finds the space by itself.
	lifted := make(chan bridge.Result, 1)
	w := big(n + 300)
	w.Done = func(r bridge.Result) {
		s.db.MaxSize = 0
		lifted <- r
	}
	if err := s.Submit(w); err != nil {
		t.Fatal(err)
	}
	if r := wait(t, lifted); !errors.Is(r.Err, ErrFull) {
		t.Fatalf("write while full: %+v", r)
	}
	// The writer clears WriteErr, then logs the end of the failures: wait
	// for both, or the log is read in between.
	lastLine := func() string { lines := logs.all(); return lines[len(lines)-1] }
	eventually(t, "the store to find space again and say so", func() bool {
		return s.WriteErr() == nil && strings.HasPrefix(lastLine(), "INFO storage writes again")
	})
	if got := s.LastID(); got != uint64(acked) {
		t.Errorf("LastID %d after the probe, want %d: a probe stores no event", got, acked)
	}
	r := submitSync(t, s, big(n+400))
	if r.FirstID != uint64(acked+1) {
		t.Errorf("first write after space returned: %+v, want FirstID %d", r, acked+1)
	}
	if got := ids(scanAll(t, s)); !slices.Equal(got, idRange(1, uint64(acked+1))) {
		t.Errorf("events stored: %d, want the %d acknowledged before and the one after", len(got), acked+1)
	}
}

// TestFullErrorClassified: the errors of a full disk or quota are ErrFull,
// also when bbolt passed them on as text; other errors are not.
func TestFullErrorClassified(t *testing.T) {
	for _, tc := range []struct {
		err  error
		full bool
	}{
		{errors.New("file resize error: no space left on device"), true},
		{errors.New("write: disk quota exceeded"), true},
		{errors.New("input/output error"), false},
	} {
		if got := errors.Is(fullError(tc.err), ErrFull); got != tc.full {
			t.Errorf("%v: full %v, want %v", tc.err, got, tc.full)
		}
	}
}
