package admission

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrNoBucket: a Store has no buckets for the key (Open makes them).
var ErrNoBucket = errors.New("admission: no bucket for the key")

// Store holds targets' token and request buckets: the state that Governors
// in several processes sharing one quota would share. Everything else a
// Governor keeps (the queue, the reply-time and input estimates, the limit
// learner) is its own judgement. MemStore keeps the buckets in memory; a
// backend shared by replicas (Redis, say) implements the same contract, and
// storetest.Run checks it.
//
// Units: tokens and tokens per minute, requests and requests per minute,
// as float64. Each key has a token bucket and a request bucket, each holding
// a minute of its quota (capacity: the limit, or the token bucket's burst
// when one is set lower) and refilled continuously at limit/60 a second
// from the last time an operation saw. Every operation
// takes the caller's now: it first refills the key's buckets up to now; a
// now before the latest one seen refills nothing, and time never goes back.
//
// The rules, for every backend:
//   - A token limit of +Inf is unlimited: every call fits, levels do not
//     move, Drain takes nothing. A request limit of 0 is unlimited too.
//   - A call holding n tokens and one request fits when the token level is
//     at least min(n, capacity) − 0.001 and the request level at least
//     0.999; a call larger than the bucket fits when it is full, and leaves
//     it in debt.
//   - Take takes a call's tokens and request whether or not it fits: the
//     caller has decided to send it (a probe, a warm-up loan). TakeIfRoom
//     takes them only if the call fits now, by the rule above, and
//     otherwise takes nothing and holds no lease; either way it returns
//     the buckets as they are (what Level at now would return). A lease ID
//     already live is an error for both, room or not.
//   - Levels may be negative (a debt): a call that took more than it held
//     is paid back by the refill. Give with negative tokens takes them
//     (a debit), with no floor. Refill and Give never raise a level above
//     its capacity: a refund beyond it is lost.
//   - SetLimit's first limit (of a key that was unlimited) starts with an
//     empty bucket. A later limit leaves the level as it is until the next
//     refill that adds time cuts it to the new capacity. SetBurst does the
//     same with the token bucket's capacity.
//   - The peak is the highest token level a refill or a Give has left since
//     Drain last set it to the level (0 before any, and while unlimited).
//   - Take holds a granted call under a lease (Lease): until the lease is
//     ended (End) or expires, the store remembers it. Every operation on a
//     key first refills its buckets up to now, then expires its leases whose
//     Until is before now, giving back each one's Refund (up to the
//     capacity; not its request: Bedrock counted it), once. So a call whose
//     process died (kill -9) gives back what it would have given had it
//     produced no output, and no later than its lease's Until.
//   - Each operation is atomic per key; a Store is safe for concurrent use.
//
// Errors: an operation on a key that was not opened returns an error
// matching ErrNoBucket; a NaN, a negative count or a limit that is not
// positive returns an error naming the value; a backend's own failures are
// returned as they are. An operation that fails changes nothing.
type Store interface {
	// Open makes key's buckets at now, if it has none: b's limits, with
	// b.Tokens in the token bucket (up to its capacity) and a full request
	// bucket, no burst and a peak of 0; b.Requests, b.Burst and b.Peak are
	// not read. A key that has buckets keeps them as they are.
	Open(ctx context.Context, key Target, now time.Time, b Buckets) error
	// Reserve takes tokens and one request from key's buckets if the call
	// fits (see Store) and returns Reservation{OK: true, At: now}.
	// Otherwise it takes nothing and returns when the call would fit if
	// nothing were given back meanwhile, rounded up to the nanosecond
	// (and at most about 31 years ahead).
	Reserve(ctx context.Context, key Target, now time.Time, tokens float64) (Reservation, error)
	//
	// Give, Take, Drain, SetLimit and SetBurst change key's buckets and
	// return them as the change left them (what Level at now would
	// return), so that a caller needs no second round trip to see them.
	//
	// Give gives back tokens (takes them when negative) and requests
	// (never negative) to key's buckets, up to their capacities.
	Give(ctx context.Context, key Target, now time.Time, tokens float64, requests int) (Buckets, error)
	// Take takes tokens and one request from key's buckets whatever they
	// hold, leaving debts, and holds them under lease (see Store); a lease
	// with a zero ID holds nothing. A lease ID already live under key is
	// an error.
	Take(ctx context.Context, key Target, now time.Time, tokens float64, lease Lease) (Buckets, error)
	// TakeIfRoom is Take when the call fits (see Store), checked and
	// taken at once; otherwise it takes nothing, holds no lease, and
	// reports false. A Governor grants a call the levels it last read
	// had room for with TakeIfRoom, since processes sharing the buckets
	// may have taken that room since.
	TakeIfRoom(ctx context.Context, key Target, now time.Time, tokens float64, lease Lease) (Buckets, bool, error)
	// End ends key's lease id: if it is live, End removes it and gives
	// back tokens (takes them when negative) and requests as Give does,
	// and reports true. A lease that is not live (ended, expired, never
	// taken, or dropped with its key) changes nothing and reports false:
	// the caller, who knows the lease's Refund, gives back what is still
	// due (tokens − Refund, and the requests) with Give.
	End(ctx context.Context, key Target, now time.Time, id LeaseID, tokens float64, requests int) (Buckets, bool, error)
	// Drain empties key's token bucket to zero, keeping a debt, sets the
	// peak to the level, counts itself in Drains and DrainedAt, and returns
	// the tokens it took (≥ 0). With unlimited tokens it does nothing.
	Drain(ctx context.Context, key Target, now time.Time) (float64, Buckets, error)
	// SetLimit sets key's tokens-per-minute limit (> 0, or +Inf).
	SetLimit(ctx context.Context, key Target, now time.Time, tokensPerMinute float64) (Buckets, error)
	// SetBurst sets the token bucket's capacity below a minute of quota
	// (> 0), or clears it (0).
	SetBurst(ctx context.Context, key Target, now time.Time, tokens float64) (Buckets, error)
	// Level returns key's buckets at now.
	Level(ctx context.Context, key Target, now time.Time) (Buckets, error)
	// Forget drops key's buckets and leases, if it has any: a later Open makes them
	// anew. A Governor forgets a target it stops governing (see
	// Options.MaxTargets).
	Forget(ctx context.Context, key Target) error
}

