package commands

import "time"

// Clock is the time source of the expiry heap.
type Clock interface {
	Now() time.Time
	// NewTimer returns a stopped timer.
	NewTimer() Timer
}

// Timer is a one-shot timer that can be reset.
type Timer interface {
	C() <-chan time.Time
	// ResetAt arms the timer to fire at t (at once when t has passed),
	// dropping an earlier arming.
	ResetAt(t time.Time)
	Stop()
}

// realClock is the wall clock.
type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) NewTimer() Timer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return realTimer{t}
}

type realTimer struct{ t *time.Timer }

func (r realTimer) C() <-chan time.Time { return r.t.C }
func (r realTimer) ResetAt(t time.Time) { r.t.Reset(time.Until(t)) }
func (r realTimer) Stop()               { r.t.Stop() }
