package stream

import (
	"errors"
	"fmt"
	"os"
)

// errAborted: the watcher's connection was cut (too slow, or Shutdown ran
// out of time).
var errAborted = errors.New("watcher connection cut")

// sink is a watcher's connection as its writer goroutine sees it.
type sink interface {
	// write sends bufs, in order, with one write and one flush under a
	// fresh write deadline.
	write(bufs [][]byte) error
	// writeRaw sends b, bytes already framed for the connection (what a
	// non-blocking write left), under a fresh write deadline.
	writeRaw(b []byte) error
	// direct returns the connection for the fan-out goroutine's
	// non-blocking writes, or nil when it takes none.
	direct() *directConn
}

// end says why a watcher's writer loop ended.
type end uint8

const (
	endNone     end = iota // keep going
	endGone                // the client went away
	endShutdown            // the hub is shutting down
	endSlow                // the watcher did not keep up
	endError               // a write or a replay failed
	endRevoked             // the watcher's credential was revoked
)

// writer is the state of a watcher's writer goroutine.
type writer struct {
	h       *Hub
	w       *watcher
	s       sink
	bufs    [][]byte // the next write
	events  int      // events in bufs
	wrote   int      // frames the last round took from the backlog
	spare   []*frame // the backlog array to reuse
	scratch []byte   // replayed events being encoded
}

// Buffers larger than this are dropped after use rather than kept by an
// idle watcher.
const (
	keepFrames = 1024
	keepBytes  = 64 << 10
)

// serve runs w's writer loop on the calling goroutine until the client goes
// (gone is closed), the hub shuts down, w is too slow, or a write fails.
// It then stops the fan-out goroutines' writes to the connection, so that
// the caller may write a last frame (finish). The caller lets them write
// (w.setDirect) before, on the goroutine that set the connection up: what
// that takes would otherwise grow the stack of an idle watcher's goroutine
// for good. serve's own frame stays small for the same reason: a parked
// SSE watcher's goroutine fits in the smallest stack.
func (h *Hub) serve(w *watcher, s sink, gone <-chan struct{}) (end, error) {
	wr := writer{h: h, w: w, s: s}
	for {
		e, err := endNone, error(nil)
		select {
		case <-gone:
			e = endGone
		case <-h.done:
			e = endShutdown
		case <-w.revoked.ch:
			e = endRevoked
		case <-w.wake:
			e, err = wr.round()
		}
		if e != endNone {
			if e == endSlow {
				h.stats[w.format].slow.Inc()
			}
			return wr.finish(e, err)
		}
	}
}

// round writes the whole backlog and the heartbeat if due, then applies
// the slow-consumer rule. A round that replayed from the log skips the rule:
// the events held during a replay are not a sign of a slow connection.
//
// The rule measures the backlog against the round's own write: a backlog
// over QueueLimit is slow only when it is also larger than what the round
// just wrote, that is when the watcher fell further behind while it took
// the write. A watcher that drains as fast as the hub writes to it ends
// each round with no more than the events that arrived while it read the
// last batch, which shrinks as long as it keeps up; under a flood those can
// be many more than QueueLimit without the watcher being slow. The hard
// bound (Publish: four times QueueLimit before a commit) still caps memory.
func (wr *writer) round() (end, error) {
	wr.w.wmu.Lock()
	defer wr.w.wmu.Unlock()
	batch, slow := wr.w.take(wr.spare)
	if slow {
		return endSlow, ErrSlowWatcher
	}
	wr.wrote = len(batch)
	replayed, err := wr.deliver(batch, wr.w.ping.Swap(false))
	wr.recycle(batch)
	if err != nil && wr.w.isSlow() {
		return endSlow, ErrSlowWatcher // Publish cut the connection
	}
	if errors.Is(err, os.ErrDeadlineExceeded) && !wr.w.aborted.Load() {
		// The peer did not take one write within WriteTimeout.
		return endSlow, fmt.Errorf("%w: %w", ErrSlowWatcher, err)
	}
	if err != nil {
		return endError, err
	}
	if !replayed && wr.w.overLimit(max(wr.h.cfg.QueueLimit, wr.wrote)) {
		return endSlow, ErrSlowWatcher
	}
	return endNone, nil
}

// deliver writes batch, running its replays in place, and a ping when due.
// Frames between replays go out in one write.
func (wr *writer) deliver(batch []*frame, ping bool) (replayed bool, err error) {
	if err := wr.leftover(); err != nil {
		return false, err
	}
	for _, f := range batch {
		if f.replay == nil {
			wr.add(f)
			continue
		}
		replayed = true
		if err := wr.flush(); err != nil {
			return true, err
		}
		if err := wr.replay(f.replay); err != nil {
			return true, err
		}
	}
	if ping {
		wr.bufs = append(wr.bufs, wr.w.format.ping())
	}
	return replayed, wr.flush()
}

// finish stops the fan-out goroutines' writes to the connection and
// completes what their last write left, so that the caller's last frame
// (the end of the SSE body, a WebSocket close) starts where a frame ends.
// Failing that, the stream ends as a failed write: no last frame.
func (wr *writer) finish(e end, err error) (end, error) {
	w := wr.w
	w.wmu.Lock()
	defer w.wmu.Unlock()
	w.direct = nil
	if w.rest == nil || e == endError {
		return e, err
	}
	if lerr := wr.leftover(); lerr != nil {
		return endError, lerr
	}
	return e, err
}

// leftover writes what the fan-out goroutine's non-blocking write left
// unwritten, or returns the error that write met. w.wmu is held.
func (wr *writer) leftover() error {
	w := wr.w
	if w.failed != nil {
		return w.failed
	}
	if w.rest == nil {
		return nil
	}
	err := errAborted
	if !w.aborted.Load() {
		err = wr.s.writeRaw(w.rest)
	}
	if err == nil && w.restEvents > 0 {
		wr.h.stats[w.format].delivered.Add(float64(w.restEvents))
	}
	w.rest, w.restEvents = nil, 0
	return err
}

// add queues f for the next write.
func (wr *writer) add(f *frame) {
	wr.bufs = append(wr.bufs, f.b)
	if f.event {
		wr.events++
	}
}

// flush writes the queued buffers, if any, and counts their events.
func (wr *writer) flush() error {
	if len(wr.bufs) == 0 {
		return nil
	}
	err := errAborted
	if !wr.w.aborted.Load() {
		err = wr.s.write(wr.bufs)
	}
	if err == nil && wr.events > 0 {
		wr.h.stats[wr.w.format].delivered.Add(float64(wr.events))
	}
	clear(wr.bufs)
	wr.bufs, wr.events = wr.bufs[:0], 0
	if cap(wr.bufs) > keepFrames {
		wr.bufs = nil
	}
	return err
}

// recycle keeps batch's array for the next take unless it grew large.
func (wr *writer) recycle(batch []*frame) { wr.spare = emptied(batch) }

// emptied returns batch emptied, its references dropped, to be reused, or
// nil when it grew too large for an idle watcher to keep.
func emptied(batch []*frame) []*frame {
	clear(batch)
	if cap(batch) > keepFrames {
		return nil
	}
	return batch[:0]
}
