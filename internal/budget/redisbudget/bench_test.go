package redisbudget_test

import (
	"testing"

	"github.com/keel-run/keel/internal/budget"
	"github.com/keel-run/keel/internal/budget/redisbudget"
	"github.com/keel-run/keel/internal/redisx/redistest"
	"github.com/keel-run/keel/internal/redisx/redisxtest"
)

// BenchmarkBudget measures Request and TryAcquire on a budget kept
// locally and in a local redis-server. docs/redis-breakers.md has figures.
func BenchmarkBudget(b *testing.B) {
	srv := redistest.Start(b)
	c := redisxtest.Open(b, srv, "bench")
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
			defer redisxtest.NoFailures(b, c)()
			for b.Loop() {
				bu.Request()
			}
		})
		b.Run(store+"/TryAcquire", func(b *testing.B) {
			defer redisxtest.NoFailures(b, c)()
			for b.Loop() {
				bu.TryAcquire()
			}
		})
	}
}
