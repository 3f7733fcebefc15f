package redisbreaker_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/keel-run/keel/internal/breaker"
	"github.com/keel-run/keel/internal/breaker/redisbreaker"
	"github.com/keel-run/keel/internal/clock"
	"github.com/keel-run/keel/internal/redisx"
	"github.com/keel-run/keel/internal/redisx/fallback"
	"github.com/keel-run/keel/internal/redisx/redistest"
	"github.com/keel-run/keel/internal/redisx/redisxtest"
)

const (
	model, region = "m", "us-east-1"
	target        = model + "@" + region
	stateKey      = "keel:v1:breaker:{" + target + "}"
	probesKey     = "keel:v1:probes:{" + target + "}"
	failingKey    = "keel:v1:failing:{" + target + "}"
)

// opts open a breaker at the first failure and close it at the first
// successful probe; the cool-down is long, and tests end it by hand
// (endCooldown), since Redis's clock cannot be faked.
var opts = breaker.Options{MinCalls: 1, Cooldown: time.Hour, Probes: 2, Successes: 1}

// oneProbe is opts with one probe at a time, and a short lease.
var oneProbe = breaker.Options{MinCalls: 1, Cooldown: time.Hour, Probes: 1, Successes: 1, ProbeLease: 3 * time.Second}

// fleet is a few processes, each its own Client and Registry, sharing one
// Redis; their clocks are one fake, which times the fallback gates.
type fleet struct {
	t    *testing.T
	srv  *redistest.Server
	rdb  *redis.Client
	clk  *clock.Fake
	cs   []*redisx.Client
	regs []*breaker.Registry

	mu      sync.Mutex
	changes []string // "replica:from>to"
}

// newFleet makes n replicas on srv (nil: a new server), emptied first,
// each of which opens the breaker for all alone (a quorum of 1): these
// tests are of the state shared; TestQuorum's of the opening.
func newFleet(t *testing.T, srv *redistest.Server, n int, o breaker.Options) *fleet {
	t.Helper()
	return newFleetQuorum(t, srv, n, o, 1)
}

