package redisstore_test

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/keel-run/keel/internal/admission"
	"github.com/keel-run/keel/internal/admission/redisstore"
	"github.com/keel-run/keel/internal/admission/storetest"
	"github.com/keel-run/keel/internal/redisx"
	"github.com/keel-run/keel/internal/redisx/redistest"
)

// prefixes numbers the clients of one server, so that each case's keys
// are its own.
var prefixes atomic.Int64

// slack bounds a round trip in tests whose Redis must answer: the
// machine may be slow and busy (-race, a hundred goroutines at once), and
// a timeout would fail the test for nothing it checks.
const slack = 10 * time.Second

// client returns a redisx.Client of srv with a prefix of its own, closed
// when the test ends.
func client(t *testing.T, srv *redistest.Server) *redisx.Client {
	t.Helper()
	c, err := redisx.Open(context.Background(), redisx.Options{URL: srv.URL, Prefix: fmt.Sprintf("t%d:", prefixes.Add(1)), ID: t.Name(), Timeout: slack})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestConformance(t *testing.T) {
	srv := redistest.Start(t)
	t.Run("Store", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) admission.Store {
			return redisstore.New(client(t, srv), redisstore.Options{CallerTime: true})
		})
	})
	t.Run("Failover", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) admission.Store {
			return redisstore.NewFailover(client(t, srv), redisstore.Options{CallerTime: true})
		})
	})
	// With Redis down and a share of 1, a Failover's local buckets keep
	// the contract too.
	down := redistest.Start(t)
	down.Kill()
	t.Run("FailoverDown", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) admission.Store {
			c, err := redisx.Open(context.Background(), redisx.Options{URL: down.URL, Share: 1, Logger: quiet, Timeout: 5 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			return redisstore.NewFailover(c, redisstore.Options{CallerTime: true})
		})
	})
}

// quiet drops the Redis client's episode lines.
var quiet = slog.New(slog.DiscardHandler)

var (
	target = admission.Target{Model: "anthropic.claude-3-haiku-20240307-v1:0", Region: "us-east-1"}
	t0     = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	opened = admission.Buckets{TokensPerMinute: 6000, RequestsPerMinute: 60, Tokens: 3000}
)

