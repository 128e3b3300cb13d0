package presence

import (
	"time"

	"github.com/telehub/telehub/bridge"
)

// change is a presence event waiting to be submitted: the ticket-th
// change of its device.
type change struct {
	d      *deviceState
	ticket uint64
	p      bridge.Presence
	at     time.Time
}

// change returns the event of d's current state and gives it d's next
// ticket. l.mu must be held.
func (l *Tracker) change(d *deviceState, reason string, at time.Time) change {
	c := change{
		d:      d,
		ticket: d.next,
		p:      bridge.Presence{Online: d.online, Transport: d.transport, Session: d.session, Reason: reason},
		at:     at,
	}
	d.next++
	return c
}

// submit hands c to the Sink once the earlier changes of its device are
// submitted. l.mu must not be held: it is not held while the Sink runs,
// so a Sink that blocks holds up this device's changes only.
func (l *Tracker) submit(c change) {
	d := c.d
	l.mu.Lock()
	for d.turn != c.ticket {
		d.waiting++
		l.turns.Wait()
		d.waiting--
	}
	d.unstored++
	l.mu.Unlock()

	err := l.sink.Presence(d.id, c.p, c.at, func(r bridge.Result) { l.stored(d, r) })

	l.mu.Lock()
	d.turn++
	if err != nil {
		d.unstored-- // done is never called
	}
	if d.waiting > 0 {
		l.turns.Broadcast()
	}
	l.mu.Unlock()
	if err != nil {
		l.log.Warn("presence event not submitted", "device", d.id, "online", c.p.Online,
			"session", c.p.Session, "reason", c.p.Reason, "err", err)
	}
}

// stored is the done callback of d's presence events, on the Sink's
// goroutine: it does not block.
func (l *Tracker) stored(d *deviceState, r bridge.Result) {
	l.mu.Lock()
	d.unstored--
	l.mu.Unlock()
	if r.Err != nil {
		l.log.Warn("presence event not stored", "device", d.id, "err", r.Err)
	}
}