// newFleetQuorum is newFleet with the stores' Quorum (0: the default).
func newFleetQuorum(t *testing.T, srv *redistest.Server, n int, o breaker.Options, quorum int) *fleet {
	t.Helper()
	if srv == nil {
		srv = redistest.Start(t)
	}
	if err := srv.Client().FlushAll(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	f := &fleet{t: t, srv: srv, rdb: srv.Client(), clk: clock.NewFake(time.Now())}
	for i := range n {
		c := redisxtest.Open(t, srv, strconv.Itoa(i))
		o := o
		st := redisbreaker.New(c, f.clk)
		st.Quorum = quorum
		o.Shared = st
		o.OnStateChange = func(_, _, _ string, from, to breaker.State) {
			f.mu.Lock()
			f.changes = append(f.changes, strconv.Itoa(i)+":"+from.String()+">"+to.String())
			f.mu.Unlock()
		}
		r, err := breaker.NewRegistry(o, f.clk)
		if err != nil {
			t.Fatal(err)
		}
		f.cs, f.regs = append(f.cs, c), append(f.regs, r)
	}
	return f
}

func (f *fleet) b(i int) *breaker.Breaker { return f.regs[i].Get(model, region) }

// allow asks replica i and returns its permit, or nil when refused.
func (f *fleet) allow(i int) *breaker.Permit {
	f.t.Helper()
	p, err := f.b(i).Allow()
	if err != nil {
		if !errors.Is(err, breaker.ErrOpen) {
			f.t.Fatalf("replica %d: Allow: %v, want a permit or ErrOpen", i, err)
		}
		return nil
	}
	return &p
}

// open makes replica i open the shared breaker with one failure.
func (f *fleet) open(i int) {
	f.t.Helper()
	p := f.allow(i)
	if p == nil {
		f.t.Fatalf("replica %d: refused while closed", i)
	}
	p.Done(breaker.Failure)
	if s := f.b(i).State(); s != breaker.Open {
		f.t.Fatalf("replica %d after a failure: %v, want open", i, s)
	}
}

// endCooldown moves the shared open state's cool-down end into the past,
// as time passing would.
func (f *fleet) endCooldown() {
	f.t.Helper()
	if err := f.rdb.HSet(context.Background(), stateKey, "until", 1).Err(); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fleet) state(i int) breaker.State {
	f.t.Helper()
	f.allow(i) // reads the shared state; a permit is left unended on purpose
	return f.b(i).State()
}

func (f *fleet) wantStates(want ...breaker.State) {
	f.t.Helper()
	for i, w := range want {
		if got := f.b(i).State(); got != w {
			f.t.Errorf("replica %d: %v, want %v", i, got, w)
		}
	}
}

func TestSharedBreaker(t *testing.T) {
	srv := redistest.Start(t)
	for _, tc := range []struct {
		name string
		opts breaker.Options // zero Probes: opts
		run  func(t *testing.T, f *fleet)
	}{
		{"one opens, the other sees it open", breaker.Options{}, func(t *testing.T, f *fleet) {
			f.allow(1)
			f.open(0)
			p, err := f.b(1).Allow()
			var oe *breaker.OpenError
			if !errors.As(err, &oe) || oe.HalfOpen || oe.Target != target {
				t.Fatalf("replica 1: Allow = %v, %v, want an *OpenError for %s", p, err, target)
			}
			var oe0 *breaker.OpenError
			_, err = f.b(0).Allow()
			if !errors.As(err, &oe0) || !oe0.ProbeAt.Equal(oe.ProbeAt) {
				t.Errorf("replicas disagree on the probe time: %v and %v", err, oe)
			}
			if d := time.Until(oe.ProbeAt); d < opts.Cooldown-time.Minute || d > opts.Cooldown {
				t.Errorf("probe at %v from now, want about the cool-down %v", d, opts.Cooldown)
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			if len(f.changes) != 2 || f.changes[0] != "0:closed>open" || f.changes[1] != "1:closed>open" {
				t.Errorf("state changes %v, want 0:closed>open, 1:closed>open", f.changes)
			}
		}},
		{"half-open lets Probes through across the fleet", breaker.Options{}, func(t *testing.T, f *fleet) {
			f.open(0)
			f.endCooldown()
			granted := 0
			for i := range 6 {
				if p := f.allow(i % 2); p != nil {
					granted++
					if !p.Probe() {
						t.Errorf("permit %d in half-open is not a probe", i)
					}
				}
			}
			if granted != opts.Probes {
				t.Errorf("%d probes granted across two replicas, want %d", granted, opts.Probes)
			}
			f.wantStates(breaker.HalfOpen, breaker.HalfOpen)
			if s := f.b(1).Snapshot(); s.Probes != opts.Probes {
				t.Errorf("snapshot shows %d probes, want %d", s.Probes, opts.Probes)
			}
		}},
		{"concurrent asks across the fleet get Probes probes", breaker.Options{}, func(t *testing.T, f *fleet) {
			f.open(0)
			f.endCooldown()
			var wg sync.WaitGroup
			var mu sync.Mutex
			granted := 0
			for i := range 16 {
				wg.Go(func() {
					if _, err := f.b(i % 2).Allow(); err == nil {
						mu.Lock()
						granted++
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			if granted != opts.Probes {
				t.Errorf("%d of 16 concurrent asks granted, want %d (%+v %+v)", granted, opts.Probes, f.cs[0].Stats(), f.cs[1].Stats())
			}
		}},
		{"a probe's success closes it for all", breaker.Options{}, func(t *testing.T, f *fleet) {
			f.open(0)
			f.endCooldown()
			p := f.allow(1)
			if p == nil {
				t.Fatal("no probe")
			}
			p.Done(breaker.Success)
			if s := f.state(0); s != breaker.Closed {
				t.Errorf("replica 0 after replica 1's probe succeeded: %v, want closed", s)
			}
			f.wantStates(breaker.Closed, breaker.Closed)
		}},
		{"a probe's failure opens it again for all", breaker.Options{}, func(t *testing.T, f *fleet) {
			f.open(0)
			f.endCooldown()
			p0, p1 := f.allow(0), f.allow(1)
			if p0 == nil || p1 == nil {
				t.Fatal("want two probes")
			}
			p1.Done(breaker.Failure)
			p0.Done(breaker.Success) // its lease went with the reopening
			if s := f.state(0); s != breaker.Open {
				t.Errorf("replica 0: %v, want open again", s)
			}
			f.wantStates(breaker.Open, breaker.Open)
		}},
		{"a throttled probe frees its lease only", oneProbe, func(t *testing.T, f *fleet) {
			f.open(0)
			f.endCooldown()
			f.allow(0).Done(breaker.Responsive)
			if p := f.allow(1); p == nil {
				t.Error("the lease was not freed")
			}
			f.wantStates(breaker.HalfOpen, breaker.HalfOpen)
		}},
		{"a killed prober's lease expires", oneProbe, func(t *testing.T, f *fleet) {
			f.open(0)
			f.endCooldown()
			if f.allow(0) == nil { // replica 0 dies with it
				t.Fatal("no probe")
			}
			if f.allow(1) != nil {
				t.Fatal("a second probe while the first's lease holds")
			}
			ctx := context.Background()
			leases, err := f.rdb.ZRangeWithScores(ctx, probesKey, 0, -1).Result()
			if err != nil || len(leases) != 1 {
				t.Fatalf("leases %v, %v, want one", leases, err)
			}
			if d := time.UnixMilli(int64(leases[0].Score)).Sub(time.Now()); d < 0 || d > oneProbe.ProbeLease {
				t.Errorf("lease expires in %v, want within the lease %v", d, oneProbe.ProbeLease)
			}
			// Its time passes.
			f.rdb.ZAdd(ctx, probesKey, redis.Z{Score: 1, Member: leases[0].Member})
			if f.allow(1) == nil {
				t.Error("the expired lease still holds the slot")
			}
		}},
		{"a lease lasts the call's deadline", breaker.Options{}, func(t *testing.T, f *fleet) {
			f.open(0)
			f.endCooldown()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			if _, err := f.b(0).AllowContext(ctx); err != nil {
				t.Fatal(err)
			}
			score, err := f.rdb.ZRangeWithScores(context.Background(), probesKey, 0, 0).Result()
			if err != nil || len(score) != 1 {
				t.Fatalf("leases %v, %v", score, err)
			}
			if d := time.UnixMilli(int64(score[0].Score)).Sub(time.Now()); d < 4*time.Minute || d > 6*time.Minute {
				t.Errorf("lease expires in %v, want about the 5m deadline", d)
			}
		}},
		{"keys expire when idle", breaker.Options{}, func(t *testing.T, f *fleet) {
			f.open(0)
			ttl, err := f.rdb.PTTL(context.Background(), stateKey).Result()
			if err != nil || ttl <= opts.Cooldown || ttl > opts.Cooldown+redisx.IdleTTL {
				t.Errorf("open state's TTL %v (%v), want the cool-down plus up to %v", ttl, err, redisx.IdleTTL)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := opts
			if tc.opts.Probes != 0 {
				o = tc.opts
			}
			tc.run(t, newFleet(t, srv, 2, o))
		})
	}
}

func TestGarbageIsReset(t *testing.T) {
	srv := redistest.Start(t)
	for _, tc := range []struct {
		name string
		put  func(ctx context.Context, rdb *redis.Client) error
	}{
		{"a string", func(ctx context.Context, rdb *redis.Client) error { return rdb.Set(ctx, stateKey, "junk", 0).Err() }},
		{"a bad state", func(ctx context.Context, rdb *redis.Client) error {
			return rdb.HSet(ctx, stateKey, "s", 7, "g", 1, "since", 0, "until", 0, "ok", 0).Err()
		}},
		{"a missing field", func(ctx context.Context, rdb *redis.Client) error {
			return rdb.HSet(ctx, stateKey, "s", 2, "g", 3).Err()
		}},
		{"text for a number", func(ctx context.Context, rdb *redis.Client) error {
			return rdb.HSet(ctx, stateKey, "s", 2, "g", "x", "since", 0, "until", 0, "ok", 0).Err()
		}},
		{"probes a list", func(ctx context.Context, rdb *redis.Client) error {
			if err := rdb.HSet(ctx, stateKey, "s", 1, "g", 4, "since", 0, "until", 0, "ok", 0).Err(); err != nil {
				return err
			}
			return rdb.RPush(ctx, probesKey, "a", "b").Err()
		}},
		{"open for ever", func(ctx context.Context, rdb *redis.Client) error {
			return rdb.HSet(ctx, stateKey, "s", 2, "g", 1, "since", 0, "until", "1e300", "ok", 0).Err()
		}},
		{"open until inf", func(ctx context.Context, rdb *redis.Client) error {
			return rdb.HSet(ctx, stateKey, "s", 2, "g", 1, "since", 0, "until", "inf", "ok", 0).Err()
		}},
		{"failing a string", func(ctx context.Context, rdb *redis.Client) error {
			return rdb.Set(ctx, failingKey, "junk", 0).Err()
		}},
		{"leases for ever", func(ctx context.Context, rdb *redis.Client) error {
			if err := rdb.HSet(ctx, stateKey, "s", 1, "g", 4, "since", 0, "until", 0, "ok", 0).Err(); err != nil {
				return err
			}
			return rdb.ZAdd(ctx, probesKey, redis.Z{Score: 1e15, Member: "x"}, redis.Z{Score: 1e15, Member: "y"}).Err()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFleet(t, srv, 1, opts)
			if err := tc.put(context.Background(), f.rdb); err != nil {
				t.Fatal(err)
			}
			p, err := f.b(0).Allow()
			if err != nil {
				t.Fatalf("Allow over garbage: %v", err)
			}
			p.Done(breaker.Failure)
			f.wantStates(breaker.Open)
			if s, err := f.rdb.HGet(context.Background(), stateKey, "s").Result(); err != nil || s != "2" {
				t.Errorf("state key after the reset: %q, %v, want the open state", s, err)
			}
		})
	}
}

func TestRedisDown(t *testing.T) {
	f := newFleet(t, nil, 2, opts)
	c := f.cs[0]
	f.open(1)
	f.state(0) // replica 0 sees it open
	f.srv.Kill()
	failures := c.Stats().Failures

	// Local state: open, as last seen, until its own cool-down ends.
	for range 10 {
		if f.allow(0) != nil {
			t.Fatal("a call let through while the last state seen is open")
		}
	}
	if n := c.Stats().Failures - failures; n != 1 {
		t.Errorf("%d round trips failed in 10 calls, want 1 until %v has passed", n, fallback.RetryEvery)
	}
	f.clk.Advance(opts.Cooldown + time.Minute) // Redis's clock ran a little ahead of the fake's start
	p := f.allow(0)
	if p == nil || !p.Probe() {
		t.Fatal("no local probe once the cool-down has passed")
	}
	p.Done(breaker.Success)
	f.wantStates(breaker.Closed)
	// The local judgement opens the local breaker.
	f.allow(0).Done(breaker.Failure)
	f.wantStates(breaker.Open)

	// Back: after RetryEvery, the shared state (empty, restarted: closed) rules.
	f.srv.Restart()
	if f.allow(0) != nil {
		t.Fatal("Redis tried again before RetryEvery")
	}
	f.clk.Advance(fallback.RetryEvery)
	if f.allow(0) == nil {
		t.Fatal("the restarted Redis's closed state was not used")
	}
	f.open(0)
	if f.state(1) != breaker.Open {
		t.Error("replica 1 does not see replica 0's opening after the restart")
	}
}

func TestRedisSlow(t *testing.T) {
	srv := redistest.Start(t)
	// A Client whose timeout is the one the round trips meet, short beside
	// the pause but long enough for a loaded machine's round trips.
	const timeout = 500 * time.Millisecond
	c, err := redisx.Open(context.Background(), redisx.Options{URL: srv.URL, Timeout: timeout,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	o := opts
	o.Shared = redisbreaker.New(c, clock.NewFake(time.Now()))
	r, err := breaker.NewRegistry(o, nil)
	if err != nil {
		t.Fatal(err)
	}
	b := r.Get(model, region)
	if _, err := b.Allow(); err != nil {
		t.Fatal(err)
	}
	// Redis stops running scripts for longer than any call may wait.
	const pause = 5 * time.Second
	ctx := context.Background()
	if err := srv.Client().Do(ctx, "CLIENT", "PAUSE", pause.Milliseconds(), "WRITE").Err(); err != nil {
		t.Fatal(err)
	}
	defer srv.Client().Do(ctx, "CLIENT", "UNPAUSE")
	failures := c.Stats().Failures
	start := time.Now()
	for i := range 21 {
		if _, err := b.AllowContext(ctx); err != nil {
			t.Fatalf("call %d while Redis hangs: %v, want the local closed state's permit", i, err)
		}
	}
	if took := time.Since(start); took >= pause/2 {
		t.Errorf("21 calls took %v while Redis hung, want the first bounded by the timeout %v, the others skipping Redis", took, timeout)
	}
	if n := c.Stats().Failures - failures; n != 1 {
		t.Errorf("%d round trips failed, want 1 (the others skipped until %v)", n, fallback.RetryEvery)
	}
}

func TestQuorum(t *testing.T) {
	// Two failures in a row open a replica's breaker; one is only seen.
	o := breaker.Options{MinCalls: 100, ConsecutiveFailures: 2, Cooldown: time.Hour, Probes: 1, Successes: 1}
	fail := func(f *fleet, i, n int) {
		t.Helper()
		for range n {
			p := f.allow(i)
			if p == nil {
				t.Fatalf("replica %d: refused while closed", i)
			}
			p.Done(breaker.Failure)
		}
	}
	sharedState := func(f *fleet) string {
		t.Helper()
		s, err := f.rdb.HGet(context.Background(), stateKey, "s").Result()
		if errors.Is(err, redis.Nil) {
			return "none"
		}
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	t.Run("one replica failing opens its own breaker only", func(t *testing.T) {
		// Replicas start in turn, so replica i first counts i+1 alive:
		// replicas 1 and 2 know they are not alone.
		f := newFleetQuorum(t, nil, 3, o, 0)
		fail(f, 2, 2)
		f.wantStates(breaker.Closed, breaker.Closed, breaker.Open)
		if s := sharedState(f); s != "none" {
			t.Errorf("shared state %s after one replica's failures, want none (closed)", s)
		}
		if f.allow(0) == nil || f.allow(1) == nil {
			t.Error("a healthy replica refused a call")
		}
		f.clk.Advance(o.Cooldown)
		p := f.allow(2)
		if p == nil || !p.Probe() {
			t.Fatal("replica 2: no probe of its own after its cool-down")
		}
		p.Done(breaker.Success)
		f.wantStates(breaker.Closed, breaker.Closed, breaker.Closed)
	})
	t.Run("two replicas failing open it for all", func(t *testing.T) {
		f := newFleetQuorum(t, nil, 3, o, 0)
		fail(f, 2, 2)
		fail(f, 1, 1) // seen, not yet judged
		if s := sharedState(f); s != "none" {
			t.Fatalf("shared state %s before a second replica judged, want none", s)
		}
		fail(f, 1, 1)
		if s := sharedState(f); s != "2" {
			t.Errorf("shared state %s after two replicas' failures, want 2 (open)", s)
		}
		if f.allow(0) != nil {
			t.Error("replica 0, which saw no failure, let a call through the fleet's open breaker")
		}
		f.wantStates(breaker.Open, breaker.Open)
	})
	t.Run("a healthy replica's stray failure is no vote", func(t *testing.T) {
		f := newFleetQuorum(t, nil, 3, o, 0)
		for i := range 20 {
			p := f.allow(1)
			if i == 10 {
				p.Done(breaker.Failure) // one of a healthy fleet's stray 5xx
			} else {
				p.Done(breaker.Success)
			}
		}
		fail(f, 2, 2)
		if s := sharedState(f); s != "none" {
			t.Errorf("shared state %s after one replica's failures and another's stray one, want none (closed)", s)
		}
		f.wantStates(breaker.Closed, breaker.Closed, breaker.Open)
	})
	t.Run("a failed probe of a breaker open alone votes again", func(t *testing.T) {
		f := newFleetQuorum(t, nil, 3, o, 0)
		fail(f, 2, 2)
		// Replica 2's vote lapses (its window ends), then replica 1
		// opens alone too.
		if err := f.rdb.ZRem(context.Background(), failingKey, f.cs[2].ID()).Err(); err != nil {
			t.Fatal(err)
		}
		fail(f, 1, 2)
		if s := sharedState(f); s != "none" {
			t.Fatalf("shared state %s with one vote alive, want none", s)
		}
		f.clk.Advance(o.Cooldown)
		p := f.allow(2)
		if p == nil || !p.Probe() {
			t.Fatal("replica 2: no probe of its own")
		}
		p.Done(breaker.Failure)
		if s := sharedState(f); s != "2" {
			t.Errorf("shared state %s after replica 2's failed probe with replica 1 failing, want 2 (open)", s)
		}
		if f.allow(0) != nil {
			t.Error("replica 0 let a call through the fleet's open breaker")
		}
	})
	t.Run("votes held for ever are garbage", func(t *testing.T) {
		f := newFleetQuorum(t, nil, 3, o, 0)
		if err := f.rdb.ZAdd(context.Background(), failingKey, redis.Z{Score: 1e15, Member: "ghost"}).Err(); err != nil {
			t.Fatal(err)
		}
		fail(f, 2, 2)
		if s := sharedState(f); s != "none" {
			t.Errorf("shared state %s after one replica's failures and a ghost's, want none (closed)", s)
		}
	})
	t.Run("an Allow in flight does not close a breaker open alone", func(t *testing.T) {
		f := newFleetQuorum(t, nil, 3, o, 0)
		h := &holdHook{entered: make(chan struct{}), release: make(chan struct{})}
		f.cs[2].Redis().AddHook(h)
		p1, p2 := f.allow(2), f.allow(2) // let in while closed
		h.arm()
		allowed := make(chan bool)
		go func() { allowed <- f.allow(2) != nil }()
		<-h.entered // its round trip waits: it will read closed
		p1.Done(breaker.Failure)
		p2.Done(breaker.Failure) // two in a row: opens alone
		close(h.release)
		if <-allowed {
			t.Error("replica 2 let the call in flight through after opening alone")
		}
		f.wantStates(breaker.Closed, breaker.Closed, breaker.Open)
		if f.allow(2) != nil {
			t.Error("replica 2 let a call through after an Allow in flight answered closed")
		}
	})
	t.Run("the only replica alive opens it", func(t *testing.T) {
		f := newFleetQuorum(t, nil, 1, o, 0)
		fail(f, 0, 2)
		if s := sharedState(f); s != "2" {
			t.Errorf("shared state %s, want 2 (open)", s)
		}
	})
}

func TestProbeSuccessRenewsTTL(t *testing.T) {
	f := newFleet(t, nil, 1, breaker.Options{MinCalls: 1, Cooldown: time.Hour, Probes: 2, Successes: 2})
	f.open(0)
	f.endCooldown()
	p := f.allow(0)
	if p == nil {
		t.Fatal("no probe")
	}
	ctx := context.Background()
	// Most of the half-open state's idle time passes.
	if err := f.rdb.PExpire(ctx, stateKey, time.Second).Err(); err != nil {
		t.Fatal(err)
	}
	p.Done(breaker.Success) // one of two: the state stays half-open
	if ttl, err := f.rdb.PTTL(ctx, stateKey).Result(); err != nil || ttl < redisx.IdleTTL-time.Minute {
		t.Errorf("state key's TTL after a probe's success %v (%v), want about %v", ttl, err, redisx.IdleTTL)
	}
}

// holdHook holds the first command sent after arm until release is
// closed, telling entered when it is held.
type holdHook struct {
	mu      sync.Mutex
	armed   bool
	entered chan struct{}
	release chan struct{}
}

func (h *holdHook) arm() { h.mu.Lock(); h.armed = true; h.mu.Unlock() }

func (h *holdHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *holdHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.mu.Lock()
		hold := h.armed
		h.armed = false
		h.mu.Unlock()
		if hold {
			h.entered <- struct{}{}
			<-h.release
		}
		return next(ctx, cmd)
	}
}

func (h *holdHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func TestCallerDoneIsNoOutage(t *testing.T) {
	srv := redistest.Start(t)
	for _, tt := range redisxtest.EndedContexts() {
		t.Run(tt.Name, func(t *testing.T) {
			f := newFleet(t, srv, 1, opts)
			ctx, cancel := tt.Ctx()
			defer cancel()
			f.allow(0).DoneContext(ctx, breaker.Failure) // opens; the store is not asked
			if s := f.cs[0].Stats(); s.Degraded || s.Episodes != 0 || s.Failures != 0 {
				t.Errorf("a caller's ended context counted against Redis: %+v", s)
			}
			if f.allow(0) == nil {
				t.Error("the next call was refused by the local state: Redis not asked")
			}
		})
	}
}
