package firmwaresim

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestBackoffCeiling(t *testing.T) {
	b := Backoff{Min: 100 * time.Millisecond, Max: 5 * time.Second}
	tests := []struct {
		attempt int
		want    time.Duration
	}{
		{0, 100 * time.Millisecond},
		{1, 200 * time.Millisecond},
		{3, 800 * time.Millisecond},
		{5, 3200 * time.Millisecond},
		{6, 5 * time.Second},
		{1000, 5 * time.Second},
	}
	for _, tt := range tests {
		if got := b.Ceiling(tt.attempt); got != tt.want {
			t.Errorf("Ceiling(%d) = %v, want %v", tt.attempt, got, tt.want)
		}
	}
}

func TestBackoffDelayBoundsAndJitter(t *testing.T) {
	b := Backoff{Min: 100 * time.Millisecond, Max: 5 * time.Second}
	rng := rand.New(rand.NewPCG(1, 2))
	for attempt := range 12 {
		ceiling := b.Ceiling(attempt)
		lo, hi := ceiling, time.Duration(0)
		for range 1000 {
			d := b.Delay(attempt, rng.Float64())
			if d < 0 || d > ceiling {
				t.Fatalf("Delay(%d) = %v outside [0, %v]", attempt, d, ceiling)
			}
			lo, hi = min(lo, d), max(hi, d)
		}
		// full jitter: the draws cover most of [0, ceiling]
		if lo > ceiling/10 || hi < ceiling*9/10 {
			t.Fatalf("attempt %d: delays in [%v, %v], want spread over [0, %v]", attempt, lo, hi, ceiling)
		}
	}
	if d := b.Delay(3, 0); d != 0 {
		t.Fatalf("Delay with u=0 = %v, want 0", d)
	}
}

func TestBackoffZeroMin(t *testing.T) {
	b := Backoff{Max: time.Second}
	if got := b.Delay(50, 0.99); got != 0 {
		t.Fatalf("Delay with Min 0 = %v, want 0", got)
	}
}
