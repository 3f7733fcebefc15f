package redisstore_test

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/keel-run/keel/internal/admission"
	"github.com/keel-run/keel/internal/admission/redisstore"
	"github.com/keel-run/keel/internal/redisx"
	"github.com/keel-run/keel/internal/redisx/redistest"
)

// slow adds d to every round trip: a Redis that answers, slowly, within
// the timeout.
type slow struct{ d time.Duration }

func (h slow) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h slow) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		time.Sleep(h.d)
		return next(ctx, cmd)
	}
}
func (h slow) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// TestSlowRedisKeepsDeadlines: Redis answers every round trip in 30 ms
// (below the 50 ms default timeout, so no fallback). 40 concurrent calls
// to one target, each with a 300 ms deadline and a quota that fits them
// all: every Admit should return by its deadline.
var lat, nCalls = 20 * time.Millisecond, 40

func TestSlowRedisKeepsDeadlines(t *testing.T) {
	srv := redistest.Start(t)
	c, err := redisx.Open(context.Background(), redisx.Options{URL: srv.URL, ID: "a",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	g, err := admission.New(admission.Options{Default: admission.Quota{TokensPerMinute: 6e6}, FullStart: true,
		Store: redisstore.NewFailover(c, redisstore.Options{})})
	if err != nil {
		t.Fatal(err)
	}
	// Warm: the target opened and the script loaded before Redis slows.
	tk, err := g.Admit(context.Background(), target, admission.Estimate{MaxTokens: 100}, admission.Interactive)
	if err != nil {
		t.Fatal(err)
	}
	tk.Cancel()
	c.Redis().AddHook(slow{lat})
	n, deadline := nCalls, 300*time.Millisecond
	var wg sync.WaitGroup
	var mu sync.Mutex
	var worst time.Duration
	late := 0
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), deadline)
			defer cancel()
			start := time.Now()
			tk, err := g.Admit(ctx, target, admission.Estimate{MaxTokens: 100}, admission.Interactive)
			el := time.Since(start)
			mu.Lock()
			worst = max(worst, el)
			if el > deadline+3*lat+100*time.Millisecond {
				late++
			}
			mu.Unlock()
			if err == nil {
				tk.Cancel()
			}
		}()
	}
	wg.Wait()
	t.Logf("worst Admit %v; %d of %d returned late past their %v deadline; redis failures %d",
		worst, late, n, deadline, c.Stats().Failures)
	if late > 0 {
		t.Errorf("%d Admits held past their deadline by Redis round trips under the limiter's mutex (worst %v)", late, worst)
	}
}

// TestR4OneTryPerRetryEvery: while Redis is down, a Failover should try it
// once per RetryEvery. Callers read their now before they reach the
// Failover's lock, so a now a few µs behind the last try's is common under
// concurrency; each such caller tries Redis again.

// TestOneTryPerRetryEveryUnderConcurrency: callers read their now before
// they reach the Failover's lock, so a now a few µs behind the last try's
// is common; none of them may try a dead Redis again (review r4 found each
// did).
func TestOneTryPerRetryEveryUnderConcurrency(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	c, err := redisx.Open(ctx, redisx.Options{URL: srv.URL, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var rt trips
	c.Redis().AddHook(&rt)
	f := redisstore.NewFailover(c, redisstore.Options{CallerTime: true})
	if err := f.Open(ctx, target, t0, admission.Buckets{TokensPerMinute: 60000, Tokens: 60000}); err != nil {
		t.Fatal(err)
	}
	srv.Kill()
	if _, err := f.Reserve(ctx, target, t0.Add(time.Millisecond), 1); err != nil { // fails over
		t.Fatal(err)
	}
	at := t0.Add(3 * time.Second)
	if _, err := f.Reserve(ctx, target, at, 1); err != nil { // the one try of this second
		t.Fatal(err)
	}
	before := rt.n.Load()
	for i := 1; i <= 20; i++ { // 20 callers whose now is i µs before the try's
		if _, err := f.Reserve(ctx, target, at.Add(-time.Duration(i)*time.Microsecond), 1); err != nil {
			t.Fatal(err)
		}
	}
	if extra := rt.n.Load() - before; extra != 0 {
		t.Errorf("%d more round trips to a dead Redis within one RetryEvery; want 0", extra)
	}
}

// TestLastRefillFarAhead: a bucket whose last refill lies far ahead of
// Redis's clock (garbage, or a failover to a Redis whose clock is behind)
// would never refill; it is reset (review r4).
func TestLastRefillFarAhead(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	c := client(t, srv)
	s := redisstore.New(c, redisstore.Options{}) // Redis's TIME, as in production
	if err := s.Open(ctx, target, t0, admission.Buckets{TokensPerMinute: 60000, Tokens: 60000}); err != nil {
		t.Fatal(err)
	}
	key := c.Key("bucket", target.String())
	if err := c.Redis().HSet(ctx, key, "tok", "0", "last", "1e300").Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Level(ctx, target, t0); err != nil {
		t.Fatal(err)
	}
	if s.Resets() == 0 {
		t.Errorf("a last refill at 1e300 µs was not reset")
	}
}
