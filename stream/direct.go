package stream

import (
	"runtime"
	"sync"
)

// The fan-out goroutines. After a commit, waking one writer goroutine per
// watcher would leave a hundred goroutines runnable for each event on a
// small machine, queued ahead of the goroutines that read devices and
// commit the next batch. Instead, a few goroutines (fanoutShards) write
// each commit's frames to every watcher whose socket takes them at once,
// with one non-blocking write each; a watcher's own goroutine runs only for
// what that write cannot do: a full socket buffer, a replay, a heartbeat,
// a failure.

// tryWriter is a connection that takes writes that never wait.
type tryWriter interface {
	// tryWrite writes what the connection takes of b now: n < len(b)
	// with a nil error when its buffer is full.
	tryWrite(b []byte) (n int, err error)
}

// directConn is how the fan-out goroutine writes to a watcher: the
// connection and how the stream frames a write.
type directConn struct {
	tryWriter
	chunked bool // each write is one chunk of an HTTP/1.1 chunked body
}

// appendWire appends to dst the bytes of one write of batch, as the
// watcher's sink would send them, and returns the events in batch.
func (d *directConn) appendWire(dst []byte, batch []*frame) (_ []byte, events int) {
	n := 0
	for _, f := range batch {
		n += len(f.b)
		if f.event {
			events++
		}
	}
	if d.chunked {
		dst = appendChunkSize(dst, n)
	}
	for _, f := range batch {
		dst = append(dst, f.b...)
	}
	if d.chunked {
		dst = append(dst, crlf...)
	}
	return dst, events
}

// fanoutShards is the number of fan-out goroutines: half the processors
// the runtime uses, at least one, so that the goroutines reading devices
// and committing the next batch always find a processor while a commit is
// being fanned out.
func fanoutShards() int {
	return max(1, runtime.GOMAXPROCS(0)/2)
}

// fanoutShard is the queue of one fan-out goroutine.
type fanoutShard struct {
	mu    sync.Mutex
	ready []*watcher    // watchers with new frames, each once
	kick  chan struct{} // 1-buffered; a token means "ready is not empty"
}

func newShards(n int) ([]*fanoutShard, [][]*watcher) {
	shards := make([]*fanoutShard, n)
	for i := range shards {
		shards[i] = &fanoutShard{kick: make(chan struct{}, 1)}
	}
	return shards, make([][]*watcher, n)
}

// handOff gives the watchers that Publish just appended frames to to their
// fan-out goroutines, or wakes their writer goroutines when those are not
// running. h.mu is held.
func (h *Hub) handOff(ws []*watcher) {
	if !h.started || h.closed {
		for _, w := range ws {
			w.wakeUp()
		}
		return
	}
	for _, w := range ws {
		h.buckets[w.shard] = append(h.buckets[w.shard], w)
	}
	for i, b := range h.buckets {
		if len(b) > 0 {
			h.shards[i].add(b)
			clear(b)
			h.buckets[i] = b[:0]
		}
	}
}

// add queues ws, each once, and kicks the shard's goroutine.
func (sh *fanoutShard) add(ws []*watcher) {
	sh.mu.Lock()
	for _, w := range ws {
		if !w.queued {
			w.queued = true
			sh.ready = append(sh.ready, w)
		}
	}
	sh.mu.Unlock()
	select {
	case sh.kick <- struct{}{}:
	default:
	}
}

// take returns the watchers queued, leaving spare's array for the next
// ones.
func (sh *fanoutShard) take(spare []*watcher) []*watcher {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	ready := sh.ready
	sh.ready = spare[:0]
	for _, w := range ready {
		w.queued = false
	}
	return ready
}

// fanoutLoop is a fan-out goroutine: it writes to the watchers queued on
// sh until Shutdown.
func (h *Hub) fanoutLoop(sh *fanoutShard) {
	defer h.wg.Done()
	var ready []*watcher
	var buf []byte
	for {
		select {
		case <-h.done:
			for _, w := range sh.take(nil) {
				w.wakeUp()
			}
			return
		case <-sh.kick:
		}
		ready = sh.take(ready)
		for _, w := range ready {
			buf = w.writeNow(h, buf)
		}
		clear(ready)
		if cap(buf) > keepBytes {
			buf = nil
		}
	}
}

// writeNow writes w's backlog with one non-blocking write, building the
// wire bytes in buf, which it returns for reuse. Whatever it cannot write,
// or cannot write now, it leaves to w's writer goroutine, which it wakes.
func (w *watcher) writeNow(h *Hub, buf []byte) []byte {
	if !w.wmu.TryLock() {
		w.wakeUp() // the writer goroutine is writing; it takes the backlog next
		return buf
	}
	buf, done := w.writeNowLocked(h, buf)
	w.wmu.Unlock()
	if !done {
		w.wakeUp()
	}
	return buf
}

// writeNowLocked is writeNow under w.wmu; done is false when the writer
// goroutine has something to do.
func (w *watcher) writeNowLocked(h *Hub, buf []byte) (_ []byte, done bool) {
	if w.direct == nil || w.rest != nil || w.failed != nil || w.aborted.Load() {
		return buf, false
	}
	batch, ok := w.takeFrames()
	if !ok {
		return buf, false
	}
	buf, events := w.direct.appendWire(buf[:0], batch)
	w.recycle(batch)
	n, err := w.direct.tryWrite(buf)
	switch {
	case err != nil:
		w.failed = err
		return buf, false
	case n < len(buf):
		w.rest = append([]byte(nil), buf[n:]...)
		w.restEvents = events
		return buf, false
	}
	if events > 0 {
		h.stats[w.format].delivered.Add(float64(events))
	}
	return buf, true
}

// takeFrames returns the backlog when it holds frames only (no replay) and
// w is not slow; false leaves it to the writer goroutine.
func (w *watcher) takeFrames() ([]*frame, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.slow || len(w.backlog) == 0 {
		return nil, false
	}
	for _, f := range w.backlog {
		if f.replay != nil {
			return nil, false
		}
	}
	batch := w.backlog
	w.backlog = w.spare[:0]
	return batch, true
}

// recycle keeps batch's array for the next takeFrames unless it grew large.
func (w *watcher) recycle(batch []*frame) { w.spare = emptied(batch) }
