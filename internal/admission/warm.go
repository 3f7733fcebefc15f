package admission

import (
	"context"
	"time"
)

// warm gives back, while the target warms up, what a call granted since the
// last confirmed throttle cost when it settles: the bucket, which started
// with startBurst of quota, doubles its level every round trip while calls
// get through, up to its capacity, so that a bucket Bedrock holds full is
// used in a few replies and one it holds empty throttles only the first
// second of quota. Warming ends at the first confirmed throttle or a
// minute after the target was first seen. l.mu must be held.
func (l *limiter) warm(t *Ticket, cost float64, now time.Time) {
	if !l.warming {
		return
	}
	if now.Sub(l.born) >= windowSpan {
		l.warming, l.warmGap = false, 0
		return
	}
	if t.gen == l.gen && cost > 0 {
		l.keep(l.g.store.Give(context.Background(), l.target, now, cost, 0))
		l.warmGap = max(l.warmGap-cost, 0)
	}
}

// lend reports whether an Interactive call holding hold tokens may go now,
// while the target warms up, on the bucket it would have had starting full:
// warm-up keeps Batch work from throttling a spent bucket, but an
// interactive call does not wait a second of quota at a process's start.
// What it takes beyond the level is a debt the Batch calls wait out. l.mu
// must be held.
func (l *limiter) lend(class Class, hold float64, now time.Time) bool {
	if !l.warming || class != Interactive || now.Before(l.pausedUntil) || now.Sub(l.born) >= windowSpan {
		return false
	}
	v := l.view
	v.Tokens = min(v.Tokens+l.warmGap, v.capacity())
	return v.room(hold)
}
