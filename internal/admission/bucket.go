package admission

import (
	"math"
	"time"
)

// bucket is one key's buckets in a MemStore: Buckets and the time of their
// last refill. The token bucket holds at most a minute of quota (capacity:
// TokensPerMinute, or Burst when set lower) and refills at TokensPerMinute/60
// tokens a second; the request bucket likewise holds RequestsPerMinute
// requests.
type bucket struct {
	last time.Time // time of the last refill
	Buckets
}

// newBucket returns buckets refilled up to now, holding level tokens and a
// full request bucket.
func newBucket(now time.Time, limit, rpm, level float64) bucket {
	return bucket{last: now, Buckets: Buckets{TokensPerMinute: limit, Tokens: level, RequestsPerMinute: rpm, Requests: rpm}}
}

func (b *Buckets) unlimited() bool { return math.IsInf(b.TokensPerMinute, 1) }

// capacity returns what the token bucket holds at most: a minute of quota,
// or the burst when it is lower.
func (b *Buckets) capacity() float64 {
	if b.Burst > 0 {
		return min(b.Burst, b.TokensPerMinute)
	}
	return b.TokensPerMinute
}

// refill adds what the buckets gained since the last refill. A now before
// it adds nothing.
func (b *bucket) refill(now time.Time) {
	d := now.Sub(b.last)
	if d <= 0 {
		return
	}
	b.last = now
	s := d.Seconds()
	if !b.unlimited() {
		b.Tokens = min(b.capacity(), b.Tokens+s*b.TokensPerMinute/60)
		b.Peak = max(b.Peak, b.Tokens)
	}
	if b.RequestsPerMinute > 0 {
		b.Requests = min(b.RequestsPerMinute, b.Requests+s*b.RequestsPerMinute/60)
	}
}

// room reports whether a call holding hold tokens and one request fits the
// buckets. A call larger than the token bucket (possible only while a
// learned limit is below it) fits when the bucket is full, and leaves it in
// debt.
func (b *Buckets) room(hold float64) bool {
	if b.RequestsPerMinute > 0 && b.Requests < 1-eps {
		return false
	}
	return b.unlimited() || b.Tokens >= min(hold, b.capacity())-eps
}

// fitAt returns when a call holding hold tokens and one request will fit
// if nothing is given back meanwhile, and not before at.
func (b *Buckets) fitAt(hold float64, now, at time.Time) time.Time {
	if b.RequestsPerMinute > 0 && b.Requests < 1-eps {
		at = later(at, now, (1-eps/2-b.Requests)/(b.RequestsPerMinute/60))
	}
	if !b.unlimited() {
		if need := min(hold, b.capacity()) - eps/2; b.Tokens < need {
			at = later(at, now, (need-b.Tokens)/(b.TokensPerMinute/60))
		}
	}
	return at
}

// reserve takes hold tokens and one request.
func (b *bucket) reserve(hold float64) {
	if !b.unlimited() {
		b.Tokens -= hold
	}
	if b.RequestsPerMinute > 0 {
		b.Requests--
	}
}

// give adds tokens to the token bucket (takes them when negative), up to
// its capacity.
func (b *bucket) give(tokens float64) {
	if !b.unlimited() {
		b.Tokens = min(b.capacity(), b.Tokens+tokens)
		b.Peak = max(b.Peak, b.Tokens)
	}
}

// giveRequest adds one request to the request bucket, up to its capacity.
func (b *bucket) giveRequest() {
	if b.RequestsPerMinute > 0 {
		b.Requests = min(b.RequestsPerMinute, b.Requests+1)
	}
}

// drain empties the token bucket, keeping a debt, restarts the peak from
// the level, and returns what it took.
func (b *bucket) drain() float64 {
	if b.unlimited() {
		return 0
	}
	w := max(b.Tokens, 0)
	b.Tokens = min(b.Tokens, 0)
	b.Peak = b.Tokens
	return w
}

// resize sets the tokens-per-minute limit: a first limit (the bucket was
// unlimited) starts empty; otherwise the level stays, to be cut to the new
// capacity by the next refill.
func (b *bucket) resize(limit float64) {
	if b.unlimited() {
		b.Tokens = 0
	}
	b.TokensPerMinute = limit
}

// fits reports whether a call of class class holding hold tokens may start
// now: the target is not paused after a throttle, no call waits for a scout
// (see scoutAt), an unknown quota's window lets it go (see startAt), and the
// buckets have room.
func (l *limiter) fits(class Class, hold float64, now time.Time) bool {
	if now.Before(l.pausedUntil) || now.Before(l.scoutAt(now)) || now.Before(l.startAt(class, now)) {
		return false
	}
	return l.view.room(hold) || l.probe(hold, now)
}

// probe reports whether a call holding hold tokens may go now as a probe,
// whatever the token bucket holds (see probeAt). l.mu must be held.
func (l *limiter) probe(hold float64, now time.Time) bool {
	at, ok := l.probeAt(hold, now)
	return ok && !now.Before(at)
}

// probeAt returns when a call holding hold tokens may go as a probe, and
// whether it may: a learning target below its ceiling, with no call in
// flight and room in its request bucket, whose token bucket would keep the
// call waiting longer than probeEvery, sends one call probeEvery after its
// last grant. A limit learned too low, with a debt from the calls granted
// before it, would otherwise keep the target waiting for minutes (its refill
// is the low limit, where Bedrock's is the quota), and no call would get
// through to grow the limit. Bedrock throttles a probe that does not fit.
// l.mu must be held.
func (l *limiter) probeAt(hold float64, now time.Time) (time.Time, bool) {
	if !l.p.learn || l.view.unlimited() || l.view.TokensPerMinute >= l.p.ceil || l.flight.busy(now) ||
		(l.view.RequestsPerMinute > 0 && l.view.Requests < 1-eps) {
		return time.Time{}, false
	}
	at := l.lastGrant.Add(probeEvery)
	if !l.view.fitAt(hold, now, now).After(now.Add(probeEvery)) {
		return time.Time{}, false // it fits soon enough without
	}
	return at, true
}

// readyAt returns when a call of class class holding hold tokens will fit if
// nothing is given back meanwhile.
func (l *limiter) readyAt(class Class, hold float64, now time.Time) time.Time {
	at := now
	if l.pausedUntil.After(at) {
		at = l.pausedUntil
	}
	if s := l.scoutAt(now); s.After(at) {
		at = s
	}
	if s := l.startAt(class, now); s.After(at) {
		at = s
	}
	fit := l.view.fitAt(hold, now, at)
	if p, ok := l.probeAt(hold, now); ok && p.Before(fit) {
		fit = at
		if p.After(at) {
			fit = p
		}
	}
	return fit
}

// later returns the later of at and now+sec seconds, rounded up to the nanosecond.
func later(at, now time.Time, sec float64) time.Time {
	if t := WaitEnd(now, sec); t.After(at) {
		return t
	}
	return at
}

// WaitEnd returns now + sec seconds, rounded up to the nanosecond and at
// most about 31 years ahead: when a Store's call that must wait sec
// seconds will fit (see Store.Reserve).
func WaitEnd(now time.Time, sec float64) time.Time {
	return now.Add(time.Duration(math.Ceil(min(sec, maxWaitSeconds) * 1e9)))
}
