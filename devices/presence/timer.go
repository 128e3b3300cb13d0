package presence

import (
	"container/heap"
	"time"

	"github.com/telehub/telehub/bridge"
)

// expireBatch is the most due deadlines and forget entries handled under
// one hold of the Tracker mutex, so that a mass timeout does not stall
// Heard for long.
const expireBatch = 512

// schedule gives an online device a deadline in the heap unless it has
// one; a due entry is checked against lastHeard then. l.mu must be held.
func (l *Tracker) schedule(d *deviceState) {
	if d.queued {
		return
	}
	d.queued = true
	heap.Push(&l.deadlines, deadline{at: d.lastHeard + l.timeout, dev: d})
	if l.deadlines[0].dev == d { // earlier than the timer is set for
		l.wakeTimer()
	}
}

// wakeTimer makes the timer goroutine look at its deadlines again.
func (l *Tracker) wakeTimer() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// run is the timer goroutine: it sleeps until the earliest deadline or
// forget entry and handles what is due.
func (l *Tracker) run() {
	defer close(l.done)
	timer := time.NewTimer(l.timeout)
	timer.Stop()
	defer timer.Stop()
	for {
		var due <-chan time.Time
		if wait, ok := l.expire(); ok {
			timer.Reset(wait)
			due = timer.C
		}
		select {
		case <-l.stop:
			return
		case <-l.wake:
		case <-due:
		}
	}
}

// expire handles everything that is due and returns the time until the
// next deadline or forget entry; ok is false when there is none. The
// timeouts' events are submitted without the mutex held.
func (l *Tracker) expire() (wait time.Duration, ok bool) {
	var changes []change
	for {
		var more bool
		changes, wait, ok, more = l.expireSome(l.now(), changes[:0])
		for i, c := range changes {
			l.submit(c)
			changes[i] = change{}
		}
		if !more {
			return wait, ok
		}
	}
}

// expireSome handles up to expireBatch due deadlines and forget entries,
// appending the timeouts' events to changes; more is true when it stopped
// with some still due.
func (l *Tracker) expireSome(now time.Time, changes []change) (_ []change, wait time.Duration, ok, more bool) {
	rel := l.rel(now)
	l.mu.Lock()
	defer l.mu.Unlock()
	defer l.shrink()
	for range expireBatch {
		switch {
		case len(l.deadlines) > 0 && l.deadlines[0].at <= rel:
			if c, timedOut := l.check(heap.Pop(&l.deadlines).(deadline).dev, now); timedOut {
				changes = append(changes, c)
			}
		case !l.forgetDue(rel):
			wait, ok = l.nextDue(rel)
			return changes, wait, ok, false
		}
	}
	return changes, 0, true, true
}

// nextDue returns the time until the earliest deadline or forget entry.
// l.mu must be held.
func (l *Tracker) nextDue(rel time.Duration) (wait time.Duration, ok bool) {
	next, ok := l.nextForget()
	if len(l.deadlines) > 0 && (!ok || l.deadlines[0].at < next) {
		next, ok = l.deadlines[0].at, true
	}
	return next - rel, ok
}

// check handles a device whose deadline came due: an offline device leaves
// the heap, one heard since gets a later deadline, any other times out and
// its offline event is returned. l.mu must be held.
func (l *Tracker) check(d *deviceState, now time.Time) (c change, timedOut bool) {
	d.queued = false
	if !d.online {
		return change{}, false
	}
	if d.lastHeard+l.timeout > l.rel(now) {
		l.schedule(d)
		return change{}, false
	}
	return l.goOffline(d, bridge.ReasonTimeout, now), true
}

// deadline is when a device times out unless heard since.
type deadline struct {
	at  time.Duration // since Tracker.epoch
	dev *deviceState
}

// deadlineHeap is a min-heap of deadlines (container/heap).
type deadlineHeap []deadline

func (h deadlineHeap) Len() int           { return len(h) }
func (h deadlineHeap) Less(i, j int) bool { return h[i].at < h[j].at }
func (h deadlineHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }

// Push appends x (a deadline); for container/heap.
func (h *deadlineHeap) Push(x any) { *h = append(*h, x.(deadline)) }

// Pop removes the last element; for container/heap.
func (h *deadlineHeap) Pop() any {
	old := *h
	n := len(old) - 1
	x := old[n]
	old[n] = deadline{}
	*h = old[:n]
	return x
}
