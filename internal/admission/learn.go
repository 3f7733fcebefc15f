package admission

import (
	"math"
	"time"
)

// syncPoint is a moment when Bedrock's bucket was known to be (about)
// empty: a confirmed throttle.
type syncPoint struct {
	at    time.Time
	taken float64 // limiter.taken then
	hold  float64 // the throttled call's hold: the bucket held less
	level float64 // the bucket's level once emptied (≤ 0: a debt)
	gen   uint64  // the generation it began
}

// usage returns the tokens the target used over the last minute: what
// settled in it, plus what the calls in flight hold.
func (l *limiter) usage(now time.Time) float64 {
	return l.settled.sum(now) + l.inflightHold
}

// observedRate returns the tokens per minute the target was used at, extra
// tokens (a throttled call's hold) included. When the Governor has watched
// the target for less than a minute, what it used is extrapolated to a
// minute (from at least minObserved). Erring high costs a few throttles
// (each shrinks the limit to 0.7 of itself); erring low would leave the
// limit so far below the quota that the calls whose successes grow it back
// could not be admitted in time.
func (l *limiter) observedRate(now time.Time, extra float64) float64 {
	u := l.usage(now) + extra
	if age := now.Sub(l.born); age < time.Minute {
		u *= float64(time.Minute) / float64(max(age, minObserved))
	}
	return u
}

// grow raises the limit after a success along the CUBIC curve
// W(t) = Wmax × (1 + (1-β)((t-K)/K)³), where t is the time since the last
// throttle and K is Recovery: the limit climbs back to Wmax in K, slowly
// near it, then probes past it. A known quota caps it; a learning limit grows
// past its value only up to twice what the target really used over the last
// minute, so an idle target does not grow a limit it never tested.
func (l *limiter) grow(now time.Time) {
	if l.unlimited() {
		return
	}
	k := l.g.recovery
	x := (now.Sub(l.epoch).Seconds() - k) / k
	w := l.wmax * (1 + (1-l.g.beta)*x*x*x)
	if w <= l.limit {
		return
	}
	if l.p.learn {
		w = min(w, max(l.limit, 2*l.usage(now)))
	}
	w = min(w, l.p.ceil)
	if w > l.limit {
		l.limit = w
	}
}

// throttle reacts to a throttle of t's call (nil: a call without a Ticket).
// t's tokens go back, since Bedrock reserved nothing. Only a call admitted
// since the last confirmed throttle (or, without a Ticket, a throttle after
// the pause) is news; the others were sent before the Governor knew. A
// fresh throttle of a call with a Ticket is a quota signal only once
// another confirms it (see suspect).
func (l *limiter) throttle(t *Ticket) {
	now := l.g.clk.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.refill(now)
	l.n.throttles++
	var fresh bool
	var hold float64
	if t != nil {
		fresh = t.gen == l.gen
		hold = t.hold
		if !t.at.IsZero() {
			l.throttleLat.add(now.Sub(t.at).Seconds())
		}
		l.cancelLocked(t, now)
		fresh = fresh && l.suspect(t.seq, now)
	} else {
		fresh = !now.Before(l.pausedUntil)
	}
	if fresh {
		l.react(now, hold)
	}
	l.dispatch(now, true)
}

