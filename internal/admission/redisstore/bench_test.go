package redisstore_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/keel-run/keel/internal/admission"
	"github.com/keel-run/keel/internal/admission/redisstore"
	"github.com/keel-run/keel/internal/redisx"
	"github.com/keel-run/keel/internal/redisx/redistest"
)

// benchStore returns a Failover on a fresh redis-server, reading Redis's
// clock, with target opened with a limit no benchmark exhausts, and the
// hook that counts its round trips.
func benchStore(b *testing.B) (*redisstore.Failover, *trips) {
	b.Helper()
	srv := redistest.Start(b)
	c, err := redisx.Open(context.Background(), redisx.Options{URL: srv.URL, Logger: quiet, Timeout: time.Second})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	rt := &trips{}
	c.Redis().AddHook(rt)
	st := redisstore.NewFailover(c, redisstore.Options{})
	if err := st.Open(context.Background(), target, time.Now(), admission.Buckets{TokensPerMinute: 1e15, Tokens: 1e15}); err != nil {
		b.Fatal(err)
	}
	return st, rt
}

// timed runs op b.N times and reports its latency's median and 99th
// percentile, and the round trips per op.
func timed(b *testing.B, rt *trips, op func(i int)) {
	b.Helper()
	d := make([]time.Duration, b.N)
	n0 := rt.n.Load()
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		op(i)
		d[i] = time.Since(start)
	}
	b.StopTimer()
	slices.Sort(d)
	b.ReportMetric(float64(d[len(d)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(d[len(d)*99/100].Nanoseconds()), "p99-ns")
	b.ReportMetric(float64(rt.n.Load()-n0)/float64(b.N), "trips/op")
}

// BenchmarkRedisStoreReserve: one Reserve, one round trip.
func BenchmarkRedisStoreReserve(b *testing.B) {
	st, rt := benchStore(b)
	ctx := context.Background()
	timed(b, rt, func(int) {
		if _, err := st.Reserve(ctx, target, time.Now(), 1000); err != nil {
			b.Fatal(err)
		}
	})
}

// BenchmarkRedisStoreTakeEnd: a granted call's Take under a lease and the
// End of its lease: two round trips.
func BenchmarkRedisStoreTakeEnd(b *testing.B) {
	st, rt := benchStore(b)
	ctx := context.Background()
	timed(b, rt, func(i int) {
		now := time.Now()
		id := admission.LeaseID{Owner: 1, N: uint64(i) + 1}
		if _, err := st.Take(ctx, target, now, 1000, admission.Lease{ID: id, Until: now.Add(time.Minute), Refund: 900}); err != nil {
			b.Fatal(err)
		}
		if _, _, err := st.End(ctx, target, now, id, 500, 0); err != nil {
			b.Fatal(err)
		}
	})
}

// BenchmarkGovernedCall: a Governor's Admit and Settle of a call that fits
// at once, its buckets in Redis: the round trips a governed call costs.
func BenchmarkGovernedCall(b *testing.B) {
	st, rt := benchStore(b)
	g, err := admission.New(admission.Options{Default: admission.Quota{TokensPerMinute: 1 << 40}, FullStart: true, Store: st})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	est := admission.Estimate{InputTokens: 100, MaxTokens: 100}
	timed(b, rt, func(int) {
		tk, err := g.Admit(ctx, target, est, admission.Interactive)
		if err != nil {
			b.Fatal(err)
		}
		tk.Settle(admission.Usage{InputTokens: 100, OutputTokens: 10})
	})
}
