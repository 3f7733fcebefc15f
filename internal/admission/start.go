package admission

import "time"

// startAt returns when the next Batch call may go while the target's quota
// is unknown and no throttle has been confirmed (zero: now, or the call is
// not held). The Governor sets no limit then, but it opens the calls in
// flight as a window: a Batch call may go while fewer calls in flight are
// younger than startRound than are older (or settled), and one may always
// go when none is that young. The window doubles every startRound: a
// bucket that holds a minute of quota is opened to hundreds of calls
// within a few hundred milliseconds, while a bucket that starts empty, or
// holds a second of quota, throttles the calls of one round rather than
// every call a run starts at once. Interactive calls are not held, but
// count when in flight. Settled calls count over the target's life: the
// window is a start's, and a target that has settled more calls than it
// has in flight lets a Batch call go at once. At most the startScan
// latest calls are looked at, so that calls ended behind a long one in
// flight do not make each look longer. A suspect throttle holds the window
// for a round at most while the calls granted after it, or with it (at its
// instant, before it in flight), are undecided (see suspicion). l.mu must
// be held.
func (l *limiter) startAt(class Class, now time.Time) time.Time {
	if class != Batch || !l.view.unlimited() {
		return time.Time{}
	}
	if s := &l.suspicion; s.active && now.Before(s.back.Add(startRound)) && l.passed(now) < confirmPasses {
		// A suspect throttle came back in the last round: the calls
		// granted after it decide it (see suspicion), and so do those
		// of its round granted with it (one dispatch grants a round's
		// calls at one instant), whose throttles may come back after
		// it; more would only be throttled with them. A bucket that ran
		// dry throttles them within the round; noise throttles that come
		// back slowly hold the window no longer.
		if n, at := l.undecided(l.flight.grantedWith(s.seq, s.at), l.flight.next, now); n > 0 {
			if end := s.back.Add(startRound); end.Before(at) {
				return end
			}
			return at
		}
	}
	if l.n.settled > int64(l.inflight) {
		return time.Time{} // more calls settled than in flight: the rule below lets it go
	}
	young, _, oldest := l.flight.youngest(now, startRound, startScan)
	passed := l.n.settled + int64(l.inflight-young)
	if young == 0 || int64(young) < passed {
		return time.Time{}
	}
	return oldest.Add(startRound)
}
