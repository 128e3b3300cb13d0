package storage

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/telehub/telehub/bridge"
)

// TestSyncedBeforeOnCommitAndDone checks the order of a commit's callbacks:
// Synced (the fsync returned) with the last committed id, then OnCommit,
// then every Done; and no Synced for a commit that failed.
func TestSyncedBeforeOnCommitAndDone(t *testing.T) {
	cfg := testConfig(t)
	cfg.NoFsync = false
	var mu sync.Mutex
	var order []string
	note := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		order = append(order, fmt.Sprintf(format, args...))
	}
	cfg.Synced = func(last uint64) { note("synced %d", last) }
	cfg.OnCommit = func(recs []Record) { note("commit %d..%d", recs[0].ID, recs[len(recs)-1].ID) }
	s := openStore(t, cfg)

	w := reading("d1", t0, 1, "temp", "hum")
	done := make(chan bridge.Result, 1)
	w.Done = func(r bridge.Result) {
		note("done %d", r.FirstID)
		done <- r
	}
	if err := s.Submit(w); err != nil {
		t.Fatal(err)
	}
	wait(t, done)
	submitSync(t, s, reading("d2", t0, 2, "temp"))
	release := hold(t, s) // event 4
	failed := submitAsync(t, s, reading("d3", t0, 3, "temp"))
	if err := s.db.Close(); err != nil { // the next commit fails
		t.Fatal(err)
	}
	release()
	if r := wait(t, failed); !errors.Is(r.Err, bolterrors.ErrDatabaseNotOpen) {
		t.Fatalf("write after the file closed: %+v, want the commit error", r)
	}

	mu.Lock()
	defer mu.Unlock()
	want := []string{"synced 2", "commit 1..2", "done 1", "synced 3", "commit 3..3", "synced 4", "commit 4..4"}
	if !slices.Equal(order, want) {
		t.Errorf("callbacks %q, want %q", order, want)
	}
}
