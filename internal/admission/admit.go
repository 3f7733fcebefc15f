package admission

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/keel-run/keel/internal/clock"
)

func (l *limiter) admit(ctx context.Context, est Estimate, class Class, by time.Time) (Ticket, error) {
	clk := l.g.clk
	if err := l.mu.LockContext(ctx); err != nil {
		return Ticket{}, fmt.Errorf("admission: %s: %w", l.target, err)
	}
	now := clk.Now()
	if l.gone {
		l.mu.Unlock()
		return Ticket{}, errForgotten
	}
	l.load(now)
	l.decideHeld(now) // as dispatch does
	input, maxTok, hold := l.size(est)
	if by.IsZero() {
		// A call's first admission; a retry was counted then.
		l.offered.Add(now, hold)
	}
	if err := l.tooLarge(est, class, input, maxTok, hold); err != nil {
		l.mu.Unlock()
		return Ticket{}, err
	}
	if !l.queued() && (l.fits(class, hold, now) || l.lend(class, hold, now)) {
		if tk, ok := l.take(ctx, est, class, input, maxTok, hold, now); ok {
			l.n.class[class].Admitted++
			l.mu.Unlock()
			return tk, nil
		}
		// Processes sharing the Store took the room first: queue.
	}

	// Queue, unless the wait would cross the deadline anyway. On the way
	// in, the call is judged as if it were as large as the target's large
	// calls (see judged); once queued, by its own size.
	start := now
	w := &waiter{class: class, est: est, input: input, maxTok: maxTok, hold: hold, since: now, ctx: ctx, by: by,
		ch: make(chan struct{}, 1)}
	b := l.bound(w, now)
	var entry bound
	w.judge, entry = l.judged(class, hold, b, now)
	offered, shed := l.overloaded(class, by, now)
	l.queues[class].push(w)
	if err := l.expire(w, now, start, entry); err != nil {
		l.mu.Unlock()
		return Ticket{}, err
	}
	if shed {
		// The target is overloaded: the other processes sharing its
		// buckets, if any, ask for their share of the refill as this one
		// does, and get it.
		if wait := l.estimateWait(w, now, l.share()); wait > l.g.opts.QueueTarget {
			e := l.shedErr(w, wait, offered)
			l.mu.Unlock()
			return Ticket{}, e
		}
	}
	w.judge = hold
	l.dispatch(now, false)
	for {
		// l.mu is held here.
		if w.granted {
			l.mu.Unlock()
			return w.tk, nil
		}
		// What the reply may take is learned as calls end: judge again.
		b = l.bound(w, now)
		if err := l.expire(w, now, start, b); err != nil {
			l.dispatch(now, false)
			l.mu.Unlock()
			return Ticket{}, err
		}
		// Every notification is sent under l.mu: one sent before this point
		// is stale, since the state it signalled has been read above.
		select {
		case <-w.ch:
		default:
		}
		wake := b.by
		if l.head == w {
			if at := l.readyAt(class, hold, now); wake.IsZero() || at.Before(wake) {
				wake = at
			}
		}
		l.mu.Unlock()

		var timer clock.Timer
		var tc <-chan time.Time
		if !wake.IsZero() {
			timer = clk.NewTimer(wake.Sub(clk.Now()))
			tc = timer.C()
		}
		var done bool
		select {
		case <-w.ch:
		case <-tc:
		case <-ctx.Done():
			done = true
		}
		if timer != nil {
			timer.Stop()
		}
		now = clk.Now()
		l.mu.Lock()
		if done {
			if w.granted {
				tk := w.tk
				l.cancelLocked(&tk, now)
				l.n.cancelled++
			}
			err := ctx.Err()
			if !w.granted && errors.Is(err, context.DeadlineExceeded) {
				// The context's deadline, seen through its Done channel
				// rather than the timer: the same refusal as expire's.
				e := l.expireErr(w, now, start, b, 0)
				e.Err = err
				l.dispatch(now, false)
				l.mu.Unlock()
				return Ticket{}, e
			}
			if !w.granted {
				l.queues[class].remove(w)
				l.clearHead(w)
			}
			l.n.class[class].Cancelled++
			l.dispatch(now, true)
			l.mu.Unlock()
			return Ticket{}, fmt.Errorf("admission: %s: gave up after waiting %v for quota: %w", l.target, now.Sub(start), err)
		}
		l.dispatch(now, false)
	}
}

// shedErr removes the queued w and returns its ErrOverloaded refusal. l.mu
// must be held.
func (l *limiter) shedErr(w *waiter, wait time.Duration, offered float64) *Error {
	ahead := l.ahead(w)
	l.queues[w.class].remove(w)
	l.clearHead(w)
	l.n.class[w.class].Shed++
	return &Error{Target: l.target, Class: w.class, Reason: ErrOverloaded, Tokens: int64(w.hold),
		Input: int64(w.input), MaxTokens: int64(w.maxTok), Wait: wait, Ahead: ahead, Offered: offered,
		QueueTarget: l.g.opts.QueueTarget, Share: l.share()}
}

// expire removes the queued w and returns its *Error when its bound has
// passed or its estimated wait crosses it. l.mu must be held.
func (l *limiter) expire(w *waiter, now, start time.Time, b bound) error {
	if b.by.IsZero() {
		return nil
	}
	var wait time.Duration
	if now.Before(b.by) {
		// The whole refill: the processes sharing the buckets, if any,
		// may not be asking for theirs.
		if wait = l.estimateWait(w, now, 1); !now.Add(wait).After(b.by) {
			return nil
		}
	}
	e := l.expireErr(w, now, start, b, wait)
	if b.fromCtx && !now.Before(b.ctx) {
		e.Err = context.DeadlineExceeded
	}
	return e
}

// expireErr removes the queued w and returns its refusal. l.mu must be held.
func (l *limiter) expireErr(w *waiter, now, start time.Time, b bound, wait time.Duration) *Error {
	ahead := l.ahead(w)
	l.queues[w.class].remove(w)
	l.clearHead(w)
	l.n.class[w.class].Expired++
	e := &Error{Target: l.target, Class: w.class, Reason: ErrWouldExceedDeadline, Tokens: int64(w.hold),
		Input: int64(w.input), MaxTokens: int64(w.maxTok), Wait: wait, Left: max(b.by.Sub(now), 0),
		Waited: now.Sub(start), Ahead: ahead}
	if b.fromCtx {
		e.Left, e.Reply, e.ReplyGuessed = max(b.ctx.Sub(now), 0), b.reply, b.guess
	}
	return e
}

func (l *limiter) clearHead(w *waiter) {
	if l.head == w {
		l.head = nil
	}
}
