package admission

import (
	"time"
)

// usage returns the tokens the target used over the last minute: what
// settled in it, plus what the calls in flight hold.
func (l *limiter) usage(now time.Time) float64 {
	return l.settled.Sum(now) + l.inflightHold
}

// grow raises the limit after a success along the CUBIC curve
// W(t) = Wmax × (1 + (1-β)((t-K)/K)³), where t is the time since the last
// throttle and K is Recovery: the limit climbs back to Wmax in K, slowly
// near it, then probes past it. A known quota caps it; a learning limit grows
// past its value only up to twice what the target really used over the last
// minute, so an idle target does not grow a limit it never tested.
func (l *limiter) grow(now time.Time, cost float64, seq uint64) {
	if l.view.unlimited() {
		return
	}
	if l.view.Burst > 0 && now.Sub(l.lastThrott) >= burstMemory {
		l.setBurst(0, now)
	}
	if l.slow {
		if seq < l.slowSeq {
			return // granted before slow start: it says nothing of the bucket since
		}
		l.slowPassed = true
		if seq < l.syncSeq {
			return // granted before the last confirmed throttle: the bucket ran dry since
		}
		// Slow start: each call that got through adds slowStartGain times
		// what it cost, doubling the limit every minute ÷ slowStartGain
		// while the calls keep up with it, but not past twice what the
		// bucket gave over the last slowStartSpan.
		w := min(l.view.TokensPerMinute+slowStartGain*cost, max(l.view.TokensPerMinute, 2*l.recentRate(now)), l.p.ceil)
		if w > l.view.TokensPerMinute {
			l.wmax = w
			l.resize(w, now)
		}
		return
	}
	k := l.g.recovery
	var w float64
	if c := &l.climb; c.active {
		// Climbing from a limit known to be safe toward the one that met
		// a throttle: fast at first, slowly near it (BIC's search).
		t := now.Sub(c.from).Seconds() / k
		if t < 1 {
			w = c.high - (c.high-c.low)*(1-t)*(1-t)*(1-t)
		} else {
			c.active = false
			l.wmax = c.high
			l.epoch = now.Add(-time.Duration(k * float64(time.Second)))
		}
	}
	if !l.climb.active {
		x := (now.Sub(l.epoch).Seconds() - k) / k
		w = l.wmax * (1 + (1-l.g.beta)*x*x*x)
	}
	if w <= l.view.TokensPerMinute {
		return
	}
	if l.p.learn {
		w = min(w, max(l.view.TokensPerMinute, 2*l.usage(now)))
	}
	w = min(w, l.p.ceil)
	if w > l.view.TokensPerMinute {
		l.resize(w, now)
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
	l.load(now)
	l.n.throttles++
	var fresh bool
	var sus suspicion
	c := signal{seq: l.flight.next, at: now, taken: l.taken, debits: l.debits, class: Interactive}
	if t != nil {
		c = signal{seq: t.seq, hold: t.hold, at: t.at, taken: t.taken, debits: t.debits, class: t.class, probe: t.probe}
		if !t.at.IsZero() {
			l.throttleLat.add(now.Sub(t.at).Seconds())
		}
		l.cancelLocked(t, now)
		l.retakeFirst(t.seq, now)
		l.decideHeld(now) // it may confirm a throttle held before this one
		c, sus, fresh = l.suspect(c, t.gen == l.gen, now)
	} else {
		fresh = !now.Before(l.pausedUntil)
	}
	if fresh {
		l.confirmedSignal(c, sus, now)
	}
	l.dispatch(now, true)
}

// signal is what a throttle of a call tells: the call's place in flight,
// its hold (0: a call without a Ticket), when it was granted, what the
// target had taken and its debits then, its class, and whether it went as
// a probe.
type signal struct {
	seq           uint64
	hold          float64
	at            time.Time
	taken, debits float64
	class         Class
	probe         bool
}

// confirmedSignal reacts to the confirmed throttle c, which confirmed the
// suspicion s (inactive: none), unless another process sharing the Store
// already did (see joined). l.mu must be held.
func (l *limiter) confirmedSignal(c signal, s suspicion, now time.Time) {
	if l.joined(now) {
		return
	}
	pd, known := l.passDebits(c.seq, now)
	level := c.hold // what Bedrock's bucket may hold at most: less than the throttled call's hold
	if s.active && l.view.unlimited() {
		level = min(level, l.levelBound(s, c.hold, now))
	}
	l.react(now, c, c.debits-pd, known, level)
}

// react is what the confirmed throttle c does (c.hold 0: a call without a
// Ticket); Bedrock's bucket may have owed below when c's call was granted
// (known: a call that got through before it was found; see passDebits),
// and holds at most level now (see levelBound). Bedrock's bucket was
// empty when the Governor's said it was not, so the Governor's is emptied
// to match; a first limit's starts at level when that is below zero. The
// second confirmed throttle in a row (no call granted since the last one
// has got through) pauses admissions, and each further one doubles the
// pause, up to maxPauseDoublings: a bucket that refills in steps, or that
// another client keeps empty, is waited for rather than probed every
// second. A probe, sent without room in the Governor's bucket, does not
// count toward the pause: its throttle was expected. (A warm-up loan does:
// it bets that Bedrock's bucket is full.) l.mu must be held.
//
// The limit is not cut by a throttle alone: a throttle says the bucket was
// empty, not how fast it refills. It comes from what Bedrock's bucket gave:
//   - the first limit of an unknown quota, from what the target took since it
//     was first seen (see firstLimit), then grown by slow start (see grow)
//     until the next confirmed throttle ends it;
//   - when Bedrock, not demand, held the target back over the last minute
//     (see boundByBedrock), what Bedrock's bucket gave over it, which all
//     came from the refill: a limit above it is lowered a little below it
//     (told too high, or another client shares the quota), by at most
//     Decrease at a time;
//   - at every confirmed throttle but the first, no lower than what Bedrock
//     gave since the one before (see dryLower), and climbing back toward the
//     limit that met this one (see climb);
//   - successes grow the limit along the CUBIC curve, probing past it.
func (l *limiter) react(now time.Time, c signal, below float64, known bool, level float64) {
	hold, at, taken := c.hold, c.at, c.taken
	l.warmGap = 0 // warm-up ends
	before := l.view.TokensPerMinute
	// A lower bound far above the limit that met this throttle read calls
	// still in transit (or a throttle of noise) as served: it is taken at
	// most to twice that limit (slow start doubles it every few seconds,
	// so the bound may rightly be above it).
	lower := min(l.dryLower(taken, below, now)*learnedShare, dryCap*before)
	l.dryAt, l.dryTaken, l.dryHold = at, l.taken, hold
	l.lastThrott = now
	if l.passedSince(l.syncSeq, now) {
		l.strikes = 0 // a call granted after the last confirmed throttle got through
	}
	if l.slow && (l.slowPassed || l.passedSince(l.slowSeq, now)) {
		// Slow start ends, once a call got through since it began (until
		// then the bucket is still spent, or in debt, and says nothing of
		// the rate). It may have doubled the limit since the last check,
		// so the quota lies below half of it, but not below the limit it
		// began from, which it did not lower; and what the bucket gave
		// bounds it again (see exitRate): the limit goes to the lower of
		// the two, and no lower than what Bedrock gave since the last
		// confirmed throttle (see dryLower).
		cut := max(l.view.TokensPerMinute/2, min(l.slowFrom, l.view.TokensPerMinute))
		w := max(min(cut, l.exitRate(now, hold)), min(lower, l.view.TokensPerMinute))
		l.slow = false
		l.setLimit(now, max(w, l.p.floor))
		l.measured = l.view.TokensPerMinute
	}
	wasUnlimited := l.view.unlimited()
	switch {
	case l.view.unlimited():
		l.firstLimit(now, hold, level, c.class)
	case l.boundByBedrock(now) && !l.inDebt(now):
		// What Bedrock's bucket gave over the last minute, which began and
		// ended with it empty: the quota, or the share of it other clients
		// leave.
		rate := min(max(l.givenRate(now, windowSpan, hold), l.p.floor), l.p.ceil)
		switch {
		case rate < l.view.TokensPerMinute*bindingShare:
			// Bedrock gave less than the limit let through: the quota
			// (or the share of it other clients leave) is below the
			// limit. The limit goes a little below the rate, so that it
			// does not keep the bucket at its edge, by at most Decrease
			// at a time (a pause longer than a short bucket's burst
			// loses refill and makes the rate read low), and climbs
			// back to it in Recovery before it probes past it.
			l.setLimit(now, max(rate*learnedShare, l.view.TokensPerMinute*l.g.beta, l.p.floor))
			l.measured = l.view.TokensPerMinute
			l.epoch = now
		default:
			// The limit itself was what held the target back: the
			// minute says nothing more about the quota.
			l.hold(now, lower)
		}
	default:
		l.hold(now, lower)
	}
	l.climb.active = false
	if !wasUnlimited && lower > 0 {
		// The quota lies between the lower bound measured since the last
		// confirmed throttle and the limit that met this one: the limit
		// goes no lower than the first, and climbs back toward the
		// second (at most what the bucket gave lately: slow start's limit
		// outgrows the quota).
		high := min(before, max(l.recentRate(now), lower))
		if lower > l.view.TokensPerMinute {
			l.setLimit(now, lower)
			l.measured = max(l.measured, lower)
		}
		if high > l.view.TokensPerMinute {
			l.climb = climb{active: true, from: now, low: l.view.TokensPerMinute, high: high}
		}
	}
	switch {
	case wasUnlimited && !l.view.unlimited():
		// The new bucket starts empty, as Bedrock's is, without the holds
		// in flight taken out: those still in transit, which Bedrock will
		// throttle too, must not come back into it.
		l.writtenOff = l.inflightHold
		if level < 0 {
			l.give(level, 0, now) // and what Bedrock's owes already
		}
	case !l.view.unlimited():
		l.learnBurst(hold, now)
		l.writtenOff = l.drain(now) // the peak starts again from the level
	}
	l.gen++
	l.confirmed.Add(now, 1)
	if known {
		l.debts.add(now, below)
	}
	l.suspicion = suspicion{} // the calls in transit were sent before: a new generation starts over
	l.syncSeq = l.flight.next
	if !c.probe {
		if l.strikes == 0 {
			l.struckAt = now
		}
		l.strikes++
	}
	l.pause(now)
}

// learnBurst lowers the bucket's capacity at a confirmed throttle of a
// call that held hold tokens, when the Governor's bucket still held more:
// since its level peaked it fell by peak − level, and Bedrock's, which
// gave the same and refilled as much, then held less than hold; so at the
// peak it held less than peak − level + hold. A bucket that holds less than
// a minute of quota (a shorter burst, or one that started part empty) is
// thus learned from the first burst it refuses, and the Governor no longer
// lets the calls that waited out a pause go all at once. The capacity never
// goes below the target's large calls' hold or minBurst of quota, and is
// forgotten after burstMemory without a confirmed throttle. l.mu must be
// held.
func (l *limiter) learnBurst(hold float64, now time.Time) {
	gave := l.view.Peak - l.view.Tokens
	if l.view.Peak <= l.cappedPeak {
		gave -= l.capped // the peak is from before through took that out, which Bedrock did not give
	}
	if l.view.Tokens <= hold || gave <= 0 {
		return
	}
	c := max(gave+hold, l.bigHold.v, l.view.TokensPerMinute*minBurst.Minutes())
	if c < l.view.capacity() {
		l.setBurst(c, now)
		l.n.bursts++
	}
}

// recentRate returns what the bucket gave over the last slowStartSpan, per
// minute, leaving out the calls granted too recently to have been throttled
// yet. l.mu must be held.
func (l *limiter) recentRate(now time.Time) float64 {
	return l.givenRate(now, slowStartSpan, -l.flight.young(now, l.throttleWait())) // those not through the quota check yet left out
}

// givenRate returns what the bucket gave over the last d, plus extra, per
// minute (never below zero), over no span before the target was first
// seen (the window's slots may start before it was). l.mu must be held.
func (l *limiter) givenRate(now time.Time, d time.Duration, extra float64) float64 {
	given, span := l.given.Recent(now, d)
	span = min(span, now.Sub(l.born))
	return 60 * max(given+extra, 0) / max(span.Seconds(), 1)
}

// hold keeps the limit where it is and restarts its CUBIC curve on the
// plateau, so that it does not probe upwards while throttles come; a limit
// that has grown past the last rate measured over a minute goes back to it.
// l.mu must be held.
func (l *limiter) hold(now time.Time, lower float64) {
	switch {
	case l.view.unlimited():
	case l.measured > 0 && l.view.TokensPerMinute > max(l.measured, lower):
		// The CUBIC curve probed past the last measured rate and found
		// the bucket empty: back to the rate, climbing to it again
		// before probing.
		l.measured = max(l.measured, lower)
		l.setLimit(now, l.measured)
		l.epoch = now
		return
	default:
		l.wmax = l.view.TokensPerMinute
		l.epoch = now.Add(-time.Duration(l.g.recovery * float64(time.Second)))
	}
	l.n.resyncs++
}

// boundByBedrock reports whether Bedrock, not the target's own demand or
// limit, held the target back over the last windowSpan, at the confirmed
// throttle now: another was confirmed in its older half (Bedrock's bucket
// was empty then too, and could not fill up and overflow in between), and
// more were confirmed over it than cleared as noise (the few confirmed
// among many noise throttles may be noise too, and their pauses make the
// minute read low). l.mu must be held.
func (l *limiter) boundByBedrock(now time.Time) bool {
	newer, _ := l.confirmed.Recent(now, windowSpan/2)
	total := l.confirmed.Sum(now)
	return total-newer >= 1 && total+1 > l.noisy.Sum(now)
}

// setLimit sets a limit found from a bound, and starts its CUBIC curve on
// the plateau: the bound is above the quota, so the limit probes upwards
// only slowly. l.mu must be held.
func (l *limiter) setLimit(now time.Time, w float64) {
	l.wmax = w
	l.resize(w, now) // a first limit starts with an empty bucket
	l.epoch = now.Add(-time.Duration(l.g.recovery * float64(time.Second)))
	l.n.decreases++
}

// exitRate returns what slow start's end takes the quota to be, at most:
// for a target seen less than a minute, lifetimeRate (a burst from a full
// bucket weighs in it as it should); for one seen longer, the larger of
// that and what the bucket gave over the last minute (lifetimeRate alone
// reads an hour of idling as a low quota). l.mu must be held.
func (l *limiter) exitRate(now time.Time, hold float64) float64 {
	r := l.lifetimeRate(now, hold)
	if now.Sub(l.born) >= windowSpan {
		r = max(r, l.givenRate(now, windowSpan, hold))
	}
	return r
}

// pause stops admissions for a jittered cool-down after the second
// confirmed throttle in a row, doubling with each further one (see react).
// The first only empties the bucket: the calls after it go at the pace of
// the refill, the first of them alone until it gets through (see scoutAt).
// l.mu must be held.
func (l *limiter) pause(now time.Time) {
	if l.strikes < 2 {
		return
	}
	jitter := 0.5 + l.g.rand()
	base := time.Duration(float64(l.g.coolDown) * jitter)
	pause := base * time.Duration(uint(1)<<min(max(l.strikes, 2)-2, maxPauseDoublings))
	// The pause is at most a share of the time the row of strikes has
	// lasted (jittered too, so that replicas throttled together do not
	// look again together): a bucket in debt is found refilled within that
	// share of the debt's length, not up to twice it.
	pause = min(pause, max(base, time.Duration(pauseShare*jitter*float64(now.Sub(l.struckAt)))))
	if l.slow && !l.slowPassed {
		// No call of slow start has got through: the first limit is a
		// guess, and the bucket may be repaying a debt at a rate the
		// Governor does not know yet; it is looked at as often as a
		// probe would, so that its refill is found within probeEvery.
		pause = min(pause, probeEvery)
	}
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