// TestGarbage: whatever lies under a key's Redis keys, an operation
// drops it, makes the buckets anew from Open's figures, and counts a
// reset; it never fails.
func TestGarbage(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client()
	tests := []struct {
		name  string
		plant func(ctx context.Context, bucket, leases string) error
		sound bool // the buckets stay: the garbage is a lease's, dropped alone
	}{
		{name: "a string", plant: func(ctx context.Context, k, _ string) error { return rdb.Set(ctx, k, "x", 0).Err() }},
		{name: "a list", plant: func(ctx context.Context, k, _ string) error {
			if err := rdb.Del(ctx, k).Err(); err != nil {
				return err
			}
			return rdb.RPush(ctx, k, "x").Err()
		}},
		{name: "a hash of another layout", plant: func(ctx context.Context, k, _ string) error {
			return rdb.HSet(ctx, k, "v", "b0", "tpm", "6000").Err()
		}},
		{name: "a hash without a layout", plant: func(ctx context.Context, k, _ string) error { return rdb.HDel(ctx, k, "v").Err() }},
		{name: "a field missing", plant: func(ctx context.Context, k, _ string) error { return rdb.HDel(ctx, k, "peak").Err() }},
		{name: "a field not a number", plant: func(ctx context.Context, k, _ string) error { return rdb.HSet(ctx, k, "tok", "lots").Err() }},
		{name: "a NaN", plant: func(ctx context.Context, k, _ string) error { return rdb.HSet(ctx, k, "tok", "nan").Err() }},
		{name: "a hex number", plant: func(ctx context.Context, k, _ string) error { return rdb.HSet(ctx, k, "last", "0x10").Err() }},
		{name: "a limit that is not positive", plant: func(ctx context.Context, k, _ string) error { return rdb.HSet(ctx, k, "tpm", "-5").Err() }},
		{name: "leases of another type", plant: func(ctx context.Context, _, l string) error { return rdb.Set(ctx, l, "x", 0).Err() }},
		{name: "leases without buckets", plant: func(ctx context.Context, k, l string) error {
			if err := rdb.Del(ctx, k).Err(); err != nil {
				return err
			}
			return rdb.ZAdd(ctx, l, redis.Z{Score: 1, Member: "x"}).Err()
		}},
		{name: "a lease's refund not a number", sound: true, plant: func(ctx context.Context, k, l string) error {
			if err := rdb.ZAdd(ctx, l, redis.Z{Score: 1, Member: "x"}).Err(); err != nil {
				return err
			}
			return rdb.HSet(ctx, k, "l:x", "lots").Err()
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			c := client(t, srv)
			s := redisstore.New(c, redisstore.Options{CallerTime: true})
			if err := s.Open(ctx, target, t0, opened); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Take(ctx, target, t0, 1000, admission.Lease{}); err != nil {
				t.Fatal(err)
			}
			if err := tt.plant(ctx, c.Key("bucket", target.String()), c.Key("leases", target.String())); err != nil {
				t.Fatal(err)
			}
			b, err := s.Level(ctx, target, t0)
			resets := uint64(1) // made anew, from the level last seen
			if tt.sound {
				resets = 0
			}
			if err != nil || b.Tokens != 2000 || b.TokensPerMinute != 6000 || s.Resets() != resets {
				t.Fatalf("Level = %+v, %v, %d resets; want 2000 tokens of 6000, %d resets", b, err, s.Resets(), resets)
			}
			if _, err := s.Take(ctx, target, t0, 500, admission.Lease{}); err != nil {
				t.Fatalf("Take after: %v", err)
			}
		})
	}
}

