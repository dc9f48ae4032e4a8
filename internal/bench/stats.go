package bench

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Percentile returns the nearest-rank q-quantile (0 < q <= 1) of sorted,
// which must be sorted ascending: the smallest value v such that at least
// q of the values are <= v. It returns 0 for an empty slice.
func Percentile(sorted []int64, q float64) int64 {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[rankIndex(len(sorted), q)]
}

// rankIndex returns the 0-based index of the nearest-rank q-quantile of n
// values.
func rankIndex(n int, q float64) int {
	r := int(math.Ceil(q*float64(n))) - 1
	return min(max(r, 0), n-1)
}

// Histogram records non-negative durations (nanoseconds) in log-linear
// buckets: exact below 128 ns, then 64 buckets per power of two, so a
// quantile is off by at most 1/64 (1.6 %) of its value. The minimum, the
// maximum and the mean are exact. Values of 2^40 ns (18 minutes) or more
// share the last bucket. A Histogram is not safe for concurrent use; give
// each goroutine its own and Merge them.
type Histogram struct {
	counts [numBuckets]uint32
	n      int64
	sum    int64
	min    int64
	max    int64
}

const (
	subBits    = 6                                  // 64 sub-buckets per octave
	maxBits    = 40                                 // values up to 2^40 ns
	numBuckets = (maxBits - subBits + 1) << subBits // index of 2^40-1 is 33*64+127
)

// bucketOf returns the bucket index of v >= 0.
func bucketOf(v int64) int {
	if v < 2<<subBits {
		return int(max(v, 0))
	}
	l := bits.Len64(uint64(v))
	if l > maxBits {
		return numBuckets - 1
	}
	shift := l - subBits - 1
	return shift<<subBits + int(v>>shift)
}

// bucketRange returns the lowest value of bucket i and its width.
func bucketRange(i int) (low, width int64) {
	if i < 2<<subBits {
		return int64(i), 1
	}
	shift := i>>subBits - 1
	m := int64(i - shift<<subBits)
	return m << shift, 1 << shift
}

// Record adds one value.
func (h *Histogram) Record(v int64) {
	if v < 0 {
		v = 0
	}
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.n++
	h.sum += v
	h.counts[bucketOf(v)]++
}

// Merge adds o's values to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.n == 0 {
		return
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	h.max = max(h.max, o.max)
	h.n += o.n
	h.sum += o.sum
	for i, c := range o.counts {
		h.counts[i] += c
	}
}

// Count returns how many values were recorded.
func (h *Histogram) Count() int64 { return h.n }

// Max returns the largest value recorded (exact).
func (h *Histogram) Max() int64 { return h.max }

// Min returns the smallest value recorded (exact).
func (h *Histogram) Min() int64 { return h.min }

// Mean returns the mean of the values (exact).
func (h *Histogram) Mean() float64 {
	if h.n == 0 {
		return 0
	}
	return float64(h.sum) / float64(h.n)
}

// Quantile returns the nearest-rank q-quantile, to within 1.6 %: the
// middle of the bucket holding it, clamped to the exact minimum and
// maximum.
func (h *Histogram) Quantile(q float64) int64 {
	if h.n == 0 {
		return 0
	}
	rank := int64(rankIndex(int(h.n), q)) + 1
	var seen int64
	for i, c := range h.counts {
		seen += int64(c)
		if seen >= rank {
			low, width := bucketRange(i)
			return min(max(low+width/2, h.min), h.max)
		}
	}
	return h.max
}

// Summary is the usual digest of a latency distribution.
type Summary struct {
	Count                    int64
	Min, P50, P90, P99, P999 time.Duration
	Max                      time.Duration
	Mean                     time.Duration
}

// Summary returns h's digest.
func (h *Histogram) Summary() Summary {
	return Summary{
		Count: h.n,
		Min:   time.Duration(h.min),
		P50:   time.Duration(h.Quantile(0.50)),
		P90:   time.Duration(h.Quantile(0.90)),
		P99:   time.Duration(h.Quantile(0.99)),
		P999:  time.Duration(h.Quantile(0.999)),
		Max:   time.Duration(h.max),
		Mean:  time.Duration(h.Mean()),
	}
}

// MarshalText encodes h on one line (for the scale workers' reports):
// `n sum min max i:c i:c ...` with only the non-empty buckets.
func (h *Histogram) MarshalText() ([]byte, error) {
	b := fmt.Appendf(nil, "%d %d %d %d", h.n, h.sum, h.min, h.max)
	for i, c := range h.counts {
		if c != 0 {
			b = fmt.Appendf(b, " %d:%d", i, c)
		}
	}
	return b, nil
}

// UnmarshalText decodes what MarshalText encoded.
func (h *Histogram) UnmarshalText(b []byte) error {
	f := strings.Fields(string(b))
	if len(f) < 4 {
		return errors.New("histogram: too few fields")
	}
	var nums [4]int64
	for i := range nums {
		v, err := strconv.ParseInt(f[i], 10, 64)
		if err != nil || v < 0 {
			return fmt.Errorf("histogram: bad field %q", f[i])
		}
		nums[i] = v
	}
	*h = Histogram{n: nums[0], sum: nums[1], min: nums[2], max: nums[3]}
	var total int64
	for _, kv := range f[4:] {
		k, v, ok := strings.Cut(kv, ":")
		i, err1 := strconv.Atoi(k)
		c, err2 := strconv.ParseUint(v, 10, 32)
		if !ok || err1 != nil || err2 != nil || i < 0 || i >= numBuckets {
			return fmt.Errorf("histogram: bad bucket %q", kv)
		}
		h.counts[i] += uint32(c)
		total += int64(c)
	}
	if total != h.n {
		return fmt.Errorf("histogram: buckets hold %d values, header says %d", total, h.n)
	}
	return nil
}

// exactSummary computes a Summary from raw values (used by tests to check
// the histogram, and for small samples).
func exactSummary(vals []int64) Summary {
	s := slices.Clone(vals)
	slices.Sort(s)
	if len(s) == 0 {
		return Summary{}
	}
	var sum int64
	for _, v := range s {
		sum += v
	}
	return Summary{
		Count: int64(len(s)),
		Min:   time.Duration(s[0]),
		P50:   time.Duration(Percentile(s, 0.50)),
		P90:   time.Duration(Percentile(s, 0.90)),
		P99:   time.Duration(Percentile(s, 0.99)),
		P999:  time.Duration(Percentile(s, 0.999)),
		Max:   time.Duration(s[len(s)-1]),
		Mean:  time.Duration(float64(sum) / float64(len(s))),
	}
}
