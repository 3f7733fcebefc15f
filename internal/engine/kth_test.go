package engine

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestKthLargest checks kthLargest against a sort, on samples with ties,
// for every k.
func TestKthLargest(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{1, 2, 5, 100, 101, replySamples} {
		d := make([]time.Duration, n)
		for i := range d {
			d[i] = time.Duration(rng.IntN(20)) * time.Millisecond // ties
		}
		sorted := slices.Sorted(slices.Values(d))
		for k := 1; k <= n; k++ {
			if got, want := kthLargest(d, k), sorted[n-k]; got != want {
				t.Fatalf("n %d, k %d: %v, want %v", n, k, got, want)
			}
		}
	}
}

// BenchmarkReplyTimesUnderLoad is a learned timeout asked for after each
// new reply, as at a steady rate of calls.
func BenchmarkReplyTimesUnderLoad(b *testing.B) {
	r := newReplyTimes(0)
	for i := range replySamples {
		r.observe("m", 200, time.Duration(i)*time.Millisecond)
	}
	c := classOf("m", 200)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		r.observe("m", 200, time.Duration(i%300)*time.Millisecond)
		r.p99(c)
	}
}
