package redisbudget_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/keel-run/keel/internal/budget"
	"github.com/keel-run/keel/internal/budget/redisbudget"
	"github.com/keel-run/keel/internal/clock"
	"github.com/keel-run/keel/internal/redisx"
	"github.com/keel-run/keel/internal/redisx/fallback"
	"github.com/keel-run/keel/internal/redisx/redistest"
	"github.com/keel-run/keel/internal/redisx/redisxtest"
)

const key = "keel:v1:budget:{" + redisbudget.DefaultName + "}"

// opts allow 0.1 retry per first attempt plus a reserve of 0.4/s × 10 s = 4.
var opts = budget.Options{Ratio: 0.1, MinPerSecond: 0.4, Window: 10 * time.Second}

// fleet is n processes, each its own Client and Budget, sharing one Redis;
// one fake clock measures their local windows and times their gates.
type fleet struct {
	srv *redistest.Server
	rdb *redis.Client
	clk *clock.Fake
	cs  []*redisx.Client
	bs  []*budget.Budget
}

func newFleet(t *testing.T, srv *redistest.Server, n int) *fleet {
	t.Helper()
	if srv == nil {
		srv = redistest.Start(t)
	}
	f := &fleet{srv: srv, rdb: srv.Client(), clk: clock.NewFake(time.Now())}
	if err := f.rdb.FlushAll(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		c := redisxtest.Open(t, srv, strconv.Itoa(i))
		o := opts
		o.Clock, o.Shared = f.clk, redisbudget.New(c, "", f.clk)
		b, err := budget.New(o)
		if err != nil {
			t.Fatal(err)
		}
		f.cs, f.bs = append(f.cs, c), append(f.bs, b)
	}
	return f
}

// grants returns how many retries replica i is granted in a row.
func (f *fleet) grants(i int) int {
	n := 0
	for ; n < 1000 && f.bs[i].TryAcquire(); n++ {
	}
	return n
}

func requests(b *budget.Budget, n int) {
	for range n {
		b.Request()
	}
}

func TestSharedBudget(t *testing.T) {
	srv := redistest.Start(t)
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, f *fleet)
	}{
		{"exhausted by one, exhausted for the other", func(t *testing.T, f *fleet) {
			requests(f.bs[0], 20)
			if got := f.grants(0); got != 6 { // 0.1 × 20 + 4
				t.Errorf("replica 0 granted %d, want 6", got)
			}
			err := f.bs[1].Acquire()
			var ee *budget.ExhaustedError
			if !errors.As(err, &ee) || ee.Requests != 20 || ee.Retries != 6 {
				t.Fatalf("replica 1: Acquire = %v, want exhausted with the fleet's 20 first attempts and 6 retries", err)
			}
			if s := f.bs[1].Stats(); s.Denied != 1 {
				t.Errorf("replica 1 denied %d, want 1", s.Denied)
			}
		}},
		{"first attempts anywhere earn retries everywhere", func(t *testing.T, f *fleet) {
			requests(f.bs[0], 30)
			requests(f.bs[1], 30)
			if got := f.grants(1) + f.grants(0); got != 10 { // 0.1 × 60 + 4
				t.Errorf("granted %d across the fleet, want 10", got)
			}
		}},
		{"slots out of the window are dropped", func(t *testing.T, f *fleet) {
			if err := f.rdb.HSet(context.Background(), key, "w", 1000, "q1", 5000, "r2", 3).Err(); err != nil {
				t.Fatal(err)
			}
			if got := f.grants(0); got != 4 {
				t.Errorf("granted %d, want the reserve 4 only", got)
			}
			if n, err := f.rdb.HExists(context.Background(), key, "q1").Result(); err != nil || n {
				t.Errorf("the stale slot is still there (%v)", err)
			}
		}},
		{"the key expires when idle", func(t *testing.T, f *fleet) {
			f.bs[0].Request()
			ttl, err := f.rdb.PTTL(context.Background(), key).Result()
			if err != nil || ttl <= redisx.IdleTTL-time.Minute || ttl > redisx.IdleTTL {
				t.Errorf("TTL %v (%v), want about %v", ttl, err, redisx.IdleTTL)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, newFleet(t, srv, 2)) })
	}
}

// garbageCount puts v as the counts of the slot now and the next (Redis's
// clock may turn a slot meanwhile), which the next operation increments.
func garbageCount(v string) func(ctx context.Context, rdb *redis.Client) error {
	return func(ctx context.Context, rdb *redis.Client) error {
		slot := time.Now().UnixMilli() / 1000
		args := []any{"w", 1000}
		for _, s := range []int64{slot, slot + 1} {
			n := strconv.FormatInt(s, 10)
			args = append(args, "q"+n, v, "r"+n, v)
		}
		return rdb.HSet(ctx, key, args...).Err()
	}
}