// A Sharer is a Store that processes share, and that knows what part of
// each limit one of them can expect while all of them ask for more than
// theirs: redisstore's, 1 ÷ the processes its heartbeat counts (or a
// configured share). A Governor judges its own offered load against that
// part (see Options.QueueTarget). A Store that is not a Sharer is taken
// to be this process's alone.
type Sharer interface {
	// Share returns the part, in (0, 1]; a value outside it counts as 1.
	Share() float64
}

// Buckets are one key's limits and levels.
type Buckets struct {
	// TokensPerMinute is the token limit, and the token bucket's capacity;
	// +Inf: unlimited.
	TokensPerMinute float64
	// RequestsPerMinute is the request limit and capacity; 0: unlimited.
	RequestsPerMinute float64
	// Tokens and Requests are the levels; negative while in debt.
	Tokens, Requests float64
	// Burst is the token bucket's capacity when below TokensPerMinute;
	// 0: none.
	Burst float64
	// Peak is the highest token level since the last Drain (see Store).
	Peak float64
	// Drains counts the Drains that emptied the token bucket (confirmed
	// throttles, of every Governor that shares the key), and DrainedAt is
	// the last one's time, by the caller's clock (zero before any).
	Drains    uint64
	DrainedAt time.Time
	// Share is the part of each limit these buckets hold, when a store
	// holds a part (redisstore.Failover's local buckets while Redis
	// fails); 0: all of it.
	Share float64
}

// Lease is what a Store keeps of a granted call until it ends (see Store).
type Lease struct {
	// ID names the lease among all of its key's, across processes; zero:
	// no lease.
	ID LeaseID
	// Until is when the lease expires, by the caller's clock: the call's
	// deadline and a margin.
	Until time.Time
	// Refund is what expiry gives back: what the call would give back had
	// it produced no output (its hold less its input), ≥ 0.
	Refund float64
}

// LeaseID names a lease: the process (a random Owner, drawn when a
// Governor starts) and the call (N, counted by the Governor). The zero
// LeaseID names no lease.
type LeaseID struct{ Owner, N uint64 }

// IsZero reports whether id names no lease.
func (id LeaseID) IsZero() bool { return id == LeaseID{} }

func (id LeaseID) String() string { return fmt.Sprintf("%016x-%d", id.Owner, id.N) }

// Reservation is Reserve's answer.
type Reservation struct {
	// OK reports that the call fitted and its tokens and request were taken.
	OK bool
	// At is now when OK, and otherwise when the call would fit.
	At time.Time
}
