package admission

import (
	"context"
	"time"
)

// A throttle is read as a quota signal only once a second call confirms it.
// Bedrock also throttles for reasons that have nothing to do with the
// client's rate (a few percent of calls, whatever their pace); read as quota
// signals, such throttles would empty the bucket, pause the target and cut
// its limit each time. A throttle of a call whose bucket really ran dry is
// followed by more: the calls granted after it find the bucket as dry. So
// the first fresh throttle only raises a suspicion; a throttle of a call
// granted after the suspect confirms it (and the Governor reacts as to a
// quota signal), and confirmPasses calls granted after the suspect that got
// through clear it (a noise throttle, counted in Stats.Noise).
//
// A call got through when it settled, or when it has been in flight for
// longer than throttles take to come back (see throttleWait): Bedrock
// throttles a call before it runs the model, so a call still in flight
// then was reserved its tokens. Calls granted after the suspect that
// settled before its throttle came back count too (see settledTop): a
// throttle's round trip can outlast short replies, as when a batch goes at
// once into a bucket that serves all but a few of its calls.
//
// While the quota is unknown (no throttle confirmed yet), the calls granted
// after the suspect that are still undecided (in flight for less than
// throttleWait) decide it: an unknown quota's window holds its Batch calls
// while they, or the calls granted at the suspect's instant before it, are
// undecided, for a round at most (see startAt), and a throttle that would
// confirm it waits for the calls after it when confirmPasses of them could
// still get through (see clearable, decideHeld). A batch sent into a
// minute's full bucket with a few percent of noise has dozens of calls in
// transit when its first two injected throttles come back; taken for a
// quota signal, they set a first limit from a bucket that was not empty.
type suspicion struct {
	active  bool
	seq     uint64    // the throttled call's place in flight
	hold    float64   // what the throttled call held
	at      time.Time // when it was granted
	back    time.Time // when its throttle came back
	net     float64   // the target's netBack then
	settled int       // calls granted after it that have settled
	// held: a throttle that would have confirmed it waits for the calls
	// granted before flight seq until, which it was, to be decided.
	held  bool
	until uint64
	conf  signal
}

// suspect records a throttle c (fresh: of a call granted since the last
// confirmed throttle), and reports whether it confirms a suspicion (a quota
// signal), the throttle to react to (c, or the held one c confirms) and
// the suspicion it confirms. l.mu must be held.
func (l *limiter) suspect(c signal, fresh bool, now time.Time) (signal, suspicion, bool) {
	s := &l.suspicion
	if s.active && l.passed(now) >= confirmPasses {
		l.noise(now)
	}
	switch {
	case s.active && fresh && c.seq != s.seq && !c.at.Before(s.at):
		// Granted after the suspect, or with it (calls granted at the same
		// instant are throttled in any order).
		if s.held {
			// A third throttle: the held one is confirmed.
			c = s.conf
		} else if l.view.unlimited() && l.clearable(l.flight.next, now) {
			s.held, s.until, s.conf = true, l.flight.next, c
			return c, suspicion{}, false
		}
		sus := *s
		*s = suspicion{}
		return c, sus, true
	case !s.active && fresh:
		l.suspectNew(c, now)
	}
	// Otherwise a call granted before the suspect, throttled after it
	// (the suspect stands), or one sent before the last confirmed throttle.
	return c, suspicion{}, false
}

// suspectNew makes the throttle c, come back at now, the suspect. l.mu
// must be held.
func (l *limiter) suspectNew(c signal, now time.Time) {
	l.suspicion = suspicion{active: true, seq: c.seq, hold: c.hold, at: c.at, back: now, net: l.netBack, settled: l.settledTop.after(c.seq)}
}

// noise clears the suspicion as noise; a throttle it held becomes the
// suspect, as it would have had it come back after the clearing. l.mu must
// be held.
func (l *limiter) noise(now time.Time) {
	l.n.noise++
	l.noisy.Add(now, 1)
	s := &l.suspicion
	held, c := s.held, s.conf
	*s = suspicion{}
	if held {
		l.suspectNew(c, now)
	}
}

// decideHeld decides a held confirmation (see suspicion): the suspect is
// noise once confirmPasses calls granted after it got through (and the
// held throttle the suspect), confirmed once too few are left undecided
// for that. l.mu must be held.
func (l *limiter) decideHeld(now time.Time) {
	s := &l.suspicion
	if !s.held {
		return
	}
	if l.passed(now) >= confirmPasses {
		l.noise(now)
		return
	}
	if l.clearable(s.until, now) {
		return
	}
	c, sus := s.conf, *s
	*s = suspicion{}
	l.confirmedSignal(c, sus, now)
}

// clearable reports whether the suspicion may still be cleared as noise by
// the calls granted after the suspect and before the call until: those
// that got through and those still undecided make confirmPasses. l.mu must
// be held.
func (l *limiter) clearable(until uint64, now time.Time) bool {
	n, _ := l.undecided(l.suspicion.seq+1, until, now)
	return n+l.passed(now) >= confirmPasses
}

