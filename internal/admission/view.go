package admission

import (
	"context"
	"time"
)

// A limiter reads and changes its target's buckets only through the
// Governor's Store, keyed by the target, each time at the now it acts at;
// l.view holds what the Store last returned. The calls below pass no
// context of the caller's: a limiter's ends (Settle, Cancel, Throttled)
// have none. l.mu must be held for each.

// load reads the target's buckets at now into l.view, unless the end of
// a Ticket at the same now just returned them (see endLease): a Store
// shared by processes costs a round trip per read.
func (l *limiter) load(now time.Time) {
	if fresh := l.freshAt; !fresh.IsZero() {
		l.freshAt = time.Time{}
		if fresh.Equal(now) {
			return
		}
	}
	l.keep(l.g.store.Level(context.Background(), l.target, now))
}

// keep puts b, what the Store returned, into l.view, unless the Store
// failed: then it records the failure (see Governor.StoreErr), and the
// limiter goes on with the view it has.
func (l *limiter) keep(b Buckets, err error) { l.keepOwn(b, err, false) }

// keepOwn is keep, own telling whether b's limit is one the limiter just
// set (see follow).
func (l *limiter) keepOwn(b Buckets, err error, own bool) {
	if err != nil {
		l.g.noteStoreErr(err)
		return
	}
	l.follow(b, own)
	if b.Share == 0 && b.Drains > l.drains {
		// Another Governor sharing the Store confirmed a throttle: Bedrock's
		// bucket is spent, and a full start's is no longer worth lending on.
		l.warmGap = 0
	}
	l.view = b
	// A full start's bucket, level + warmGap, refills to the capacity
	// as the level does: the gap closes as the level rises.
	l.warmGap = min(l.warmGap, max(b.capacity()-b.Tokens, 0))
}

// noteStoreErr records a failure of the Store (see Governor.StoreErr).
func (g *Governor) noteStoreErr(err error) {
	g.storeErrs.Add(1)
	e := err // on the heap only on failure
	g.lastStoreErr.Store(&e)
}

// takeBuckets takes a granted call's hold and request, under lease, and
// returns the lease, zero when the Store failed. With ifRoom it takes them
// only if the call fits the buckets as they are in the Store, and reports
// false when it did not: processes sharing the Store took the room the
// view showed. That also ends the warm-up's loans (see lend).
func (l *limiter) takeBuckets(hold float64, lease Lease, ifRoom bool, now time.Time) (Lease, bool) {
	var b Buckets
	var err error
	took := true
	if ifRoom {
		b, took, err = l.g.store.TakeIfRoom(context.Background(), l.target, now, hold, lease)
	} else {
		b, err = l.g.store.Take(context.Background(), l.target, now, hold, lease)
	}
	l.keep(b, err)
	if err != nil {
		return Lease{}, true // granted on the view, as a Store that fails cannot say
	}
	if !took {
		// Another process took the room: Bedrock's bucket is being spent
		// beside this one, and a full start's is not there to lend on.
		l.warmGap = 0
		l.freshAt = now // the dispatch that follows needs no second read
		return Lease{}, false
	}
	return lease, true
}

// give gives back tokens (takes them when negative) and requests.
func (l *limiter) give(tokens float64, requests int, now time.Time) {
	l.keep(l.g.store.Give(context.Background(), l.target, now, tokens, requests))
}

// drain empties the token bucket, keeping a debt, and returns what it took.
func (l *limiter) drain(now time.Time) float64 {
	w, b, err := l.g.store.Drain(context.Background(), l.target, now)
	l.keep(b, err)
	if err == nil {
		l.drains = b.Drains
		l.capped = 0 // the peak starts again from the level
	}
	return w
}

// resize sets the tokens-per-minute limit (a first one starts empty).
func (l *limiter) resize(limit float64, now time.Time) {
	b, err := l.g.store.SetLimit(context.Background(), l.target, now, limit)
	l.keepOwn(b, err, true)
}

// setBurst sets the token bucket's capacity below a minute of quota; 0
// clears it.
func (l *limiter) setBurst(burst float64, now time.Time) {
	l.keep(l.g.store.SetBurst(context.Background(), l.target, now, burst))
}
