package devices

import "time"

// pause waits d on *timer, made on the first wait and reused after, so
// that a connection slowed down by its rate limit keeps one timer. It
// returns false when stop or done is closed first (either may be nil).
// Only the connection's read goroutine may use *timer.
func pause(timer **time.Timer, d time.Duration, stop, done <-chan struct{}) bool {
	if *timer == nil {
		*timer = time.NewTimer(d)
	} else {
		(*timer).Reset(d) // it fired or was stopped: its channel is empty (Go 1.23 timers)
	}
	select {
	case <-(*timer).C:
		return true
	case <-stop:
	case <-done:
	}
	(*timer).Stop()
	return false
}
