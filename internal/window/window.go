// Package window keeps sums over a sliding window of time: a ring of
// fixed-length slots, the oldest forgotten as time moves on. The breaker
// counts outcomes in Rings, and the retry budget first attempts and retries.
package window

import "time"

// Number is what a Ring sums.
type Number interface {
	~int | ~int64 | ~float64
}

// Ring sums values of type V over the last Slots×Width of time, sliding by
// one Width at a time. Slot boundaries are counted from an origin, so two
// Rings with the same origin and width slide together. A clock that steps
// back is taken as standing still: a value added then goes to the newest
// slot. Ring is not safe for concurrent use; its owner locks. Make one with
// New: the zero Ring has no slots and is not usable.
type Ring[V Number] struct {
	slot   []V
	width  time.Duration
	origin time.Time
	cur    int64 // index of the newest slot since origin
}

// New returns an empty Ring of slots slots of width each, whose slots start
// at origin plus a multiple of width. It panics if slots or width is not
// positive: that is a programming error, never input.
func New[V Number](slots int, width time.Duration, origin time.Time) Ring[V] {
	if slots <= 0 || width <= 0 {
		panic("window: New needs a positive slot count and width")
	}
	return Ring[V]{slot: make([]V, slots), width: width, origin: origin}
}

// Len returns the span the Ring covers: its slots times their width.
func (r *Ring[V]) Len() time.Duration { return time.Duration(len(r.slot)) * r.width }

// advance moves the Ring to now, clearing the slots that fell out of it,
// and returns the newest slot's position in r.slot.
func (r *Ring[V]) advance(now time.Time) int {
	n := int64(now.Sub(r.origin) / r.width)
	if n > r.cur {
		steps := min(n-r.cur, int64(len(r.slot)))
		for i := int64(1); i <= steps; i++ {
			r.slot[(r.cur+i)%int64(len(r.slot))] = 0
		}
		r.cur = n
	}
	return r.pos(r.cur)
}

// pos returns slot index i's position in r.slot (an index before origin
// included).
func (r *Ring[V]) pos(i int64) int {
	m := int64(len(r.slot))
	return int((i%m + m) % m)
}

// Add adds v to the slot now falls in.
func (r *Ring[V]) Add(now time.Time, v V) { r.slot[r.advance(now)] += v }

// Sum returns the sum over the whole Ring as of now.
func (r *Ring[V]) Sum(now time.Time) V {
	r.advance(now)
	var s V
	for _, v := range r.slot {
		s += v
	}
	return s
}

// Recent returns the sum of the newest slots that cover d back from now (at
// most all of them), and the time those slots cover: the newest is only
// partly over. A d of zero or less covers nothing.
func (r *Ring[V]) Recent(now time.Time, d time.Duration) (V, time.Duration) {
	r.advance(now)
	n := int64(min((d+r.width-1)/r.width, time.Duration(len(r.slot))))
	var s V
	if n <= 0 {
		return s, 0
	}
	for i := range n {
		s += r.slot[r.pos(r.cur-i)]
	}
	into := now.Sub(r.origin) % r.width
	if into < 0 {
		into += r.width
	}
	return s, time.Duration(n-1)*r.width + into
}

// Reset empties the Ring as of now.
func (r *Ring[V]) Reset(now time.Time) {
	clear(r.slot)
	r.cur = max(r.cur, int64(now.Sub(r.origin)/r.width))
}
