package redisbreaker_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/keel-run/keel/internal/breaker"
	"github.com/keel-run/keel/internal/breaker/redisbreaker"
	"github.com/keel-run/keel/internal/redisx/redistest"
	"github.com/keel-run/keel/internal/redisx/redisxtest"
)

// BenchmarkAllowDone measures one call's Allow and Done on a breaker kept
// locally and in a local redis-server, in each state a call meets:
// closed (Allow reads the state; Done counts locally), open (Allow is
// refused) and half-open (Allow takes a probe lease, Done frees it). ping
// is one bare round trip, for scale. docs/redis-breakers.md has figures.
func BenchmarkAllowDone(b *testing.B) {
	srv := redistest.Start(b)
	c := redisxtest.Open(b, srv, "bench")
	b.Run("ping", func(b *testing.B) {
		defer redisxtest.NoFailures(b, c)()
		for b.Loop() {
			if err := c.Do(context.Background(), func(ctx context.Context, rdb *redis.Client) error { return rdb.Ping(ctx).Err() }); err != nil {
				b.Fatal(err)
			}
		}
	})
	// Probes and Successes so large that half-open lasts the benchmark.
	o := breaker.Options{MinCalls: 1, Cooldown: time.Hour, Probes: 1 << 20, Successes: 1 << 30}
	for _, store := range []string{"local", "redis"} {
		for _, state := range []string{"closed", "open", "half-open"} {
			if store == "local" && state == "half-open" {
				continue // a fake clock would be needed to end the cool-down; its path costs what closed does
			}
			b.Run(store+"/"+state, func(b *testing.B) {
				o := o
				if store == "redis" {
					o.Shared = redisbreaker.New(c, nil)
				}
				br, err := breaker.New("bench-"+state, "us-east-1", o, nil)
				if err != nil {
					b.Fatal(err)
				}
				if state != "closed" {
					p, _ := br.Allow()
					p.Done(breaker.Failure)
				}
				if state == "half-open" { // end the cool-down now
					srv.Client().HSet(context.Background(), c.Key("breaker", "bench-half-open@us-east-1"), "until", 1)
				}
				defer redisxtest.NoFailures(b, c)()
				for b.Loop() {
					p, err := br.Allow()
					if (err == nil) != (state != "open") {
						b.Fatalf("Allow in %s: %v", state, err)
					}
					p.Done(breaker.Success)
				}
			})
		}
	}
}
