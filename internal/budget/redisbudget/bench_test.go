package redisbudget_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/keel-run/keel/internal/budget"
	"github.com/keel-run/keel/internal/budget/redisbudget"
	"github.com/keel-run/keel/internal/redisx"
	"github.com/keel-run/keel/internal/redisx/redistest"
)

// benchTimeout bounds a round trip in the benchmarks: far above the
// default, so that a loaded machine's pause does not turn a run into one
// of the local fallback's.
const benchTimeout = 5 * time.Second

// noFailures fails a benchmark in which a round trip failed: its figure
// would be the local fallback's. Call the func it returns at the end.
func noFailures(b *testing.B, c *redisx.Client) func() {
	before := c.Stats().Failures
	return func() {
		if s := c.Stats(); s.Failures != before {
			b.Fatalf("%d round trips failed (last: %s): the figure is not Redis's", s.Failures-before, s.LastError)
		}
	}
}

// BenchmarkBudget measures Request and TryAcquire on a budget kept
// locally and in a local redis-server. docs/redis-breakers.md has figures.
func BenchmarkBudget(b *testing.B) {
	srv := redistest.Start(b)
	c, err := redisx.Open(context.Background(), redisx.Options{URL: srv.URL, Timeout: benchTimeout,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	for _, store := range []string{"local", "redis"} {
		o := budget.Options{Ratio: 1} // every first attempt earns a retry: TryAcquire keeps granting
		if store == "redis" {
			o.Shared = redisbudget.New(c, "bench", nil)
		}
		bu, err := budget.New(o)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(store+"/Request", func(b *testing.B) {
			defer noFailures(b, c)()
			for b.Loop() {
				bu.Request()
			}
		})
		b.Run(store+"/TryAcquire", func(b *testing.B) {
			defer noFailures(b, c)()
			for b.Loop() {
				bu.TryAcquire()
			}
		})
	}
}
