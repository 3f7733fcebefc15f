package admission

import (
	"context"
	"time"
)

// warm gives back, while the target warms up, what a call granted since the
// last confirmed throttle cost when it settles, up to what a full start
// would have held beyond the level (warmGap): each call that gets through
// unlocks as much again of the full start's bucket, so the bucket Bedrock
// holds full is used within a few replies, and one it holds empty throttles
// only the first second of quota. Warming ends at the first confirmed
// throttle or a minute after the target was first seen. l.mu must be held.
func (l *limiter) warm(t *Ticket, cost float64, now time.Time) {
	if l.warmGap <= 0 {
		return
	}
	if now.Sub(l.born) >= windowSpan {
		l.warmGap = 0
		return
	}
	if credit := min(cost, l.warmGap); t.gen == l.gen && credit > 0 {
		l.keep(l.g.store.Give(context.Background(), l.target, now, credit, 0))
		l.warmGap -= credit
	}
}

// lend reports whether a call holding hold tokens may go now, while the
// target warms up, on the bucket it would have had starting full: an
// Interactive call always (warm-up keeps Batch work from throttling a spent
// bucket, but an interactive call does not wait a second of quota at a
// process's start), a Batch call when no call is in flight (a large call
// would otherwise wait for its whole hold to refill from a second of quota,
// longer than with the quota unknown). What a call takes beyond the level
// is a debt the other Batch calls wait out. l.mu must be held.
func (l *limiter) lend(class Class, hold float64, now time.Time) bool {
	if l.warmGap <= 0 || (class != Interactive && l.inflight > 0) || now.Before(l.pausedUntil) || now.Sub(l.born) >= windowSpan {
		return false
	}
	v := l.view
	v.Tokens = min(v.Tokens+l.warmGap, v.capacity())
	return v.room(hold)
}
