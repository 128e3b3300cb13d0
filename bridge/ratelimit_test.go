package bridge

import (
	"strconv"
	"testing"
	"time"
)

func TestLimiterTokenBucket(t *testing.T) {
	tests := []struct {
		name       string
		rate       float64
		burst      int
		steps      []time.Duration // time of each event since the start
		allowed    []bool
		suppressed []uint64
	}{
		{
			name: "burst then rate", rate: 1, burst: 3,
			steps:      []time.Duration{0, 0, 0, 0, time.Second, time.Second, 3 * time.Second},
			allowed:    []bool{true, true, true, false, true, false, true},
			suppressed: []uint64{0, 0, 0, 1, 1, 1, 1},
		},
		{
			name: "fast rate", rate: 10, burst: 1,
			steps:      []time.Duration{0, 50 * time.Millisecond, 100 * time.Millisecond, 150 * time.Millisecond},
			allowed:    []bool{true, false, true, false},
			suppressed: []uint64{0, 1, 1, 1},
		},
		{
			name: "refill capped at burst", rate: 1, burst: 2,
			steps:      []time.Duration{0, time.Hour, time.Hour, time.Hour},
			allowed:    []bool{true, true, true, false},
			suppressed: []uint64{0, 0, 0, 1},
		},
		{
			name: "clock going back earns nothing", rate: 1, burst: 1,
			steps:      []time.Duration{10 * time.Second, 0, 5 * time.Second, 11 * time.Second},
			allowed:    []bool{true, false, false, true},
			suppressed: []uint64{0, 1, 2, 2},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLimiter(tt.rate, tt.burst, 10)
			for i, d := range tt.steps {
				ok, n := l.allow("k", fixedNow.Add(d))
				if ok != tt.allowed[i] || n != tt.suppressed[i] {
					t.Errorf("step %d (+%v): allow = %v, %d; want %v, %d", i, d, ok, n, tt.allowed[i], tt.suppressed[i])
				}
			}
		})
	}
}

func TestLimiterPrunesIdleEntries(t *testing.T) {
	l := newLimiter(1, 2, 1000)
	l.allow("x", fixedNow) // the first call sweeps an empty map
	for i := range 100 {
		l.allow("dev"+strconv.Itoa(i), fixedNow)
	}
	for range 3 {
		l.allow("noisy", fixedNow) // ends with one suppressed
	}
	if n := l.len(); n != 102 {
		t.Fatalf("len = %d, want 102", n)
	}
	// a minute later every bucket is full again: only "noisy" still has a
	// count of suppressed errors to report
	l.allow("late", fixedNow.Add(limiterSweepEvery))
	if n := l.len(); n != 2 {
		t.Errorf("after a sweep len = %d, want 2 (noisy and late)", n)
	}
	if ok, n := l.allow("noisy", fixedNow.Add(limiterSweepEvery)); !ok || n != 1 {
		t.Errorf("noisy: allow = %v, %d; want true, 1", ok, n)
	}
	l.allow("noisy", fixedNow.Add(limiterSweepEvery))
	l.allow("noisy", fixedNow.Add(limiterSweepEvery)) // suppressed again
	// entries with a pending count go after limiterIdleTTL
	l.allow("other", fixedNow.Add(limiterSweepEvery+limiterIdleTTL))
	if n := l.len(); n != 1 {
		t.Errorf("after the idle TTL len = %d, want 1", n)
	}
}

func TestLimiterBounded(t *testing.T) {
	const max = 8
	l := newLimiter(1, 1, max)
	now := fixedNow
	for i := range max {
		l.allow("dev"+strconv.Itoa(i), now)
		l.allow("dev"+strconv.Itoa(i), now) // suppressed: the entry must stay
	}
	if ok, n := l.allow("new", now); ok || n != 0 {
		t.Errorf("new key in a full limiter: allow = %v, %d; want false, 0", ok, n)
	}
	if n := l.len(); n != max {
		t.Errorf("len = %d, want %d", n, max)
	}
	// once the old entries are idle, a new key gets in again
	later := now.Add(limiterIdleTTL)
	if ok, _ := l.allow("new", later); !ok {
		t.Error("new key refused after the old entries went idle")
	}
	if n := l.len(); n > max {
		t.Errorf("len = %d, over the bound %d", n, max)
	}
}

func TestLimiterFullFailOpen(t *testing.T) {
	for _, failOpen := range []bool{false, true} {
		l := newLimiter(1, 1, 1)
		l.failOpen = failOpen
		if ok, _ := l.allow("a", fixedNow); !ok {
			t.Fatal("first key refused")
		}
		if ok, _ := l.allow("b", fixedNow); ok != failOpen {
			t.Errorf("failOpen %v: untracked key allowed = %v", failOpen, ok)
		}
		if l.len() != 1 {
			t.Errorf("untracked key was tracked: %d entries", l.len())
		}
	}
}
