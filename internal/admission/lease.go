package admission

import (
	"context"
	"math/rand/v2"
	"time"
)

// A granted call's hold is held under a lease in the Store (see Store), so
// that a process that dies with calls in flight does not keep their holds
// taken for ever in a store other processes share.
const (
	// LeaseMargin is how long after its call's deadline a lease lasts: the
	// time a call that ends at its deadline takes to report its usage and
	// reach the store, with room to spare.
	LeaseMargin = 30 * time.Second
	// LeaseDefault is how long the lease of a call without a deadline
	// lasts: far longer than a Bedrock call runs, so that a live call's
	// lease does not expire under it.
	LeaseDefault = time.Hour
)

// newLeaseOwner returns the Owner of a Governor's lease IDs: random, so
// that processes sharing a store do not reuse each other's IDs.
func newLeaseOwner() uint64 { return rand.Uint64() | 1 }

// lease returns the lease of a call granted at now with context ctx, that
// holds hold tokens of which input are its input.
func (l *limiter) lease(ctx context.Context, hold, input float64, now time.Time) Lease {
	until := now.Add(LeaseDefault)
	if d, ok := ctx.Deadline(); ok {
		until = d.Add(LeaseMargin)
	}
	return Lease{ID: LeaseID{Owner: l.g.leaseOwner, N: l.g.leaseSeq.Add(1)}, Until: until, Refund: max(hold-input, 0)}
}

// endLease ends t's lease, giving back refund tokens (taking them if
// negative) and requests. When the lease is no longer live (it expired,
// and gave back its Refund), what is still due is given back: refund less
// the lease's Refund. A Ticket without a lease (its Take failed) gives
// back refund.
func (l *limiter) endLease(t *Ticket, refund float64, requests int, now time.Time) {
	if t.lease.ID.IsZero() {
		l.give(refund, requests, now)
		return
	}
	b, live, err := l.g.store.End(context.Background(), l.target, now, t.lease.ID, refund, requests)
	l.keep(b, err)
	if err == nil && !live {
		l.give(refund-t.lease.Refund, requests, now)
	}
	if err == nil {
		l.freshAt = now // the dispatch that follows needs no second read
	}
}
