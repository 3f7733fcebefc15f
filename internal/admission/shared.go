package admission

import (
	"math"
	"time"
)

// Governors in several processes that share one Store (redisstore) share
// what their limiters learn through it: the limit is in the buckets, and
// each confirmed throttle that empties them counts in Drains.

// joinSpan is how long after another Governor's drain a confirmed throttle
// of this one belongs to the same episode: Bedrock throttles the calls every
// replica has in transit within a round trip or two of its bucket running
// dry, and a confirmation takes a second throttled call, seconds at most.
const joinSpan = 5 * time.Second

// follow takes up, as the learner's own, a limit that another Governor
// sharing the Store set: b's limit differs from the one the limiter last
// saw, and the limiter did not set it (own). The limit's CUBIC curve
// restarts on its plateau there, and slow start ends (the other Governor
// learns on). Buckets that hold only a share of the limit (a Failover's
// local ones) are no one's limit and are not followed. l.mu must be held.
func (l *limiter) follow(b Buckets, own bool) {
	if b.Share != 0 {
		return
	}
	prev := l.sharedLimit
	l.sharedLimit = b.TokensPerMinute
	if own || prev == 0 || prev == b.TokensPerMinute {
		return
	}
	if math.IsInf(b.TokensPerMinute, 1) {
		return // buckets made anew for an unknown quota: learned again
	}
	l.wmax = b.TokensPerMinute
	l.epoch = l.g.clk.Now().Add(-time.Duration(l.g.recovery * float64(time.Second)))
	l.climb.active = false
	l.slow = false
}

// joined reports whether a throttle confirmed at now falls in an episode
// another Governor sharing the Store has already reacted to: the buckets
// were drained since the limiter last saw them, within joinSpan. Then the
// limiter starts a new throttle generation, as react does (the calls in
// transit were sent before it knew), but neither empties the bucket nor
// changes the limit again: N replicas hit by one burst of throttles cut
// once. l.mu must be held.
func (l *limiter) joined(now time.Time) bool {
	v := &l.view
	if v.Share != 0 || v.Drains <= l.drains || now.Sub(v.DrainedAt) > joinSpan {
		return false
	}
	l.drains = v.Drains
	l.lastThrott = now
	l.gen++
	l.suspicion = suspicion{}
	l.syncSeq = l.flight.next
	return true
}
