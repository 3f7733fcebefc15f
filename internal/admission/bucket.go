package admission

import (
	"math"
	"time"
)

// bucket is one target's token bucket and request bucket: the state that
// replicas sharing a quota would share (see Store). The token bucket holds
// at most a minute of quota (capacity: limit tokens, or burst when set
// lower) and refills at limit/60 tokens a second; the request bucket likewise holds rpm requests. A limiter
// embeds its bucket and uses it under its mutex; MemStore keeps one per key.
type bucket struct {
	last  time.Time // time of the last refill
	limit float64   // tokens per minute in force; +Inf while unknown
	level float64   // tokens in the bucket (capacity: see capacity); negative: a debt
	burst float64   // capacity below a minute of quota; 0: none
	peak  float64   // the highest level since peak was last reset
	rpm   float64   // requests per minute; 0: not limited
	rlvl  float64   // requests in the request bucket
}

// newBucket returns buckets refilled up to now, holding level tokens and a
// full request bucket.
func newBucket(now time.Time, limit, rpm, level float64) bucket {
	return bucket{last: now, limit: limit, level: level, rpm: rpm, rlvl: rpm}
}

func (b *bucket) unlimited() bool { return math.IsInf(b.limit, 1) }

// capacity returns what the token bucket holds at most: a minute of quota,
// or the burst when it is lower.
func (b *bucket) capacity() float64 {
	if b.burst > 0 {
		return min(b.burst, b.limit)
	}
	return b.limit
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
		b.level = min(b.capacity(), b.level+s*b.limit/60)
		b.peak = max(b.peak, b.level)
	}
	if b.rpm > 0 {
		b.rlvl = min(b.rpm, b.rlvl+s*b.rpm/60)
	}
}

// room reports whether a call holding hold tokens and one request fits the
// buckets. A call larger than the token bucket (possible only while a
// learned limit is below it) fits when the bucket is full, and leaves it in
// debt.
func (b *bucket) room(hold float64) bool {
	if b.rpm > 0 && b.rlvl < 1-eps {
		return false
	}
	return b.unlimited() || b.level >= min(hold, b.capacity())-eps
}

// fitAt returns when a call holding hold tokens and one request will fit
// if nothing is given back meanwhile, and not before at.
func (b *bucket) fitAt(hold float64, now, at time.Time) time.Time {
	if b.rpm > 0 && b.rlvl < 1-eps {
		at = later(at, now, (1-eps/2-b.rlvl)/(b.rpm/60))
	}
	if !b.unlimited() {
		if need := min(hold, b.capacity()) - eps/2; b.level < need {
			at = later(at, now, (need-b.level)/(b.limit/60))
		}
	}
	return at
}

// reserve takes hold tokens and one request.
func (b *bucket) reserve(hold float64) {
	if !b.unlimited() {
		b.level -= hold
	}
	if b.rpm > 0 {
		b.rlvl--
	}
}

// give adds tokens to the token bucket (takes them when negative), up to
// its capacity.
func (b *bucket) give(tokens float64) {
	if !b.unlimited() {
		b.level = min(b.capacity(), b.level+tokens)
		b.peak = max(b.peak, b.level)
	}
}

// giveRequest adds one request to the request bucket, up to its capacity.
func (b *bucket) giveRequest() {
	if b.rpm > 0 {
		b.rlvl = min(b.rpm, b.rlvl+1)
	}
}

// drain empties the token bucket, keeping a debt, and returns what it took.
func (b *bucket) drain() float64 {
	if b.unlimited() {
		return 0
	}
	w := max(b.level, 0)
	b.level = min(b.level, 0)
	return w
}

// resize sets the tokens-per-minute limit: a first limit (the bucket was
// unlimited) starts empty; otherwise the level stays, to be cut to the new
// capacity by the next refill.
func (b *bucket) resize(limit float64) {
	if b.unlimited() {
		b.level = 0
	}
	b.limit = limit
}

// fits reports whether a call holding hold tokens may start now: the target
// is not paused after a throttle and the buckets have room.
func (l *limiter) fits(hold float64, now time.Time) bool {
	if now.Before(l.pausedUntil) {
		return false
	}
	return l.room(hold) || l.probe(now)
}

// probe reports whether a learning target with nothing in flight may send
// one call whatever its bucket holds: its last call was granted probeEvery
// ago. A limit learned too low, with a debt from the calls granted before
// it, would otherwise keep the target waiting for minutes (its refill is
// the low limit, where Bedrock's is the quota), and no call would get
// through to grow the limit. Bedrock throttles a probe that does not fit.
func (l *limiter) probe(now time.Time) bool {
	return l.p.learn && !l.unlimited() && l.inflight == 0 && !now.Before(l.lastGrant.Add(probeEvery))
}

// readyAt returns when a call holding hold tokens will fit if nothing is
// given back meanwhile.
func (l *limiter) readyAt(hold float64, now time.Time) time.Time {
	at := now
	if l.pausedUntil.After(at) {
		at = l.pausedUntil
	}
	fit := l.fitAt(hold, now, at)
	if p := l.lastGrant.Add(probeEvery); l.p.learn && !l.unlimited() && l.inflight == 0 && p.Before(fit) {
		fit = at
		if p.After(at) {
			fit = p
		}
	}
	return fit
}

// later returns the later of at and now+sec seconds, rounded up to the nanosecond.
func later(at, now time.Time, sec float64) time.Time {
	t := now.Add(time.Duration(math.Ceil(min(sec, maxWaitSeconds) * 1e9)))
	if t.After(at) {
		return t
	}
	return at
}