// react is what a confirmed throttle of a call that held hold tokens (0:
// one without a Ticket) does: it bounds the quota from what Bedrock gave
// since an earlier confirmed throttle of the episode (the anchor), lowers the
// limit to that bound, empties the bucket (Bedrock's is empty, as far as
// this call could tell) and pauses admissions. l.mu must be held.
//
// The bound: at the anchor, Bedrock's bucket held about the level the
// Governor's was emptied to (≤ 0). Since then it refilled Q/60 a second and
// gave out taken−anchor.taken; now it had less than hold. So
// Q < 60 × (taken − anchor.taken + hold − anchor.level) / elapsed. The
// anchor is the oldest confirmed throttle of the last anchorSpan: a longer
// span makes one call's hold weigh less, a shorter one the debt that
// replies settling above their reservations run Bedrock's bucket into,
// which counts as given but was not refill.
//
// A known quota's first throttle of an episode changes no limit: it says
// the Governor's bucket was fuller than Bedrock's (a process started on a
// spent quota, or another client), not that the quota is wrong; the bucket
// is emptied to match. A later throttle lowers a known limit to the bound,
// but by at most Decrease (0.7) at a time, climbing back along the CUBIC
// curve after such a cut. A learning (or unknown) quota's limit goes to what
// Bedrock gave per minute since the anchor, the bound less the throttled
// hold, but not below 0.7 of the bound; once the episode has lasted
// windowSpan, to what Bedrock's bucket gave over the last minute (what was
// granted, less what came back, plus debits), all of it from its refill. The first limit of an unknown quota, and the first
// of an episode, come from shrink.
func (l *limiter) react(now time.Time, hold float64) {
	newEpisode := l.lastThrott.IsZero() || now.Sub(l.lastThrott) > episodeGap
	if newEpisode {
		l.syncs = l.syncs[:0]
		l.episode = now
	}
	l.lastThrott = now
	bound, given := math.Inf(1), math.Inf(1)
	if a, ok := l.anchor(now); ok {
		if d := now.Sub(a.at); d >= minObserved {
			given = 60 * (l.taken - a.taken - min(a.level, 0)) / d.Seconds()
			bound = max(given+60*hold/d.Seconds(), l.p.floor)
			given = max(given, bound*l.g.beta, l.p.floor)
		}
	}
	wasUnlimited := l.unlimited()
	switch {
	case l.unlimited() && now.Sub(l.born) < minObserved:
		// Too soon to tell a rate from what was used: pause, learn nothing.
	case l.p.learn && !l.unlimited() && now.Sub(l.episode) >= windowSpan:
		l.setLimit(now, min(max(l.given.sum(now)+hold, l.p.floor), l.p.ceil))
	case l.unlimited() || (l.p.learn && newEpisode):
		l.shrink(now, hold)
	case given < l.limit && l.p.learn:
		l.setLimit(now, given)
	case bound < l.limit*l.g.beta:
		// Far below a known quota: cut by Decrease and climb back along
		// the curve, as without a bound; the next throttle tells more.
		l.wmax, l.limit, l.epoch = l.limit, max(l.p.floor, l.limit*l.g.beta), now
		l.n.decreases++
	case bound < l.limit:
		l.setLimit(now, bound)
	default:
		l.n.resyncs++
	}
	switch {
	case wasUnlimited && !l.unlimited():
		// The new bucket starts empty, as Bedrock's is, without the holds
		// in flight taken out: those still in transit, which Bedrock will
		// throttle too, must not come back into it.
		l.writtenOff = l.inflightHold
	case !l.unlimited():
		l.writtenOff = max(l.level, 0)
		l.level = min(l.level, 0)
	}
	l.gen++
	l.addSync(syncPoint{at: now, taken: l.taken, hold: hold, level: min(l.level, 0), gen: l.gen})
	l.pause(now)
}

// setLimit sets a limit found from a bound, and starts its CUBIC curve on
// the plateau: the bound is above the quota, so the limit probes upwards
// only slowly. l.mu must be held.
func (l *limiter) setLimit(now time.Time, w float64) {
	if l.unlimited() {
		l.level = 0
	}
	l.wmax, l.limit = w, w
	l.epoch = now.Add(-time.Duration(l.g.recovery * float64(time.Second)))
	l.n.decreases++
}

// shrink cuts the limit at a throttle without a bound (the first of an
// episode) of a target whose quota is unknown or learning. l.mu must be held.
func (l *limiter) shrink(now time.Time, hold float64) {
	// Wmax is the limit that was just found too high. While the limit is
	// still unknown, it is the rate the target was used at: what it used
	// over the last minute plus the throttled call's hold (Bedrock could not
	// give that much in a minute), per minute. (Without the hold, one
	// throttle of a lone call on an idle target would set the limit to the
	// floor, far below any call it ever served.) A learned limit far above
	// what was used when Bedrock said no (the first, extrapolated one, say)
	// comes down to that use at once, as the AWS SDK's adaptive mode takes
	// the smaller of its rate and the measured one.
	if l.unlimited() {
		// The first limit. What the target used since it was first seen
		// came from Bedrock's bucket as it was then (a minute of quota at
		// most, if it started full) and from a refill of Q/60 a second:
		// Q ≥ used ÷ (1 minute + age). Extrapolating the use to a minute
		// instead reads the burst a full bucket allows as a rate, many
		// times the quota.
		age := now.Sub(l.born)
		u := l.usage(now) + hold
		if age < time.Minute {
			u *= float64(time.Minute) / float64(time.Minute+age)
		}
		l.setLimit(now, min(max(u, l.p.floor), l.p.ceil))
		return
	}
	w := min(l.limit, max(l.observedRate(now, hold), l.p.floor), l.p.ceil)
	l.wmax = w
	l.limit = max(l.p.floor, w*l.g.beta)
	l.epoch = now
	l.n.decreases++
}

// pause stops admissions for a jittered cool-down. l.mu must be held.
func (l *limiter) pause(now time.Time) {
	pause := time.Duration(float64(l.g.coolDown) * (0.5 + l.g.rand()))
	l.pausedUntil = now.Add(pause)
	// Every waiter looks again: the head at its new time, the others at
	// whether their deadline can still be met.
	for c := range l.queues {
		for _, w := range l.queues[c].live() {
			w.notify()
		}
	}
	l.head = nil
}