func TestGarbageIsReset(t *testing.T) {
	srv := redistest.Start(t)
	for _, tc := range []struct {
		name string
		put  func(ctx context.Context, rdb *redis.Client) error
	}{
		{"a string", func(ctx context.Context, rdb *redis.Client) error { return rdb.Set(ctx, key, "junk", 0).Err() }},
		{"a list", func(ctx context.Context, rdb *redis.Client) error { return rdb.RPush(ctx, key, "a").Err() }},
		{"text for a count", func(ctx context.Context, rdb *redis.Client) error {
			return rdb.HSet(ctx, key, "w", 1000, "r99999999999", "many").Err()
		}},
		{"a slot far ahead", func(ctx context.Context, rdb *redis.Client) error {
			return rdb.HSet(ctx, key, "w", 1000, "r99999999999", 1000).Err()
		}},
		{"a fraction for a count", garbageCount("1.5")},
		{"inf for a count", garbageCount("inf")},
		{"nan for a count", garbageCount("nan")},
		{"a count beyond an integer's range", garbageCount("1e300")},
		{"an integer in a float's form", garbageCount("5.0")},
		{"an integer in hex", garbageCount("0x10")},
		{"an integer with a space", garbageCount(" 5")},
		{"an integer in an exponent's form", garbageCount("1e3")},
		{"an unknown field", func(ctx context.Context, rdb *redis.Client) error {
			return rdb.HSet(ctx, key, "w", 1000, "x1", 1).Err()
		}},
		{"another window's slots", func(ctx context.Context, rdb *redis.Client) error {
			// Slots of 1 ms: their numbers are all in this window of 1 s slots.
			now := time.Now().UnixMilli()
			return rdb.HSet(ctx, key, "w", 1, "r"+strconv.FormatInt(now, 10), 1000).Err()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFleet(t, srv, 1)
			if err := tc.put(context.Background(), f.rdb); err != nil {
				t.Fatal(err)
			}
			if got := f.grants(0); got != 4 {
				t.Errorf("granted %d over garbage, want the reserve 4", got)
			}
			if s := f.cs[0].Stats(); s.ReplyErrors != 0 {
				t.Errorf("reset after %d error replies (%s), want the script to reset it", s.ReplyErrors, s.LastReply)
			}
			h, err := f.rdb.HGetAll(context.Background(), key).Result()
			retries := 0
			for k, v := range h {
				n, _ := strconv.Atoi(v)
				switch {
				case k == "w" && v == "1000":
				case k[0] == 'r':
					retries += n
				default:
					t.Errorf("field %s=%s left after the reset", k, v)
				}
			}
			if err != nil || retries != 4 {
				t.Errorf("key after the reset: %v (%v), want the slot width and 4 retries", h, err)
			}
		})
	}
}

func TestRedisDown(t *testing.T) {
	f := newFleet(t, nil, 2)
	c := f.cs[1]
	if got := c.Share(); got != 0.5 {
		t.Fatalf("share %g with two replicas, want 0.5", got)
	}
	f.srv.Kill()
	failures := c.Stats().Failures
	requests(f.bs[1], 10)
	// Local: 0.1 × 10 + 4 × 0.5.
	if got := f.grants(1); got != 3 {
		t.Errorf("granted %d while Redis is down, want 3 (the ratio, and half the reserve)", got)
	}
	if n := c.Stats().Failures - failures; n != 1 {
		t.Errorf("%d round trips failed, want 1 until %v has passed", n, fallback.RetryEvery)
	}

	f.srv.Restart()
	if f.bs[1].TryAcquire() {
		t.Fatal("Redis tried again before RetryEvery")
	}
	f.clk.Advance(fallback.RetryEvery)
	if got := f.grants(1); got != 4 {
		t.Errorf("granted %d after the restart, want the shared reserve 4", got)
	}
	if got := f.grants(0); got != 0 {
		t.Errorf("replica 0 granted %d, want 0: shared again", got)
	}
}

func TestCallerDoneIsNoOutage(t *testing.T) {
	srv := redistest.Start(t)
	for _, tt := range redisxtest.EndedContexts() {
		t.Run(tt.Name, func(t *testing.T) {
			f := newFleet(t, srv, 2)
			ctx, cancel := tt.Ctx()
			defer cancel()
			f.bs[1].RequestContext(ctx)
			if s := f.cs[1].Stats(); s.Degraded || s.Episodes != 0 || s.Failures != 0 {
				t.Errorf("a caller's ended context counted against Redis: %+v", s)
			}
			if got := f.grants(1); got != 4 {
				t.Errorf("granted %d next, want the shared reserve 4: Redis still in use", got)
			}
		})
	}
}
