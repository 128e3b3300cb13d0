package bridge

import (
	"sync"
	"time"
)

// Bounds of the error rate limiter's memory.
const (
	// limiterMaxEntries caps the devices the limiter tracks at once. When
	// it is full of devices that are still being limited, errors of further
	// devices are suppressed until entries go idle.
	limiterMaxEntries = 1 << 16
	// limiterSweepEvery is how often, at most, the limiter prunes idle
	// entries.
	limiterSweepEvery = time.Minute
	// limiterFullSweepEvery is how often, at most, a full limiter prunes
	// when a new device needs an entry.
	limiterFullSweepEvery = time.Second
	// limiterIdleTTL is how long an entry that still counts suppressed
	// errors is kept after the device's last error.
	limiterIdleTTL = 10 * time.Minute
	// maxPace bounds the debt of a paced device, and so its wait: several
	// connections of one device cannot make each other wait longer.
	maxPace = time.Second
)

// bucket is a token bucket with a count of the events it refused.
type bucket struct {
	tokens     float64
	last       time.Time
	suppressed uint64
}

// refill adds the tokens earned since the last update, up to burst.
func (b *bucket) refill(now time.Time, rate, burst float64) {
	if elapsed := now.Sub(b.last).Seconds(); elapsed > 0 {
		b.tokens = min(burst, b.tokens+elapsed*rate)
		b.last = now
	}
}

// take spends a token when there is one; otherwise it counts a refusal.
// It returns whether the event may go out and the refusals counted since
// the last event that went out (reset when it does).
func (b *bucket) take() (bool, uint64) {
	if b.tokens >= 1 {
		b.tokens--
		n := b.suppressed
		b.suppressed = 0
		return true, n
	}
	b.suppressed++
	return false, b.suppressed
}

// limiter is a per-key token bucket: rate events per second, bursts of up
// to burst. One mutex guards one map; idle entries are pruned so that memory
// stays bounded.
type limiter struct {
	rate, burst float64
	maxEntries  int
	// failOpen lets the events of untracked keys through when the limiter
	// is full, instead of suppressing them.
	failOpen bool

	mu        sync.Mutex
	entries   map[string]bucket
	lastSweep time.Time
}

// newLimiter returns a limiter of rate events per second per key with the
// given burst.
func newLimiter(rate float64, burst int, maxEntries int) *limiter {
	return &limiter{rate: rate, burst: float64(burst), maxEntries: maxEntries, entries: make(map[string]bucket)}
}

// allow reports whether an event of key may go out at now, and how many of
// key's events were suppressed since the last one that went out (when
// allowed) or so far (when not). When the limiter is full of active keys, a
// new key's event is not tracked, and suppressed unless failOpen.
func (l *limiter) allow(key string, now time.Time) (bool, uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.entry(key, now)
	if !ok {
		return l.failOpen, 0
	}
	allowed, n := b.take()
	l.entries[key] = b
	return allowed, n
}

// reserve spends a token of key at now, going into debt when there is
// none, and returns how long the caller must wait for the token: 0 when
// there was one. The debt is bounded so that a wait is at most limit (or
// one token's time when that is longer). A key the full limiter cannot
// track never waits.
func (l *limiter) reserve(key string, now time.Time, limit time.Duration) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.entry(key, now)
	if !ok {
		return 0
	}
	b.tokens = max(b.tokens-1, -max(1, l.rate*limit.Seconds()))
	l.entries[key] = b
	if b.tokens >= 0 {
		return 0
	}
	return time.Duration(-b.tokens / l.rate * float64(time.Second))
}

// entry returns key's bucket refilled to now, a full one for a new key;
// ok is false when the limiter is full and key is not tracked. l.mu must
// be held.
func (l *limiter) entry(key string, now time.Time) (_ bucket, ok bool) {
	if now.Sub(l.lastSweep) >= limiterSweepEvery {
		l.sweep(now)
	}
	b, ok := l.entries[key]
	if !ok {
		if len(l.entries) >= l.maxEntries && now.Sub(l.lastSweep) >= limiterFullSweepEvery {
			l.sweep(now)
		}
		if len(l.entries) >= l.maxEntries {
			return bucket{}, false
		}
		b = bucket{tokens: l.burst, last: now}
	}
	b.refill(now, l.rate, l.burst)
	return b, true
}

// sweep deletes the entries that carry no information any more: a full
// bucket with nothing suppressed (the same as a new entry), or no event for
// limiterIdleTTL.
func (l *limiter) sweep(now time.Time) {
	l.lastSweep = now
	for key, b := range l.entries {
		idle := now.Sub(b.last)
		b.refill(now, l.rate, l.burst)
		if b.tokens >= l.burst && b.suppressed == 0 || idle >= limiterIdleTTL {
			delete(l.entries, key)
		}
	}
}

// len returns the number of tracked keys.
func (l *limiter) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.entries)
}
