package admission

import "time"

// What Bedrock's bucket may owe. A reply that costs more than its call held
// (the output's burndown, an input above its estimate) takes the bucket
// below zero: Bedrock charges it whatever the level. The bounds the learner
// reads between confirmed throttles assume the bucket held about nothing
// at each; these are the corrections for a bucket that may have been in
// debt.

// dryLower returns a lower bound of the quota from what Bedrock's bucket
// gave between the last confirmed throttle and this one, taken before this
// call was granted (taken): the bucket was empty when each throttled call
// arrived (it held less than the call's hold), so what it served in
// between, less the first call's hold, came from its refill. Counted are the
// calls granted after the last throttle came back (those granted before it
// may have been served from a bucket not yet empty, as calls queued in the
// client behind a starting burst are), over the longest the time between
// the two arrivals can be: from the grant of the last throttled call to
// now. below is what Bedrock's bucket may have owed when this call arrived
// (see passDebits): what it gave while in debt came from no refill, and is
// left out. 0 when there was no earlier confirmed throttle or the span is
// too short to weigh. l.mu must be held.
func (l *limiter) dryLower(taken, below float64, now time.Time) float64 {
	span := now.Sub(l.dryAt)
	if l.dryAt.IsZero() || span < minDrySpan {
		return 0
	}
	return max(taken-l.dryTaken-l.dryHold-below, 0) * 60 / span.Seconds()
}

// passDebits returns the target's debits when the latest call granted
// before the call seq that got through Bedrock's quota check was granted,
// and whether such a call is known. Bedrock's bucket held at least nothing
// once that call was served, so only the debits since can have taken it
// below zero. Unknown (no call in flight got through, and the latest that
// settled was granted after seq), it returns 0: every debit since the
// target was first seen is taken as owed, which only lowers dryLower's
// bound, and the debt is not recorded for the minute's rate (see inDebt).
// l.mu must be held.
func (l *limiter) passDebits(seq uint64, now time.Time) (float64, bool) {
	p, d, ok := l.flight.passedBefore(seq, now, l.throttleWait())
	if s := l.pass; s.ok && s.seq < seq && (!ok || s.seq > p) {
		d, ok = s.debits, true
	}
	return d, ok // passedBefore's d is 0 when it found none
}

// debts holds, for the last confirmed throttles, how far below zero
// Bedrock's bucket may have been when each came: what calls settled beyond
// their holds since the latest call granted before it got through.
type debts struct {
	at   [debtMarks]time.Time
	owed [debtMarks]float64
	next int
}

// add records a confirmed throttle at now whose bucket may have owed owed.
func (d *debts) add(now time.Time, owed float64) {
	d.at[d.next], d.owed[d.next] = now, owed
	d.next = (d.next + 1) % debtMarks
}

// most returns the most any confirmed throttle of the last windowSpan
// before now may have owed.
func (d *debts) most(now time.Time) float64 {
	var m float64
	for i, at := range d.at {
		if !at.IsZero() && now.Sub(at) <= windowSpan {
			m = max(m, d.owed[i])
		}
	}
	return m
}

// inDebt reports whether Bedrock's bucket may have owed more, at a
// confirmed throttle of the last windowSpan (what calls settled beyond
// their holds since one last got through), than it gave over it: the
// minute's rate assumes the bucket empty at its start, and the refill may
// have gone to the debt instead, so that the rate says little of the
// quota. l.mu must be held.
func (l *limiter) inDebt(now time.Time) bool {
	given, _ := l.given.Recent(now, windowSpan)
	return l.debts.most(now) > given
}
