package firmwaresim

import "time"

// Backoff computes reconnect delays: exponential growth from Min, capped at
// Max, with full jitter (a uniform draw between 0 and the capped value), so
// that devices dropped together do not reconnect together.
type Backoff struct {
	Min time.Duration // the cap of the first attempt's delay
	Max time.Duration // the largest delay
}

// Delay returns the delay before reconnect attempt n (0 for the first
// retry after a loss), given a uniform draw u in [0, 1).
func (b Backoff) Delay(attempt int, u float64) time.Duration {
	return time.Duration(u * float64(b.Ceiling(attempt)))
}

// Ceiling returns the capped exponential bound of attempt n: Min·2ⁿ, at
// most Max.
func (b Backoff) Ceiling(attempt int) time.Duration {
	c := b.Min
	for i := 0; i < attempt && c < b.Max; i++ {
		c *= 2
	}
	return min(c, b.Max)
}
