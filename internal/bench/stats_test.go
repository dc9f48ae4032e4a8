package bench

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestPercentileNearestRank(t *testing.T) {
	vals := []int64{10, 20, 30, 40, 50, 60, 70, 80, 90, 100}
	cases := []struct {
		q    float64
		want int64
	}{
		{0, 10}, {0.01, 10}, {0.1, 10}, {0.11, 20}, {0.5, 50}, {0.51, 60},
		{0.9, 90}, {0.91, 100}, {0.99, 100}, {1, 100},
	}
	for _, c := range cases {
		if got := Percentile(vals, c.q); got != c.want {
			t.Errorf("Percentile(q=%v) = %d, want %d", c.q, got, c.want)
		}
	}
	if got := Percentile(nil, 0.5); got != 0 {
		t.Errorf("Percentile(empty) = %d, want 0", got)
	}
	if got := Percentile([]int64{7}, 0.99); got != 7 {
		t.Errorf("Percentile(one) = %d, want 7", got)
	}
}

func TestBucketsAreContiguous(t *testing.T) {
	// Every bucket starts where the previous one ends, and bucketOf maps
	// each bucket's edges back to it.
	next := int64(0)
	for i := range numBuckets {
		low, width := bucketRange(i)
		if low != next {
			t.Fatalf("bucket %d starts at %d, want %d", i, low, next)
		}
		if got := bucketOf(low); got != i {
			t.Fatalf("bucketOf(%d) = %d, want %d", low, got, i)
		}
		if got := bucketOf(low + width - 1); got != i {
			t.Fatalf("bucketOf(%d) = %d, want %d", low+width-1, got, i)
		}
		if i >= 128 && float64(width)/float64(low) > 1.0/64+1e-12 {
			t.Fatalf("bucket %d: width %d too wide for %d", i, width, low)
		}
		next = low + width
	}
	if next != 1<<maxBits {
		t.Fatalf("buckets end at %d, want 2^%d", next, maxBits)
	}
	if got := bucketOf(math.MaxInt64); got != numBuckets-1 {
		t.Fatalf("bucketOf(max) = %d", got)
	}
}

func TestHistogramMatchesExactPercentiles(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, dist := range []struct {
		name string
		gen  func() int64
	}{
		{"uniform-small", func() int64 { return rng.Int64N(100) }},
		{"uniform", func() int64 { return rng.Int64N(int64(10 * time.Millisecond)) }},
		{"lognormal", func() int64 { return int64(math.Exp(rng.NormFloat64()*2 + 12)) }},
		{"bimodal", func() int64 {
			if rng.IntN(100) == 0 {
				return int64(time.Second) + rng.Int64N(1e6)
			}
			return 50_000 + rng.Int64N(1000)
		}},
	} {
		t.Run(dist.name, func(t *testing.T) {
			var h Histogram
			vals := make([]int64, 20_000)
			for i := range vals {
				vals[i] = dist.gen()
				h.Record(vals[i])
			}
			exact := exactSummary(vals)
			got := h.Summary()
			if got.Count != exact.Count || got.Min != exact.Min || got.Max != exact.Max || got.Mean != exact.Mean {
				t.Fatalf("exact fields differ: got %+v, want %+v", got, exact)
			}
			for _, p := range []struct {
				name      string
				got, want time.Duration
			}{{"p50", got.P50, exact.P50}, {"p90", got.P90, exact.P90}, {"p99", got.P99, exact.P99}, {"p99.9", got.P999, exact.P999}} {
				tol := math.Max(1, float64(p.want)/64)
				if math.Abs(float64(p.got-p.want)) > tol {
					t.Errorf("%s = %d, exact %d (tolerance %.0f)", p.name, p.got, p.want, tol)
				}
			}
		})
	}
}

func TestHistogramMergeAndEmpty(t *testing.T) {
	var a, b, all Histogram
	if s := a.Summary(); s != (Summary{}) {
		t.Fatalf("empty summary = %+v", s)
	}
	for i := range int64(1000) {
		v := i * 997 % 5000
		if i%2 == 0 {
			a.Record(v)
		} else {
			b.Record(v)
		}
		all.Record(v)
	}
	a.Merge(&b)
	a.Merge(&Histogram{})
	if a != all {
		t.Fatalf("merged histogram differs from the one fed everything")
	}
	var neg Histogram
	neg.Record(-5)
	if neg.Min() != 0 || neg.Max() != 0 {
		t.Fatalf("negative value not clamped to 0: min %d max %d", neg.Min(), neg.Max())
	}
}

func TestHistogramTextRoundTrip(t *testing.T) {
	var h Histogram
	for _, v := range []int64{0, 5, 127, 128, 1000, 123456789, 1 << 41} {
		h.Record(v)
	}
	b, err := h.MarshalText()
	if err != nil {
		t.Fatalf("MarshalText: %v", err)
	}
	var back Histogram
	if err := back.UnmarshalText(b); err != nil {
		t.Fatal(err)
	}
	if back != h {
		t.Fatalf("round trip changed the histogram: %s", b)
	}
	var empty Histogram
	if b, err = empty.MarshalText(); err != nil {
		t.Fatalf("MarshalText of an empty histogram: %v", err)
	}
	if err := back.UnmarshalText(b); err != nil || back != empty {
		t.Fatalf("empty round trip: %v", err)
	}
	for _, bad := range []string{"", "1 2 3", "1 5 5 5", "1 5 5 5 x:1", "1 5 5 5 99999:1", "2 5 5 5 5:1", "-1 0 0 0"} {
		if err := back.UnmarshalText([]byte(bad)); err == nil {
			t.Errorf("UnmarshalText(%q) succeeded", bad)
		}
	}
}

func TestExactSummarySorted(t *testing.T) {
	vals := []int64{5, 1, 4, 2, 3}
	s := exactSummary(vals)
	if s.Min != 1 || s.Max != 5 || s.P50 != 3 || s.Mean != 3 {
		t.Fatalf("summary %+v", s)
	}
	if !slices.Equal(vals, []int64{5, 1, 4, 2, 3}) {
		t.Fatal("exactSummary reordered its input")
	}
}
