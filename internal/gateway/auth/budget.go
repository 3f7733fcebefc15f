package auth

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/clock"
)

// Budgets holds each caller's share of the quota: a token bucket per
// caller with a TokensPerMinute, holding at most a minute of it and
// refilled at TokensPerMinute/60 a second, as Bedrock's own quota is. It
// is safe for concurrent use.
//
// A call reserves what Bedrock reserves for it (input tokens + max tokens)
// before it is sent, and settles to what it used when its usage is known,
// the rest given back: the engine's semantics, one level up.
type Budgets struct {
	clk     clock.Clock
	buckets map[string]*budget // by caller name; nil for a caller without a budget
}

// budget is one caller's bucket. Its level may go below zero: a grant
// that must wait takes its tokens at once and waits for the debt to be
// refilled, so waiters are served first come, first served (as
// golang.org/x/time/rate's reservations are).
type budget struct {
	name  string
	limit int     // tokens per minute: the capacity
	rate  float64 // tokens per second

	mu    sync.Mutex
	level float64
	last  time.Time // of the last refill
}

// NewBudgets returns the budgets of callers, checked as New checks them;
// a caller whose TokensPerMinute is zero has none. clk tells the time;
// nil is the wall clock. Each bucket starts full.
func NewBudgets(callers []Caller, clk clock.Clock) (*Budgets, error) {
	if err := validateCallers(callers); err != nil {
		return nil, err
	}
	if clk == nil {
		clk = clock.Real{}
	}
	b := &Budgets{clk: clk, buckets: make(map[string]*budget, len(callers))}
	now := clk.Now()
	for _, c := range callers {
		if c.TokensPerMinute == 0 {
			b.buckets[c.Name] = nil
			continue
		}
		b.buckets[c.Name] = &budget{name: c.Name, limit: c.TokensPerMinute,
			rate: float64(c.TokensPerMinute) / 60, level: float64(c.TokensPerMinute), last: now}
	}
	return b, nil
}

// Reserve takes tokens from the named caller's budget, waiting until they
// fit, and returns release, which settles the reservation: release(used)
// gives back tokens-used (takes the difference when used is larger), and
// must be called once the call's usage is known, with 0 when it was
// never charged (refused, cancelled before it was sent). Calls after the
// first do nothing.
//
// Reserve refuses at once, with an *Error carrying Bedrock's 429
// ThrottlingException and a message naming the caller's budget, a request
// larger than the whole budget, and one that would still be waiting at
// ctx's deadline. When ctx ends while it waits, it gives the tokens back
// and returns an error wrapping ctx's. A caller without a budget is never
// refused. An unknown caller or negative tokens are errors, not refusals.
func (b *Budgets) Reserve(ctx context.Context, caller string, tokens int) (release func(used int), err error) {
	bk, ok := b.buckets[caller]
	switch {
	case !ok:
		return nil, fmt.Errorf("auth: Reserve: no caller named %q", caller)
	case tokens < 0:
		return nil, fmt.Errorf("auth: Reserve(%q, tokens=%d): tokens must not be negative", caller, tokens)
	case bk == nil:
		return func(int) {}, nil
	case tokens > bk.limit:
		return nil, newError(ErrOverBudget, catalog.CodeThrottling, fmt.Sprintf(
			"Too many tokens, please wait before trying again. Caller %s's budget is %d tokens per minute; "+
				"this request reserves %d (input + max tokens) and can never fit.", caller, bk.limit, tokens))
	}

	now := b.clk.Now()
	wait := bk.take(now, tokens)
	if wait > 0 {
		if deadline, ok := ctx.Deadline(); ok && now.Add(wait).After(deadline) {
			bk.give(b.clk.Now(), tokens)
			return nil, newError(ErrOverBudget, catalog.CodeThrottling, fmt.Sprintf(
				"Too many tokens, please wait before trying again. Caller %s's budget of %d tokens per minute "+
					"has no room for %d more until %v from now, after the request's deadline.",
				caller, bk.limit, tokens, wait.Round(time.Millisecond)))
		}
		t := b.clk.NewTimer(wait)
		select {
		case <-t.C():
		case <-ctx.Done():
			t.Stop()
			bk.give(b.clk.Now(), tokens)
			return nil, fmt.Errorf("auth: caller %s waited for its budget: %w", caller, context.Cause(ctx))
		}
	}
	var once sync.Once
	return func(used int) {
		once.Do(func() { bk.give(b.clk.Now(), tokens-max(used, 0)) })
	}, nil
}

// refill adds what the bucket gained since the last refill, up to its
// capacity. A now before the last refill adds nothing.
func (bk *budget) refill(now time.Time) {
	if d := now.Sub(bk.last); d > 0 {
		bk.level = min(float64(bk.limit), bk.level+d.Seconds()*bk.rate)
		bk.last = now
	}
}

// take takes tokens, leaving the bucket in debt if need be, and returns
// how long until the debt is repaid: zero when the tokens were there.
func (bk *budget) take(now time.Time, tokens int) time.Duration {
	bk.mu.Lock()
	defer bk.mu.Unlock()
	bk.refill(now)
	bk.level -= float64(tokens)
	if bk.level >= 0 {
		return 0
	}
	return time.Duration(math.Ceil(-bk.level / bk.rate * float64(time.Second)))
}

// give adds tokens (takes them when negative), up to the capacity.
func (bk *budget) give(now time.Time, tokens int) {
	bk.mu.Lock()
	defer bk.mu.Unlock()
	bk.refill(now)
	bk.level = min(float64(bk.limit), bk.level+float64(tokens))
}
