package stream

import (
	"sync"
	"sync/atomic"
)

// watcher is one connected SSE stream or WebSocket connection.
//
// Publish appends to its backlog; its one writer goroutine takes the sealed
// part of the backlog and writes it. Entries appended by a Publish call are
// sealed (visible to the writer) when that call ends, so the writer never
// sees half a commit.
type watcher struct {
	format format
	wake   chan struct{} // 1-buffered; a token means "look at the backlog"
	ping   atomic.Bool   // a heartbeat is due
	cut    func()        // aborts the connection; safe from any goroutine

	mu      sync.Mutex
	backlog []*frame
	sealed  int    // backlog[:sealed] may be taken by the writer
	epoch   uint64 // last Publish epoch that appended here
	slow    bool   // disconnect: the backlog was dropped

	// Guarded by Hub.mu.
	mark uint64 // last record id appended, to append once per record
	subs []*sub
	gone bool // unregistered; no more subscriptions
}

// newWatcher returns a watcher of format f whose connection cut aborts.
func newWatcher(f format, cut func()) *watcher {
	return &watcher{format: f, wake: make(chan struct{}, 1), cut: cut}
}

// wakeUp makes the writer look at the backlog, without blocking.
func (w *watcher) wakeUp() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// push appends an event frame of Publish epoch. A backlog already over
// hard before this epoch's first append marks the watcher slow, drops the
// backlog and cuts the connection, so that a write stuck on the slow peer
// fails now. It reports whether this is the epoch's first touch of w
// (the caller then seals and wakes w once the epoch ends).
func (w *watcher) push(f *frame, epoch uint64, hard int) (first bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.slow {
		return false
	}
	if w.epoch != epoch {
		w.epoch, first = epoch, true
		if len(w.backlog) > hard {
			w.dropBacklog()
			w.cut()
			return true
		}
	}
	w.backlog = append(w.backlog, f)
	return first
}

// pushControl appends a control frame, seals it and wakes the writer.
// Callers hold Hub.mu, so no Publish is between appends.
func (w *watcher) pushControl(f *frame) {
	w.mu.Lock()
	if !w.slow {
		w.backlog = append(w.backlog, f)
		w.sealed = len(w.backlog)
	}
	w.mu.Unlock()
	w.wakeUp()
}

// seal makes everything appended so far visible to the writer.
func (w *watcher) seal() {
	w.mu.Lock()
	w.sealed = len(w.backlog)
	w.mu.Unlock()
}

// take returns the sealed backlog, leaving the rest (if a Publish is in
// progress) in a backlog built on spare. slow is set when the watcher was
// found too slow.
func (w *watcher) take(spare []*frame) (batch []*frame, slow bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.slow {
		return nil, true
	}
	batch = w.backlog[:w.sealed]
	rest := w.backlog[w.sealed:]
	w.backlog = append(spare[:0], rest...)
	clear(rest)
	w.sealed = 0
	return batch, false
}

// overLimit marks the watcher slow when its sealed backlog is over limit.
func (w *watcher) overLimit(limit int) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.slow || w.sealed > limit {
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
	w.backlog, w.sealed = nil, 0
}
