package auth

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keel-run/keel/internal/admission"
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
//
// The buckets are kept in an admission.Store, keyed by BudgetKey: a
// MemStore of their own (NewBudgets), or one that processes share
// (NewBudgetsIn with a redisstore.Failover), so that every replica draws
// on one budget per caller. Each reservation is held under a lease, which
// the store expires LeaseMargin after the call's deadline should the
// process die before it settles.
type Budgets struct {
	clk     clock.Clock
	store   admission.Store
	buckets map[string]*budget // by caller name; nil for a caller without a budget

	owner     uint64        // the Owner of the leases' IDs
	seq       atomic.Uint64 // the last lease's N
	storeErrs atomic.Int64
	lastErr   atomic.Pointer[error]
}

// budget is one caller's bucket, in the store under key. Its level may go
// below zero: a grant that must wait takes its tokens at once and waits
// for the debt to be refilled, so waiters are served first come, first
// served (as golang.org/x/time/rate's reservations are).
type budget struct {
	name  string
	key   admission.Target
	limit int     // tokens per minute: the capacity
	rate  float64 // tokens per second
}

// BudgetKey returns the key of the named caller's bucket in a Store: a
// Target whose Model is "caller:" and the name, which no Bedrock model id
// starts with.
func BudgetKey(name string) admission.Target { return admission.Target{Model: "caller:" + name} }

// NewBudgets returns the budgets of callers, checked as New checks them;
// a caller whose TokensPerMinute is zero has none. clk tells the time;
// nil is the wall clock. Each bucket starts full, in memory.
func NewBudgets(callers []Caller, clk clock.Clock) (*Budgets, error) {
	return NewBudgetsIn(callers, clk, nil)
}

// NewBudgetsIn is NewBudgets with the buckets in store (nil: a MemStore of
// their own). A bucket the store already holds (another process made it)
// is kept as it is; the error of a store that cannot make one names the
// caller.
func NewBudgetsIn(callers []Caller, clk clock.Clock, store admission.Store) (*Budgets, error) {
	if err := validateCallers(callers); err != nil {
		return nil, err
	}
	if clk == nil {
		clk = clock.Real{}
	}
	if store == nil {
		store = &admission.MemStore{}
	}
	b := &Budgets{clk: clk, store: store, buckets: make(map[string]*budget, len(callers)), owner: rand.Uint64() | 1}
	now := clk.Now()
	for _, c := range callers {
		if c.TokensPerMinute == 0 {
			b.buckets[c.Name] = nil
			continue
		}
		bk := &budget{name: c.Name, key: BudgetKey(c.Name), limit: c.TokensPerMinute, rate: float64(c.TokensPerMinute) / 60}
		full := float64(c.TokensPerMinute)
		if err := store.Open(context.Background(), bk.key, now, admission.Buckets{TokensPerMinute: full, Tokens: full}); err != nil {
			return nil, fmt.Errorf("auth: budget of caller %s: %w", c.Name, err)
		}
		b.buckets[c.Name] = bk
	}
	return b, nil
}

// StoreErr returns how many operations on the budgets' store failed, and
// the latest failure (nil: none). A reservation whose store fails is
// granted without its budget.
func (b *Budgets) StoreErr() (int64, error) {
	if p := b.lastErr.Load(); p != nil {
		return b.storeErrs.Load(), *p
	}
	return 0, nil
}

func (b *Budgets) noteErr(err error) {
	b.storeErrs.Add(1)
	b.lastErr.Store(&err)
}

// Reserve takes tokens from the named caller's budget, waiting until they
// fit, and returns release, which settles the reservation: release(used)
// gives back tokens-used (takes the difference when used is larger), and
// must be called once the call's usage is known, with 0 when it was
// never charged (refused, cancelled before it was sent). Calls after the
// first do nothing. Should the process die first, the reservation's lease
// gives nothing back when it expires: its input is not known (see
// ReserveInput).
//
// Reserve refuses at once, with an *Error carrying Bedrock's 429
// ThrottlingException and a message naming the caller's budget, a request
// larger than the whole budget, and one that would still be waiting at
// ctx's deadline. When ctx ends while it waits, it gives the tokens back
// and returns an error wrapping ctx's. A caller without a budget is never
// refused. An unknown caller or negative tokens are errors, not refusals.
func (b *Budgets) Reserve(ctx context.Context, caller string, tokens int) (release func(used int), err error) {
	return b.reserve(ctx, caller, tokens, tokens)
}

// ReserveInput is Reserve of input + maxTokens tokens, whose lease, should
// the process die before release, gives back maxTokens when it expires:
// what the call would give back had it produced no output.
func (b *Budgets) ReserveInput(ctx context.Context, caller string, input, maxTokens int) (release func(used int), err error) {
	if input < 0 || maxTokens < 0 {
		return nil, fmt.Errorf("auth: ReserveInput(%q, input=%d, maxTokens=%d): tokens must not be negative", caller, input, maxTokens)
	}
	return b.reserve(ctx, caller, input+maxTokens, input)
}

// reserve is Reserve of tokens of which input are the call's input.
func (b *Budgets) reserve(ctx context.Context, caller string, tokens, input int) (release func(used int), err error) {
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
	until := now.Add(admission.LeaseDefault)
	if d, ok := ctx.Deadline(); ok {
		until = d.Add(admission.LeaseMargin)
	}
	lease := admission.Lease{ID: admission.LeaseID{Owner: b.owner, N: b.seq.Add(1)}, Until: until, Refund: float64(tokens - input)}
	lv, err := b.store.Take(context.Background(), bk.key, now, float64(tokens), lease)
	if err != nil {
		b.noteErr(err)
		return func(int) {}, nil
	}
	if lv.Tokens < 0 {
		wait := time.Duration(math.Ceil(-lv.Tokens / bk.rate * float64(time.Second)))
		if deadline, ok := ctx.Deadline(); ok && now.Add(wait).After(deadline) {
			b.end(bk, lease, float64(tokens))
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
			b.end(bk, lease, float64(tokens))
			return nil, fmt.Errorf("auth: caller %s waited for its budget: %w", caller, context.Cause(ctx))
		}
	}
	var once sync.Once
	return func(used int) {
		once.Do(func() { b.end(bk, lease, float64(tokens-max(used, 0))) })
	}, nil
}

// end ends lease, giving back refund tokens (taking them when negative);
// when the lease expired meanwhile (and gave back its Refund), what is
// still due.
func (b *Budgets) end(bk *budget, lease admission.Lease, refund float64) {
	ctx, now := context.Background(), b.clk.Now()
	_, live, err := b.store.End(ctx, bk.key, now, lease.ID, refund, 0)
	if err == nil && !live {
		_, err = b.store.Give(ctx, bk.key, now, refund-lease.Refund, 0)
	}
	if err != nil {
		b.noteErr(err)
	}
}