// TestRedisTime: two stores on one Redis whose callers' clocks differ by
// minutes share one bucket by Redis's clock. Real time passes between
// their calls; the bounds below leave seconds for it.
func TestRedisTime(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	var cs [2]*redisx.Client
	for i := range cs {
		c, err := redisx.Open(ctx, redisx.Options{URL: srv.URL, Prefix: "time:", ID: fmt.Sprint(i), Timeout: slack})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		cs[i] = c
	}
	ca, cb := cs[0], cs[1]
	a, b := redisstore.New(ca, redisstore.Options{}), redisstore.New(cb, redisstore.Options{})
	skew := 7 * time.Minute
	nowA := func() time.Time { return time.Now() }
	nowB := func() time.Time { return time.Now().Add(skew) }
	full := admission.Buckets{TokensPerMinute: 6000, Tokens: 6000}
	for _, s := range []*redisstore.Store{a, b} {
		if err := s.Open(ctx, target, nowA(), full); err != nil {
			t.Fatal(err)
		}
	}
	if r, err := a.Reserve(ctx, target, nowA(), 6000); err != nil || !r.OK {
		t.Fatalf("A: Reserve(6000) = %+v, %v; want granted", r, err)
	}
	// By B's clock the bucket would have refilled for minutes; by Redis's,
	// it refilled for the time since A's call: 5900 tokens are about 59 s
	// away, told by B's clock.
	now := nowB()
	r, err := b.Reserve(ctx, target, now, 5900)
	if err != nil || r.OK {
		t.Fatalf("B: Reserve(5900) = %+v, %v; want a wait", r, err)
	}
	if wait := r.At.Sub(now); wait <= 50*time.Second || wait > 59*time.Second {
		t.Fatalf("B: wait %v; want about 59s (50s–59s)", wait)
	}
	// A lease B takes until an hour from now by its clock lasts an hour by
	// Redis's: A's operations, minutes behind, do not expire it, nor does
	// one of B's a minute later; one already past expires at once.
	if _, err := b.Take(ctx, target, nowB(), 100, admission.Lease{ID: admission.LeaseID{Owner: 2, N: 1}, Until: nowB().Add(time.Hour), Refund: 100}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Take(ctx, target, nowB(), 50, admission.Lease{ID: admission.LeaseID{Owner: 2, N: 2}, Until: nowB().Add(-time.Second), Refund: 50}); err != nil {
		t.Fatal(err)
	}
	lv, err := a.Level(ctx, target, nowA())
	if err != nil || lv.Tokens > -100+10*100 || lv.Tokens < -100-1 {
		t.Fatalf("A: Level = %+v, %v; want about -100 (the live lease's 100 taken, the past one's 50 back)", lv, err)
	}
	// A drain by A is told to B at B's clock.
	if _, _, err := a.Drain(ctx, target, nowA()); err != nil {
		t.Fatal(err)
	}
	now = nowB()
	lv, err = b.Level(ctx, target, now)
	if err != nil || lv.Drains != 1 || lv.DrainedAt.After(now) || lv.DrainedAt.Before(now.Add(-10*time.Second)) {
		t.Fatalf("B: Level = %+v, %v; want 1 drain just before %v", lv, err, now)
	}
}

// TestBucketsMadeAgain: buckets that vanished (FLUSHALL, a restarted
// Redis, IdleTTL) are made again by the next operation from what the
// Store last saw: the limit it learned (never unlimited again), its burst,
// and the level, which had the hold of the call in flight taken out; that
// call's lease is held again, so that it gives back its refund when it
// ends. Another Store that shares the buckets finds them so (review r4,
// finding 2: they came back from Open's figures, unlimited for a learning
// quota, and the lease was lost).
func TestBucketsMadeAgain(t *testing.T) {
	srv := redistest.Start(t)
	tests := []struct {
		name  string
		limit float64 // Open's
	}{
		{name: "told the quota", limit: 60000},
		{name: "learning", limit: math.Inf(1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			c := client(t, srv)
			s := redisstore.New(c, redisstore.Options{CallerTime: true})
			other := redisstore.New(c, redisstore.Options{CallerTime: true})
			open := admission.Buckets{TokensPerMinute: tt.limit, Tokens: 60000}
			for _, st := range []*redisstore.Store{s, other} {
				if err := st.Open(ctx, target, t0, open); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := s.SetLimit(ctx, target, t0, 30000); err != nil { // learned
				t.Fatal(err)
			}
			if _, err := s.Give(ctx, target, t0, 30000, 0); err != nil { // a full bucket
				t.Fatal(err)
			}
			if _, err := s.SetBurst(ctx, target, t0, 25000); err != nil {
				t.Fatal(err)
			}
			lease := admission.Lease{ID: admission.LeaseID{Owner: 1, N: 1}, Until: t0.Add(time.Hour), Refund: 15000}
			if _, err := s.Take(ctx, target, t0, 20000, lease); err != nil {
				t.Fatal(err)
			}
			if err := srv.Client().FlushAll(ctx).Err(); err != nil {
				t.Fatal(err)
			}
			b, err := s.Level(ctx, target, t0)
			if err != nil || b.TokensPerMinute != 30000 || b.Burst != 25000 || b.Tokens != 10000 || s.Remakes() != 1 {
				t.Fatalf("Level after FLUSHALL = %+v, %v (%d remakes); want the limit 30000, burst 25000 and 10000 tokens last seen, 1 remake",
					b, err, s.Remakes())
			}
			if b, err := other.Level(ctx, target, t0); err != nil || b.TokensPerMinute != 30000 || b.Tokens != 10000 {
				t.Fatalf("the other Store's Level = %+v, %v; want the same buckets", b, err)
			}
			// The call ends having cost 8000: 12000 of its hold come back.
			b, live, err := s.End(ctx, target, t0, lease.ID, 12000, 0)
			if err != nil || !live || b.Tokens != 22000 {
				t.Fatalf("End after FLUSHALL = %+v, %v, %v; want the lease live, 22000 tokens", b, live, err)
			}
		})
	}
}
