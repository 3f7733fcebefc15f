package redisstore_test

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/keel-run/keel/internal/admission"
	"github.com/keel-run/keel/internal/admission/redisstore"
	"github.com/keel-run/keel/internal/clock"
	"github.com/keel-run/keel/internal/redisx"
	"github.com/keel-run/keel/internal/redisx/redistest"
)

// governed returns a Governor on a fake clock that governs target with a
// known quota of 60000 tokens a minute, starting full, in st; a call that
// does not fit at once is refused at once (MaxWait).
func governed(t *testing.T, st admission.Store) (*admission.Governor, *clock.Fake) {
	t.Helper()
	clk := clock.NewFake(t0)
	g, err := admission.New(admission.Options{Default: admission.Quota{TokensPerMinute: 60000}, FullStart: true,
		MaxWait: time.Millisecond, Clock: clk, Store: st})
	if err != nil {
		t.Fatal(err)
	}
	return g, clk
}

// admitAll admits calls holding 1000 tokens until one is refused, and
// returns the Tickets; the refusal must be for the quota.
func admitAll(t *testing.T, g *admission.Governor) []admission.Ticket {
	t.Helper()
	var tks []admission.Ticket
	for range 100 {
		tk, err := g.Admit(context.Background(), target, admission.Estimate{MaxTokens: 1000}, admission.Interactive)
		if err != nil {
			if !errors.Is(err, admission.ErrWouldExceedDeadline) {
				t.Fatalf("Admit: %v; want granted or ErrWouldExceedDeadline", err)
			}
			return tks
		}
		tks = append(tks, tk)
	}
	t.Fatal("100 calls granted; want a refusal")
	return nil
}

// sharedLevel returns the tokens in target's buckets in Redis.
func sharedLevel(t *testing.T, f *redisstore.Failover, now time.Time) float64 {
	t.Helper()
	b, err := f.Shared().Level(context.Background(), target, now)
	if err != nil {
		t.Fatal(err)
	}
	return b.Tokens
}

// TestFailover: while Redis is down the Governor keeps granting within its
// share of the quota, after one failed round trip; it tries Redis again
// once a second, and uses the shared buckets again once Redis is back,
// empty (restarted) or flushed, made again from what it last saw there,
// without copying back what the local buckets took.
func TestFailover(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	c, err := redisx.Open(ctx, redisx.Options{URL: srv.URL, Share: 0.25, Logger: quiet, Timeout: slack})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var rt trips
	c.Redis().AddHook(&rt)
	st := redisstore.NewFailover(c, redisstore.Options{CallerTime: true})
	g, clk := governed(t, st)

	var before []admission.Ticket
	for range 10 {
		tk, err := g.Admit(ctx, target, admission.Estimate{MaxTokens: 1000}, admission.Interactive)
		if err != nil {
			t.Fatal(err)
		}
		before = append(before, tk)
	}
	if got := sharedLevel(t, st, clk.Now()); got != 50000 {
		t.Fatalf("shared level %v after 10 calls of 1000; want 50000", got)
	}

	// Redis dies: a quarter of the limit and of the level (12500) is
	// this process's.
	srv.Kill()
	failed := rt.n.Load()
	down := admitAll(t, g)
	if len(down) != 12 || !st.Degraded() {
		t.Fatalf("while Redis is down: %d calls granted (degraded %v); want 12 of the share's 12500 tokens", len(down), st.Degraded())
	}
	s, _ := g.Stats(target)
	if s.Limit != 15000 {
		t.Fatalf("limit while down %v; want 15000, a quarter", s.Limit)
	}
	if n := rt.n.Load() - failed; n != 1 {
		t.Fatalf("%d round trips tried for 13 calls within a second; want 1", n)
	}
	down[0].Cancel()
	if more := admitAll(t, g); len(more) != 1 {
		t.Fatalf("after a cancelled call, %d granted; want 1", len(more))
	} else {
		down = append(down, more...)
	}
	clk.Advance(redisstore.RetryEvery)
	admitAll(t, g) // tries Redis once more, and fails
	if n := rt.n.Load() - failed; n != 2 {
		t.Fatalf("%d round trips tried after a second; want 2", n)
	}

	// Redis is back, empty: the buckets are made again from what this
	// process last saw there (50000 tokens: the calls in flight then
	// taken out), their leases held again; what was taken meanwhile in
	// the local buckets stays out.
	srv.Restart()
	clk.Advance(redisstore.RetryEvery)
	back := admitAll(t, g)
	if len(back) != 50 || st.Degraded() {
		t.Fatalf("Redis back: %d granted (degraded %v); want 50 from the level last seen", len(back), st.Degraded())
	}
	for i := range down {
		down[i].Cancel() // taken in the dropped local buckets: nothing comes back
	}
	if got := sharedLevel(t, st, clk.Now()); got != 0 {
		t.Fatalf("shared level %v after the calls taken locally ended; want 0", got)
	}
	for i := range before {
		before[i].Cancel() // taken in the lost Redis, their leases held again: their holds come back
	}
	if got := sharedLevel(t, st, clk.Now()); got != 10000 {
		t.Fatalf("shared level %v after the calls taken before the outage ended; want 10000", got)
	}
	for i := range back {
		back[i].Cancel()
	}
	if got := sharedLevel(t, st, clk.Now()); got != 60000 {
		t.Fatalf("shared level %v after the shared calls ended; want 60000", got)
	}

	// A FLUSHALL: made again, at once.
	if err := srv.Client().FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Second)
	if _, err := g.Admit(ctx, target, admission.Estimate{MaxTokens: 1000}, admission.Interactive); err != nil {
		t.Fatalf("Admit after FLUSHALL: %v", err)
	}
	if got := sharedLevel(t, st, clk.Now()); math.Abs(got-59000) > 1e-6 {
		t.Fatalf("shared level %v after FLUSHALL and a call; want 59000", got)
	}
}

// TestCallerEndIsNoOutage: a call whose context ends while the Store asks
// Redis is served from the local buckets, that once, but Redis is not
// taken for down: the next calls use the shared buckets at once.
func TestCallerEndIsNoOutage(t *testing.T) {
	srv := redistest.Start(t)
	c, err := redisx.Open(context.Background(), redisx.Options{URL: srv.URL, Share: 0.25, Logger: quiet, Timeout: slack})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	st := redisstore.NewFailover(c, redisstore.Options{CallerTime: true})
	g, clk := governed(t, st)
	if _, err := g.Admit(context.Background(), target, admission.Estimate{MaxTokens: 1000}, admission.Interactive); err != nil {
		t.Fatal(err)
	}
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	st.Level(ended, target, clk.Now()) // its answer does not matter: the call is over
	if st.Degraded() {
		t.Fatal("a caller's ended context took Redis for down")
	}
	if _, err := g.Admit(context.Background(), target, admission.Estimate{MaxTokens: 1000}, admission.Interactive); err != nil {
		t.Fatal(err)
	}
	if got := sharedLevel(t, st, clk.Now()); got != 58000 {
		t.Fatalf("shared level %v after two calls of 1000; want 58000: the second went to Redis", got)
	}
}
