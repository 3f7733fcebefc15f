package admission

import (
	"context"
	"math"
	"time"
)

// next returns the call to serve next: the head of the Interactive queue,
// unless Batch calls wait and BatchEvery Interactive grants in a row have
// passed them, and an unknown quota's window lets a Batch call go (see
// startAt): a Batch call the window holds does not hold the Interactive
// calls behind it.
func (l *limiter) next(now time.Time) *waiter {
	wi, wb := l.queues[Interactive].front(), l.queues[Batch].front()
	switch {
	case wi == nil:
		return wb
	case wb == nil:
		return wi
	case l.streak >= l.g.batchEvery && l.startAt(Batch, now).IsZero():
		return wb
	}
	return wi
}

// dispatch grants the calls that fit, in order, and tells the next one it
// is next; with poke, it tells it even if it knew, because tokens came back
// and it may fit sooner than it planned. l.mu must be held.
func (l *limiter) dispatch(now time.Time, poke bool) {
	l.load(now)
	l.decideHeld(now)
	for {
		w := l.next(now)
		if w == nil {
			l.head = nil
			return
		}
		if !l.fits(w.class, w.hold, now) && !l.lend(w.class, w.hold, now) {
			if l.head != w || poke {
				l.head = w
				w.notify()
			}
			return
		}
		if b := l.bound(w, now); !b.by.IsZero() && !now.Before(b.by) {
			// Too late for it now: what replies take grew while it
			// waited (see slowReply). It refuses itself when it wakes,
			// and serves the next call.
			w.notify()
			return
		}
		tk, ok := l.take(w.ctx, w.est, w.class, w.input, w.maxTok, w.hold, now)
		if !ok {
			// Processes sharing the Store took the room first: w waits
			// for the buckets take read.
			l.head = w
			w.notify()
			return
		}
		l.queues[w.class].pop()
		l.clearHead(w)
		if w.class == Interactive && l.queues[Batch].len() > 0 {
			l.streak++
		} else {
			l.streak = 0
		}
		wait := now.Sub(w.since)
		w.tk = tk
		w.tk.waited = wait
		w.granted = true
		cs := &l.n.class[w.class]
		cs.Admitted++
		cs.Waited++
		cs.WaitTotal += wait
		cs.WaitMax = max(cs.WaitMax, wait)
		w.notify()
	}
}

// estimateWait estimates how long the queued w will wait: until the calls
// ahead of it and w itself fit, counting the refill, the pause, and the
// tokens the calls in flight are expected to give back. While calls of the
// other class wait, they are taken to keep coming: as many of them count as
// the BatchEvery rule lets go first (for a Batch call, BatchEvery Interactive
// calls per Batch call up to and including it; for an Interactive call, one
// Batch call per BatchEvery Interactive ones ahead), at their current mean
// size. share is the part of the refill this process's calls get: 1, or
// its share of buckets that other processes drain as fast (see share).
func (l *limiter) estimateWait(w *waiter, now time.Time, share float64) time.Duration {
	sameT, sameN := l.queues[w.class].ahead(w)
	o := &l.queues[1-w.class]
	var otherN float64
	if o.len() > 0 {
		k := float64(l.g.batchEvery)
		if w.class == Interactive {
			otherN = math.Floor((float64(l.streak) + sameN) / k)
		} else {
			otherN = max(k-float64(l.streak), 0) + k*sameN
		}
	}
	var otherT float64
	if otherN > 0 {
		otherT = otherN * o.tokens / float64(o.len())
	}
	at := now
	if l.pausedUntil.After(at) {
		at = l.pausedUntil
	}
	if s := l.scoutAt(now); s.After(at) {
		at = s
	}
	if !l.view.unlimited() {
		refund := l.inflightHold * (1 - l.settleFrac)
		if deficit := sameT + otherT + min(w.judge, l.view.capacity()) - l.view.Tokens - refund; deficit > 0 {
			at = later(at, now, deficit/(share*l.view.TokensPerMinute/60))
		}
	}
	if l.view.RequestsPerMinute > 0 {
		if deficit := sameN + otherN + 1 - l.view.Requests; deficit > 0 {
			at = later(at, now, deficit/(share*l.view.RequestsPerMinute/60))
		}
	}
	return at.Sub(now)
}

// ahead returns the number of calls queued ahead of w in its class and in
// the other.
func (l *limiter) ahead(w *waiter) int {
	_, n := l.queues[w.class].ahead(w)
	return int(n) + l.queues[1-w.class].len()
}

// waiter is a queued call.
type waiter struct {
	class  Class
	est    Estimate
	input  float64
	maxTok int
	hold   float64
	judge  float64 // the hold its wait is estimated with (see judged)
	since  time.Time
	ctx    context.Context // its deadline and by bound its wait (see bounds)
	by     time.Time
	cum    float64 // tokens pushed onto its queue up to and including it
	cumN   int64
	ch     chan struct{} // capacity 1; sent to under l.mu
	// Set under l.mu by dispatch.
	granted bool
	tk      Ticket
}

func (w *waiter) notify() {
	select {
	case w.ch <- struct{}{}:
	default:
	}
}

// fifo is one class's queue. It keeps running totals of the tokens pushed
// and of those that left, so the tokens ahead of a waiter cost nothing to
// find.
type fifo struct {
	w      []*waiter
	h      int     // index of the front
	tokens float64 // live total
	pushed float64
	left   float64
	pushN  int64
	leftN  int64
}

func (q *fifo) len() int { return len(q.w) - q.h }

func (q *fifo) live() []*waiter { return q.w[q.h:] }

func (q *fifo) front() *waiter {
	if q.len() == 0 {
		return nil
	}
	return q.w[q.h]
}

func (q *fifo) push(w *waiter) {
	q.pushed += w.hold
	q.pushN++
	w.cum, w.cumN = q.pushed, q.pushN
	q.tokens += w.hold
	q.w = append(q.w, w)
}

func (q *fifo) pop() {
	q.leave(q.w[q.h])
	q.w[q.h] = nil
	q.h++
	q.compact()
}

func (q *fifo) remove(w *waiter) {
	for i := q.h; i < len(q.w); i++ {
		if q.w[i] == w {
			q.leave(w)
			copy(q.w[i:], q.w[i+1:])
			q.w[len(q.w)-1] = nil
			q.w = q.w[:len(q.w)-1]
			q.compact()
			return
		}
	}
}

func (q *fifo) leave(w *waiter) {
	q.tokens -= w.hold
	q.left += w.hold
	q.leftN++
}

func (q *fifo) compact() {
	switch {
	case q.len() == 0:
		q.w, q.h, q.tokens = q.w[:0], 0, 0
	case q.h > 32 && q.h*2 > len(q.w):
		n := copy(q.w, q.w[q.h:])
		clear(q.w[n:])
		q.w, q.h = q.w[:n], 0
	}
}

// ahead returns the tokens and calls ahead of w. A call behind w that left
// early makes it count a little less than it should; the figure is an
// estimate's input.
func (q *fifo) ahead(w *waiter) (tokens, n float64) {
	return max(0, w.cum-w.hold-q.left), max(0, float64(w.cumN-1-q.leftN))
}
