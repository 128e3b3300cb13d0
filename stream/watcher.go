package stream

import (
	"sync"
	"sync/atomic"
)

// watcher is one connected SSE stream or WebSocket connection.
//
// Publish stages the frames of one commit for the watcher, then appends
// them to its backlog at once, so the writer never sees half a commit.
// Two goroutines may write the backlog to the connection, one at a time
// (wmu): a fan-out goroutine of the hub, which tries one non-blocking write
// of the whole backlog right after a commit (direct.go), and the watcher's
// own writer goroutine, which takes whatever the fan-out could not write
// (a full socket buffer, replays, heartbeats, errors) with blocking writes
// under the write timeout.
type watcher struct {
	format  format
	wake    chan struct{} // 1-buffered; a token means "look at the backlog"
	ping    atomic.Bool   // a heartbeat is due
	aborted atomic.Bool   // abort was called: write nothing more
	cut     func()        // fails the connection's writes; safe from any goroutine, never blocks
	valid   func() bool   // whether its credential still holds; nil: always
	revoked *revocation   // ends the stream when valid no longer holds

	// wmu is held by whichever goroutine writes to the connection; it is
	// taken before mu.
	wmu sync.Mutex
	// Guarded by wmu.
	direct     *directConn // non-blocking writes allowed; nil: none
	rest       []byte      // bytes a non-blocking write left unwritten
	restEvents int         // events in rest
	failed     error       // a non-blocking write failed
	spare      []*frame    // the backlog array the fan-out goroutine reuses

	shard  int  // the fan-out goroutine that writes to it; set by register
	queued bool // in its shard's ready list; guarded by the shard's mu

	mu      sync.Mutex
	backlog []*frame
	slow    bool // disconnect: the backlog was dropped

	// Guarded by Hub.mu.
	mark  uint64   // last record id staged, to stage once per record
	stage []*frame // frames of the commit being published
	subs  []*sub
	gone  bool // unregistered; no more subscriptions
}

// newWatcher returns a watcher of format f; cut must make the writes of
// its connection fail (see abort).
func newWatcher(f format, cut func()) *watcher {
	return &watcher{format: f, wake: make(chan struct{}, 1), cut: cut, revoked: newRevocation()}
}

// abort makes the connection's write in progress, if any, and every later
// one fail. It never blocks.
func (w *watcher) abort() {
	w.aborted.Store(true)
	w.cut()
}

// wakeUp makes the writer look at the backlog, without blocking.
func (w *watcher) wakeUp() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// flushStage appends the staged frames of a commit to the backlog; the
// caller then hands w to a fan-out goroutine or wakes it. A backlog
// already over hard before this commit marks the watcher slow, drops the
// backlog and aborts the connection, so that a write stuck on the slow
// peer fails now; one commit alone may exceed hard. Hub.mu is held.
func (w *watcher) flushStage(hard int) {
	w.mu.Lock()
	switch {
	case w.slow:
	case len(w.backlog) > hard:
		w.dropBacklog()
		w.abort()
	default:
		w.backlog = append(w.backlog, w.stage...)
	}
	w.mu.Unlock()
	w.stage = emptied(w.stage)
}

// setDirect sets the connection the fan-out goroutines may write to (nil:
// none), waiting for a write of theirs in progress.
func (w *watcher) setDirect(d *directConn) {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	w.direct = d
}

// pushControl appends a control frame and wakes the writer.
func (w *watcher) pushControl(f *frame) {
	w.mu.Lock()
	if !w.slow {
		w.backlog = append(w.backlog, f)
	}
	w.mu.Unlock()
	w.wakeUp()
}

// take returns the backlog, replacing it with spare; slow is set when the
// watcher was found too slow.
func (w *watcher) take(spare []*frame) (batch []*frame, slow bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.slow {
		return nil, true
	}
	batch, w.backlog = w.backlog, spare[:0]
	return batch, false
}

// overLimit marks the watcher slow when its backlog is over limit.
func (w *watcher) overLimit(limit int) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.slow || len(w.backlog) > limit {
		w.dropBacklog()
		return true
	}
	return false
}

// isSlow reports whether w was found too slow.
func (w *watcher) isSlow() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.slow
}

// dropBacklog marks w slow and releases its backlog. w.mu is held.
func (w *watcher) dropBacklog() {
	w.slow = true
	clear(w.backlog)
	w.backlog = nil
}
