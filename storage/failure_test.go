package storage

import (
	"bytes"
	"errors"
	"testing"

	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/telehub/telehub/bridge"
)

func TestFailedCommitMaxBytes(t *testing.T) {
	cfg := testConfig(t)
	cfg.NoFsync = false
	cfg.MaxBytes = 1 << 20
	s := openStore(t, cfg)
	big := bytes.Repeat([]byte("x"), 4096)
	var acked uint64
	var failure error
	for i := 0; failure == nil; i++ {
		if i > 10_000 {
			t.Fatal("MaxBytes never reached")
		}
		w := &bridge.Write{Device: "d1", Seen: t0, Seq: uint64(i + 1), HasSeq: true,
			Events: []bridge.Event{{Kind: bridge.KindTelemetry, Topic: "telemetry/d1/blob", Data: big}}}
		r := wait(t, submitAsync(t, s, w))
		if r.Err != nil {
			failure = r.Err
			break
		}
		if r.FirstID != acked+1 {
			t.Fatalf("FirstID %d, want %d", r.FirstID, acked+1)
		}
		acked = r.FirstID
	}
	if !errors.Is(failure, bolterrors.ErrMaxSizeReached) {
		t.Errorf("failure = %v, want ErrMaxSizeReached", failure)
	}
	if got := s.LastID(); got != acked {
		t.Errorf("LastID = %d after a failed commit, want %d", got, acked)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	cfg.MaxBytes = 0
	s = openStore(t, cfg)
	if got := ids(scanAll(t, s)); len(got) != int(acked) || got[len(got)-1] != acked {
		t.Fatalf("after reopening: %d events up to %v, want 1..%d", len(got), got[len(got)-1:], acked)
	}
	// The failed write's seq was not stored: a retry is not a duplicate.
	w := withSeq(reading("d1", t0, 1, "temp"), acked+1)
	if r := submitSync(t, s, w); r.Duplicate || r.FirstID != acked+1 {
		t.Errorf("retry of the failed write: %+v, want FirstID %d", r, acked+1)
	}
}

func TestFailedCommitClosedDB(t *testing.T) {
	cfg := testConfig(t)
	cfg.NoFsync = false
	var onCommit int
	cfg.OnCommit = func([]Record) { onCommit++ }
	s := openStore(t, cfg)
	submitSync(t, s, withSeq(reading("d1", t0, 1, "temp"), 1))
	release := hold(t, s) // event 2
	chans := []<-chan bridge.Result{
		submitAsync(t, s, withSeq(reading("d1", t0, 2, "temp"), 2)),
		submitAsync(t, s, reading("d2", t0, 2, "temp")),
		submitAsync(t, s, &bridge.Write{Device: "d3", Seen: t0}),
	}
	// Closing the file under the writer makes its next commit fail.
	if err := s.db.Close(); err != nil {
		t.Fatal(err)
	}
	release()
	for i, ch := range chans {
		if r := wait(t, ch); !errors.Is(r.Err, bolterrors.ErrDatabaseNotOpen) {
			t.Errorf("write %d: %+v, want the commit error", i, r)
		}
	}
	if onCommit != 2 {
		t.Errorf("OnCommit called %d times, want 2 (not for the failed batch)", onCommit)
	}
	if got := s.LastID(); got != 2 {
		t.Errorf("LastID = %d, want 2", got)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openStore(t, cfg)
	if got := ids(scanAll(t, s)); len(got) != 2 {
		t.Errorf("after reopening: events %v, want 1 2", got)
	}
	if _, _, err := s.Device("d2"); !errors.Is(err, ErrNotFound) {
		t.Errorf("device of the failed batch: %v, want ErrNotFound", err)
	}
	if r := submitSync(t, s, withSeq(reading("d1", t0, 2, "temp"), 2)); r.Duplicate || r.FirstID != 3 {
		t.Errorf("retry of the failed write: %+v, want FirstID 3", r)
	}
}
