package admission

import "time"

// An unknown quota's first limit, set at its first confirmed throttle
// (see react): from what the target took since it was first seen, with
// what Bedrock's bucket may hold then, and worked out again when a call
// still in transit then comes back throttled.

// first is how a target's first limit was set: what Bedrock's bucket held
// at most then (see firstLimit), the least it may be, when, and the
// generation it began.
type first struct {
	level, least float64
	at           time.Time
	gen          uint64
}

// levelBound returns about the most Bedrock's bucket may hold now, at the
// first confirmed throttle of a call that held hold, by the suspicion s it
// confirmed. Bedrock's bucket held less than the suspect's hold when the
// suspect arrived (about when its throttle came back); the calls that
// settled since changed it by what they gave back (negative where their
// replies cost more than they held), which the Governor, with no bucket
// yet, did not count; and it refilled since at about the rate the
// target's first limit would read without them. A batch sent at once into
// a bucket that runs dry has dozens of calls in flight when the suspicion
// is confirmed: their replies' burndown takes Bedrock's bucket far into
// debt meanwhile. l.mu must be held.
func (l *limiter) levelBound(s suspicion, hold float64, now time.Time) float64 {
	return s.hold + l.netBack - s.net + l.lifetimeRate(now, hold)*now.Sub(s.back).Minutes()
}

// lifetimeRate returns what the target took from the bucket since it was
// first seen, plus level (what the bucket holds now), over a minute plus
// that time: the quota, if the bucket held a minute of quota when the
// target was first seen and none of its refill was lost to a full bucket
// since, and at least that otherwise. l.mu must be held.
func (l *limiter) lifetimeRate(now time.Time, level float64) float64 {
	return (l.taken + level) * float64(time.Minute) / float64(time.Minute+now.Sub(l.born))
}

// firstLimit sets the first limit of a target whose quota is unknown, at
// its first confirmed throttle of a call that held hold, with Bedrock's
// bucket holding at most level (see levelBound), and starts slow start
// (see grow). What the target took since it was first seen came from
// Bedrock's bucket as it was then (a minute of quota at most, if it
// started full), from a refill of Q/60 a second, and from a debt it owes
// now: Q ≈ (taken + level) ÷ (1 minute + age), with the bucket taken to
// hold what it may at most (with the throttled call's hold counted in, one
// throttle of a lone call on an idle target does not set the limit below
// any call it ever served; with the debt taken out, the replies' burndown
// that took Bedrock's bucket into debt does not read as refill). Extrapolating the use
// to a minute instead reads the burst a full bucket allows as a rate, many
// times the quota. For a target watched long, used now and then, the limit
// is low; slow start brings it up. A Batch call's throttle sets at least
// firstLimitCalls of its hold a minute: a batch that found the bucket empty
// (one that starts empty, or in debt after another process) took nothing,
// and slow start needs calls to get through; an Interactive call's does not,
// so that it falls back to another target rather than waiting for this one.
// l.mu must be held.
func (l *limiter) firstLimit(now time.Time, hold, level float64, class Class) {
	w := l.lifetimeRate(now, level)
	l.first = first{level: level, at: now, gen: l.gen + 1} // react counts this throttle next
	if class == Batch {
		l.first.least = hold * firstLimitCalls
	}
	l.setLimit(now, min(max(w, l.first.least, l.p.floor), l.p.ceil))
	l.slow, l.slowPassed = true, false
	l.slowFrom = l.view.TokensPerMinute
	l.slowSeq = l.flight.next
}

// retakeFirst lowers a first limit when a call granted before it, still
// in transit when it was set, is throttled: the first limit counted its
// hold as taken, and it took nothing. It does so only while the limit is
// the first one, untouched: no later confirmed throttle, and no call of
// slow start through yet. A batch sent at once into a bucket that served
// a part of it comes back throttled over a few milliseconds; counted, the
// calls throttled after the first confirmed one made the tight case's
// first limit 1.4 × its quota. l.mu must be held.
func (l *limiter) retakeFirst(seq uint64, now time.Time) {
	if !l.slow || l.slowPassed || l.gen != l.first.gen || seq >= l.slowSeq {
		return
	}
	w := min(max(l.lifetimeRate(l.first.at, l.first.level), l.first.least, l.p.floor), l.p.ceil) // over the same span
	if w < l.view.TokensPerMinute {
		l.wmax = w
		l.resize(w, now)
		l.slowFrom = w
	}
}
