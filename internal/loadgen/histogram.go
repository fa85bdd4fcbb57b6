package loadgen

import (
	"math"
	"math/bits"
	"time"
)

// subBits sets the histogram's precision: every power of two is split into 2^subBits linear buckets,
// so a recorded value is reported within 1/2^subBits (under 0.8%) of its true value.
const subBits = 7

const (
	subCount   = 1 << subBits
	maxBuckets = (64 - subBits) * subCount // bucketOf(math.MaxInt64) + 1
)

// Histogram counts durations in log-linear buckets (the HDR histogram layout): values below
// 2^subBits nanoseconds exactly, larger ones with a relative error under 2^-subBits. Its memory is
// fixed (about 58 KiB) whatever the number of values, so a long run stays bounded.
//
// The zero value is ready to use. A Histogram is not safe for concurrent use; give each goroutine
// its own and Merge them.
type Histogram struct {
	counts   []uint64 // allocated on first Record
	n        uint64
	sum      float64 // nanoseconds
	min, max int64
}

// bucketOf maps a non-negative value to its bucket index.
func bucketOf(v int64) int {
	if v < subCount {
		return int(v)
	}
	shift := bits.Len64(uint64(v)) - subBits - 1 // keep the top subBits+1 bits
	mant := int(uint64(v) >> uint(shift))        // in [subCount, 2*subCount)
	return subCount + shift*subCount + (mant - subCount)
}

// bucketHigh is the largest value that falls in bucket i.
func bucketHigh(i int) int64 {
	if i < subCount {
		return int64(i)
	}
	shift := (i - subCount) / subCount
	mant := int64(subCount + (i-subCount)%subCount)
	high := (mant+1)<<uint(shift) - 1
	if high < 0 { // the last bucket of the top power of two
		return math.MaxInt64
	}
	return high
}

// Record adds one duration; negative durations (clock skew between hosts) count as zero.
func (h *Histogram) Record(d time.Duration) {
	v := int64(d)
	if v < 0 {
		v = 0
	}
	if h.counts == nil {
		h.counts = make([]uint64, maxBuckets)
	}
	h.counts[bucketOf(v)]++
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.n++
	h.sum += float64(v)
}

// Merge adds every value recorded in o to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.n == 0 {
		return
	}
	if h.counts == nil {
		h.counts = make([]uint64, maxBuckets)
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	h.n += o.n
	h.sum += o.sum
}

// Count is the number of recorded values.
func (h *Histogram) Count() uint64 { return h.n }

// Max is the largest recorded value (exact), 0 when empty.
func (h *Histogram) Max() time.Duration { return time.Duration(h.max) }

// Min is the smallest recorded value (exact), 0 when empty.
func (h *Histogram) Min() time.Duration { return time.Duration(h.min) }

// Mean is the average of the recorded values (exact), 0 when empty.
func (h *Histogram) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.sum / float64(h.n))
}

// Quantile returns the value at quantile q in [0, 1]: the upper edge of the bucket holding the
// ceil(q·n)-th smallest value, clamped to the exact maximum. It returns 0 when empty; q outside
// [0, 1] is clamped.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	switch {
	case q <= 0 || math.IsNaN(q):
		return time.Duration(h.min)
	case q >= 1:
		return time.Duration(h.max)
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	if rank == 0 {
		rank = 1
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			v := bucketHigh(i)
			if v > h.max {
				v = h.max
			}
			if v < h.min {
				v = h.min
			}
			return time.Duration(v)
		}
	}
	return time.Duration(h.max)
}

// Summary is a histogram's figures in milliseconds, the unit the summaries print.
type Summary struct {
	Count uint64  `json:"count"`
	Min   float64 `json:"min_ms"`
	Mean  float64 `json:"mean_ms"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	Max   float64 `json:"max_ms"`
}

// Summarize returns h's figures in milliseconds.
func (h *Histogram) Summarize() Summary {
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	return Summary{Count: h.n, Min: ms(h.Min()), Mean: ms(h.Mean()), P50: ms(h.Quantile(0.50)),
		P90: ms(h.Quantile(0.90)), P99: ms(h.Quantile(0.99)), Max: ms(h.Max())}
}
