package admission

import (
	"math"
	"time"
)

func (l *limiter) unlimited() bool { return math.IsInf(l.limit, 1) }

// refill adds what the buckets gained since the last refill.
func (l *limiter) refill(now time.Time) {
	d := now.Sub(l.last)
	if d <= 0 {
		return
	}
	l.last = now
	s := d.Seconds()
	if !l.unlimited() {
		l.level = min(l.limit, l.level+s*l.limit/60)
	}
	if l.rpm > 0 {
		l.rlvl = min(l.rpm, l.rlvl+s*l.rpm/60)
	}
}

// fits reports whether a call holding hold tokens may start now. A call
// larger than the bucket (possible only while a learned limit is below it)
// starts when the bucket is full, and leaves it in debt.
func (l *limiter) fits(hold float64, now time.Time) bool {
	if now.Before(l.pausedUntil) {
		return false
	}
	if l.rpm > 0 && l.rlvl < 1-eps {
		return false
	}
	return l.unlimited() || l.level >= min(hold, l.limit)-eps
}

// readyAt returns when a call holding hold tokens will fit if nothing is
// given back meanwhile.
func (l *limiter) readyAt(hold float64, now time.Time) time.Time {
	at := now
	if l.pausedUntil.After(at) {
		at = l.pausedUntil
	}
	if l.rpm > 0 && l.rlvl < 1-eps {
		at = later(at, now, (1-eps/2-l.rlvl)/(l.rpm/60))
	}
	if !l.unlimited() {
		if need := min(hold, l.limit) - eps/2; l.level < need {
			at = later(at, now, (need-l.level)/(l.limit/60))
		}
	}
	return at
}

// later returns the later of at and now+sec seconds, rounded up to the nanosecond.
func later(at, now time.Time, sec float64) time.Time {
	t := now.Add(time.Duration(math.Ceil(min(sec, maxWaitSeconds) * 1e9)))
	if t.After(at) {
		return t
	}
	return at
}
