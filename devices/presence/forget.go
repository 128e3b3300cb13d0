package presence

import "time"

// shrinkAbove is the map size above which the device map is made anew once
// forgetting has left it three quarters empty: a Go map keeps the memory
// of its largest size.
const shrinkAbove = 4096

// hold returns the state of device, reading it from Records when the
// Tracker does not hold it. l.mu must be held; it is released while
// Records is read. The state returned may be offline; its caller brings
// it online before releasing l.mu, so that it is never forgotten before
// its forget entry exists.
func (l *Tracker) hold(device string) *deviceState {
	for {
		if d := l.devices[device]; d != nil {
			return d
		}
		if l.records == nil {
			return l.add(&deviceState{id: device, lastHeard: neverHeard})
		}
		gen := l.forgotten
		l.mu.Unlock()
		r, found, err := l.records.Record(device)
		l.mu.Lock()
		if d := l.devices[device]; d != nil {
			return d // held by another caller meanwhile
		}
		if gen != l.forgotten {
			// A device was forgotten while the record was read: if it was
			// this one, the record read may predate its last events.
			continue
		}
		if err != nil {
			l.log.Error("stored presence not read: the device starts at session 1", "device", device, "err", err)
		}
		if err != nil || !found {
			return l.add(&deviceState{id: device, lastHeard: neverHeard})
		}
		r.ID = device
		return l.add(l.fromRecord(r))
	}
}

// add holds d. l.mu must be held.
func (l *Tracker) add(d *deviceState) *deviceState {
	l.devices[d.id] = d
	l.peak = max(l.peak, len(l.devices))
	return d
}

// forgetDue handles the forget entry at the head of the queue when it is
// due at rel and reports whether there was one. A device is forgotten when
// it is still offline since that entry and all its events are stored; one
// whose events are still on their way gets a new entry.
func (l *Tracker) forgetDue(rel time.Duration) bool {
	e, ok := l.offline.peek()
	if !ok || e.at+l.forgetAfter > rel {
		return false
	}
	l.offline.pop()
	d := e.d
	switch {
	case l.devices[d.id] != d || d.online || d.offlineAt != e.at:
		// Back online since, or offline again with a later entry.
	case d.next != d.turn || d.unstored > 0:
		d.offlineAt = rel
		l.offline.push(d, rel)
	default:
		delete(l.devices, d.id)
		l.forgotten++
	}
	return true
}

// nextForget returns when the head of the forget queue is due; ok is
// false when the queue is empty.
func (l *Tracker) nextForget() (at time.Duration, ok bool) {
	e, ok := l.offline.peek()
	return e.at + l.forgetAfter, ok
}

// shrink makes the device map anew when forgetting left it mostly empty.
// l.mu must be held.
func (l *Tracker) shrink() {
	if l.peak <= shrinkAbove || len(l.devices) > l.peak/4 {
		return
	}
	m := make(map[string]*deviceState, len(l.devices))
	for id, d := range l.devices {
		m[id] = d
	}
	l.devices, l.peak = m, len(m)
}

// forgetQueue holds the devices that went offline, oldest first: entries
// are pushed with the current time, so the queue is in time order.
type forgetQueue struct {
	items []forgetEntry
	head  int
}

// forgetEntry is a device that went offline at at.
type forgetEntry struct {
	d  *deviceState
	at time.Duration
}

func (q *forgetQueue) push(d *deviceState, at time.Duration) {
	q.items = append(q.items, forgetEntry{d: d, at: at})
}

func (q *forgetQueue) peek() (forgetEntry, bool) {
	if q.head == len(q.items) {
		return forgetEntry{}, false
	}
	return q.items[q.head], true
}

// pop drops the head; the slice is compacted once half of it is popped.
func (q *forgetQueue) pop() {
	q.items[q.head] = forgetEntry{}
	q.head++
	switch {
	case q.head == len(q.items):
		if cap(q.items) > shrinkAbove {
			q.items = nil
		} else {
			q.items = q.items[:0]
		}
		q.head = 0
	case q.head >= 1024 && q.head >= len(q.items)/2:
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items, q.head = q.items[:n], 0
	}
}