// undecided returns how many calls in flight from the call from to before
// the call until have been in flight for less than throttleWait, and when
// the oldest of them will have been. l.mu must be held.
func (l *limiter) undecided(from, until uint64, now time.Time) (int, time.Time) {
	f := &l.flight
	wait := l.throttleWait()
	n, first := 0, time.Time{}
	lo := max(from, f.base)
	for seq := lo; seq < min(until, lo+startScan); seq++ {
		i := f.head + int(seq-f.base)
		if i >= len(f.at) {
			break
		}
		at := f.at[i]
		if at.IsZero() || now.Sub(at) >= wait {
			continue
		}
		if n == 0 {
			first = at.Add(wait)
		}
		n++
	}
	return n, first
}

// passed counts the calls granted after the suspect that got through, up
// to confirmPasses. l.mu must be held.
func (l *limiter) passed(now time.Time) int {
	s := &l.suspicion
	n := s.settled
	wait := l.throttleWait()
	f := &l.flight
	i := f.head
	if s.seq >= f.base {
		i += int(s.seq-f.base) + 1
	}
	for ; i < len(f.at) && n < confirmPasses; i++ {
		at := f.at[i]
		if at.IsZero() {
			continue
		}
		if now.Sub(at) < wait {
			break // granted in time order: the later ones are younger
		}
		n++
	}
	return n
}

// settledAfter counts a settled call toward clearing the suspicion when it
// was granted after the suspect. l.mu must be held.
func (l *limiter) settledAfter(seq uint64) {
	if s := &l.suspicion; s.active && seq > s.seq {
		s.settled++
	}
}

// throttleWait returns how long a call must have been in flight to have got
// past Bedrock's quota check: a margin over the time the target's throttles
// take to come back.
func (l *limiter) throttleWait() time.Duration {
	return time.Duration(throttleMargin*l.throttleLat.v*float64(time.Second)) + throttleSlack
}

// scoutAt returns when the scout will have got past Bedrock's quota check
// (zero: no call waits for a scout). After a confirmed throttle, until a
// call granted since gets through, the oldest call in flight granted since
// is the scout: the others wait for it until it has been in flight for
// throttleWait, or has ended. Bedrock's bucket may still be empty (in debt,
// or refilling slower than the Governor's); the scout finds out with one
// throttle where the calls the Governor's refill let through meanwhile
// would all have been throttled. A scout found past the check ends the row
// of strikes, as react would. Each process sends its own scout: a Governor
// whose throttle another process already reacted to (see joined) sends
// none. l.mu must be held.
func (l *limiter) scoutAt(now time.Time) time.Time {
	if l.strikes == 0 {
		return time.Time{}
	}
	at, hold, ok := l.flight.oldestFrom(l.syncSeq)
	if !ok {
		return time.Time{}
	}
	end := at.Add(l.throttleWait())
	if !end.After(now) {
		l.through(hold, end, now)
		return time.Time{}
	}
	return end
}

// through ends the row of strikes: a call granted since the last confirmed
// throttle, holding hold tokens, was known at since to have got past
// Bedrock's quota check. Bedrock's bucket held its hold then, and nothing
// more is known. After a pause (two confirmed throttles in a row or more),
// the Governor's level, refilled through it as if Bedrock's bucket had been
// empty at the last throttle (it may have been in debt), keeps at most the
// hold again, plus what refilled since: what the pause refilled does not go
// out at once into a bucket that may hold little more than the scout took.
// After a single confirmed throttle the level is kept: it refilled for a
// round trip only, and a first limit learned low needs it. A Store shared
// with other processes is not cut: one process's scout says nothing of
// what the others took meanwhile, and each would cut again. l.mu must be
// held.
func (l *limiter) through(hold float64, since, now time.Time) {
	if l.strikes == 0 {
		return
	}
	paused := l.strikes >= 2
	l.strikes = 0
	keep := hold + l.view.TokensPerMinute*max(now.Sub(since), 0).Minutes()
	if cut := l.view.Tokens - keep; paused && l.g.ownStore && cut > 0 {
		l.keep(l.g.store.Give(context.Background(), l.target, now, -cut, 0))
		if l.view.Peak > l.cappedPeak {
			l.capped = 0 // the peak rose since the last cut: that cut is no longer in it
		}
		l.capped += cut
		l.cappedPeak = l.view.Peak
	}
}

// passedSince reports whether a call granted at or after flight seq seq has
// been in flight longer than a throttle takes to come back (see passed).
// l.mu must be held.
func (l *limiter) passedSince(seq uint64, now time.Time) bool {
	at, _, ok := l.flight.oldestFrom(seq)
	return ok && now.Sub(at) >= l.throttleWait()
}

// settledTop holds the confirmPasses highest seqs (plus one; 0: none) of
// the calls that settled, the latest granted: those of a new suspect's
// later calls that settled before its throttle came back.
type settledTop [confirmPasses]uint64

// add records that the call seq settled.
func (t *settledTop) add(seq uint64) {
	low := 0
	for i := range t {
		if t[i] < t[low] {
			low = i
		}
	}
	t[low] = max(t[low], seq+1)
}

// after counts the recorded calls granted after the call seq.
func (t *settledTop) after(seq uint64) int {
	n := 0
	for _, s := range t {
		if s > seq+1 {
			n++
		}
	}
	return n
}
