package budget

import (
	"context"
	"time"
)

// Shared keeps a retry budget's counts where every process spending the
// same budget sees them (internal/budget/redisbudget keeps them in Redis),
// so that the retries of all of them together stay within the budget.
// Processes sharing one must share its Options (Ratio, MinPerSecond and
// Window).
//
// Implementations are safe for concurrent use. Any error means the store
// could not answer; the Budget then decides with its local counts (see
// Options.Shared), so an implementation should fail fast while its store
// is known to be down.
type Shared interface {
	// Request counts one first attempt now in a window of the given
	// length.
	Request(ctx context.Context, window time.Duration) error
	// TryAcquire counts one retry now if the retries in the window, that
	// one included, number at most ratio×(first attempts in the window) +
	// reserve, and reports whether it did. Counts are the window's, the
	// retry included when granted.
	TryAcquire(ctx context.Context, window time.Duration, ratio, reserve float64) (Counts, bool, error)
	// Share is the part of the MinPerSecond reserve this process uses
	// while the store fails, in (0, 1]: its share of the processes.
	Share() float64
}

// Counts are the first attempts and the retries in a window.
type Counts struct {
	Requests, Retries int64
}

// RequestContext is Request for a call whose context is ctx: with
// Options.Shared, the round trip to the store ends with ctx (and the
// store's own timeout).
func (b *Budget) RequestContext(ctx context.Context) {
	if b == nil {
		return
	}
	now := b.clk.Now()
	b.mu.Lock()
	b.requests.Add(now, 1)
	b.mu.Unlock()
	if b.opts.Shared != nil {
		// A failure is counted locally already.
		_ = b.opts.Shared.Request(ctx, b.opts.Window)
	}
}

// TryAcquireContext is TryAcquire for a call whose context is ctx, as
// RequestContext is Request.
func (b *Budget) TryAcquireContext(ctx context.Context) bool {
	ok, _, _ := b.tryAcquire(ctx)
	return ok
}

// AcquireContext is Acquire for a call whose context is ctx, as
// RequestContext is Request.
func (b *Budget) AcquireContext(ctx context.Context) error {
	ok, c, shared := b.tryAcquire(ctx)
	if ok {
		return nil
	}
	if !shared {
		s := b.Stats()
		c = Counts{Requests: s.Requests, Retries: s.Retries}
	}
	return &ExhaustedError{Requests: c.Requests, Retries: c.Retries, Ratio: b.opts.Ratio,
		MinPerSecond: b.opts.MinPerSecond, Window: b.opts.Window}
}

// tryAcquire decides a retry: by the Shared store when there is one and it
// answers (shared true, with its counts), else by the local counts.
func (b *Budget) tryAcquire(ctx context.Context) (ok bool, c Counts, shared bool) {
	if b == nil {
		return true, Counts{}, false
	}
	reserve := b.reserve
	if s := b.opts.Shared; s != nil {
		var err error
		c, ok, err = s.TryAcquire(ctx, b.opts.Window, b.ratio, b.reserve)
		if err == nil {
			now := b.clk.Now()
			b.mu.Lock()
			if ok {
				b.retries.Add(now, 1) // for the local counts, should the store fail
			} else {
				b.denied++
			}
			b.mu.Unlock()
			return ok, c, true
		}
		reserve *= s.Share()
	}
	return b.tryLocal(reserve), Counts{}, false
}
