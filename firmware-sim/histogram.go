package firmwaresim

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// Histogram buckets: values in microseconds, each power of two split into
// 1<<subBits buckets, so a quantile is off by at most 1/16 (6 %).
const (
	subBits    = 4
	subBuckets = 1 << subBits
	maxExp     = 40 // 2^40 µs is about 12.7 days
	numBuckets = (maxExp + 1) * subBuckets
)

// Histogram records durations from many goroutines without locks or
// allocation and answers quantiles with a relative error under 7 %. The
// zero value is ready to use.
type Histogram struct {
	counts [numBuckets]atomic.Uint64
	total  atomic.Uint64
	maxUS  atomic.Uint64
}

// Record adds one duration; negative ones count as 0.
func (h *Histogram) Record(d time.Duration) {
	us := uint64(max(d, 0) / time.Microsecond)
	h.counts[bucketOf(us)].Add(1)
	h.total.Add(1)
	for {
		m := h.maxUS.Load()
		if us <= m || h.maxUS.CompareAndSwap(m, us) {
			return
		}
	}
}

// Count returns the number of recorded durations.
func (h *Histogram) Count() uint64 { return h.total.Load() }

// Max returns the largest recorded duration, to the microsecond.
func (h *Histogram) Max() time.Duration { return time.Duration(h.maxUS.Load()) * time.Microsecond }

// Quantile returns the duration below which a fraction q of the recorded
// ones fall (the upper edge of that bucket, at most Max); 0 when empty.
func (h *Histogram) Quantile(q float64) time.Duration {
	total := h.total.Load()
	if total == 0 {
		return 0
	}
	rank := uint64(q*float64(total) + 0.5)
	rank = max(1, min(rank, total))
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			return min(time.Duration(bucketUpper(i))*time.Microsecond, h.Max())
		}
	}
	return h.Max()
}

// bucketOf returns the bucket of a value: values below subBuckets have a
// bucket each; above, the exponent picks a group and the next subBits bits
// below the leading one pick the bucket in it.
func bucketOf(v uint64) int {
	if v < subBuckets {
		return int(v)
	}
	exp := bits.Len64(v) - 1 // >= subBits
	if exp > maxExp {
		return numBuckets - 1
	}
	sub := (v >> (exp - subBits)) & (subBuckets - 1)
	return (exp-subBits+1)*subBuckets + int(sub)
}

// bucketUpper returns the largest value that falls in bucket i.
func bucketUpper(i int) uint64 {
	if i < subBuckets {
		return uint64(i)
	}
	group, sub := i/subBuckets, uint64(i%subBuckets)
	exp := group + subBits - 1
	width := uint64(1) << (exp - subBits)
	return (1 << exp) + (sub+1)*width - 1
}

// merge adds the durations recorded in o to h. o should not be recorded
// into meanwhile, or the result mixes two moments.
func (h *Histogram) merge(o *Histogram) {
	for i := range o.counts {
		if n := o.counts[i].Load(); n > 0 {
			h.counts[i].Add(n)
		}
	}
	h.total.Add(o.total.Load())
	for {
		m, om := h.maxUS.Load(), o.maxUS.Load()
		if om <= m || h.maxUS.CompareAndSwap(m, om) {
			return
		}
	}
}
