package firmwaresim

import (
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestHistogramQuantiles(t *testing.T) {
	var h Histogram
	if h.Quantile(0.5) != 0 || h.Count() != 0 {
		t.Fatal("empty histogram not zero")
	}
	rng := rand.New(rand.NewPCG(5, 5))
	var all []time.Duration
	for range 20000 {
		d := time.Duration(rng.ExpFloat64() * float64(3*time.Millisecond))
		all = append(all, d)
		h.Record(d)
	}
	slices.Sort(all)
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		exact := all[int(q*float64(len(all)))-1]
		got := h.Quantile(q)
		if rel := float64(got-exact) / float64(exact); rel < -0.07 || rel > 0.07 {
			t.Errorf("q%v = %v, exact %v (%.1f%% off)", q, got, exact, rel*100)
		}
	}
	if h.Max() < all[len(all)-1]-time.Microsecond || h.Quantile(1) != h.Max() {
		t.Errorf("max %v, q1 %v, want %v", h.Max(), h.Quantile(1), all[len(all)-1])
	}
}

func TestHistogramEdges(t *testing.T) {
	tests := []struct {
		name string
		in   time.Duration
		want time.Duration
	}{
		{"negative counts as zero", -time.Second, 0},
		{"sub-microsecond", 300 * time.Nanosecond, 0},
		{"exact small", 7 * time.Microsecond, 7 * time.Microsecond},
		{"huge clamps to max", 100 * 24 * time.Hour, 100 * 24 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h Histogram
			h.Record(tt.in)
			if got := h.Quantile(0.5); got != tt.want.Truncate(time.Microsecond) {
				t.Fatalf("Quantile = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestBucketMonotonic(t *testing.T) {
	prev := -1
	for v := uint64(0); v < 1<<22; v += 1 + v/64 {
		b := bucketOf(v)
		if b < prev {
			t.Fatalf("bucketOf(%d) = %d below %d", v, b, prev)
		}
		if up := bucketUpper(b); up < v {
			t.Fatalf("bucketUpper(%d) = %d below value %d", b, up, v)
		}
		prev = b
	}
}

func TestHistogramConcurrent(t *testing.T) {
	var h Histogram
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 1000 {
				h.Record(time.Duration(g*1000+i) * time.Microsecond)
			}
		})
	}
	wg.Wait()
	if h.Count() != 4000 || h.Max() != 3999*time.Microsecond {
		t.Fatalf("count %d max %v", h.Count(), h.Max())
	}
}

func BenchmarkHistogramRecord(b *testing.B) {
	var h Histogram
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		d := time.Duration(0)
		for pb.Next() {
			d += 997 * time.Nanosecond
			h.Record(d % (50 * time.Millisecond))
		}
	})
}
