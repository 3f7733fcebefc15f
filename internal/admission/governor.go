package admission

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keel-run/keel/internal/clock"
)

// Governor admits calls to Bedrock targets within their quotas. It holds one
// token bucket (and optionally a request bucket) per target, queues the calls
// that do not fit, and learns the limits from throttling. A Governor is safe
// for concurrent use; create one per process with New.
//
// A nil *Governor governs nothing: Admit returns a zero Ticket at once, and
// the zero Ticket's methods do nothing.
//
// Most callers use Admit before each attempt and then exactly one of the
// Ticket's Settle, Cancel or Throttled.
type Governor struct {
	opts       Options
	clk        clock.Clock
	rand       func() float64
	batchEvery int
	coolDown   time.Duration
	recovery   float64 // seconds
	beta       float64
	store      Store         // the targets' buckets, keyed by target
	ownStore   bool          // store is a MemStore of the Governor's own, shared with no other process
	leaseOwner uint64        // the Owner of the Tickets' lease IDs
	leaseSeq   atomic.Uint64 // the last lease ID's number

	storeErrs    atomic.Int64          // the store's failures
	lastStoreErr atomic.Pointer[error] // the latest of them

	mu      sync.Mutex // serialises adding targets
	targets atomic.Pointer[map[Target]*limiter]
	extra   int // targets added beyond those configured
	evicted atomic.Int64
	disc    map[Target]*discovery // by model and region; guarded by mu
	hints   map[Target]int        // first guesses of targets not seen yet (see Hint); guarded by mu
}

// idlest returns the target added beyond the configured ones that has been
// idle longest, at least evictIdle: no call in flight or waiting, none
// granted since; nil when there is none. g.mu must be held.
func (g *Governor) idlest(cur map[Target]*limiter, now time.Time) *limiter {
	var best *limiter
	var bestAt time.Time
	for t, l := range cur {
		if _, configured := g.opts.Targets[t]; configured {
			continue
		}
		l.mu.Lock()
		last, busy := l.born, l.inflight > 0 || l.queued()
		if l.lastGrant.After(last) {
			last = l.lastGrant
		}
		l.mu.Unlock()
		if busy || now.Sub(last) < evictIdle {
			continue
		}
		if best == nil || last.Before(bestAt) {
			best, bestAt = l, last
		}
	}
	return best
}

// New validates opts and returns a Governor. Errors name the field and value
// at fault.
func New(opts Options) (*Governor, error) {
	if err := opts.Default.validate("Default"); err != nil {
		return nil, err
	}
	for t, q := range opts.Targets {
		if err := q.validate(fmt.Sprintf("Targets[%s]", t)); err != nil {
			return nil, err
		}
	}
	if err := validateModels(opts.Models); err != nil {
		return nil, err
	}
	switch {
	case opts.MaxWait < 0:
		return nil, fmt.Errorf("admission: MaxWait %v is negative", opts.MaxWait)
	case opts.QueueTarget < 0:
		return nil, fmt.Errorf("admission: QueueTarget %v is negative", opts.QueueTarget)
	case opts.BatchEvery < 0:
		return nil, fmt.Errorf("admission: BatchEvery %d is negative", opts.BatchEvery)
	case opts.CoolDown < 0:
		return nil, fmt.Errorf("admission: CoolDown %v is negative", opts.CoolDown)
	case opts.Recovery < 0:
		return nil, fmt.Errorf("admission: Recovery %v is negative", opts.Recovery)
	case opts.Decrease != 0 && !(opts.Decrease > 0 && opts.Decrease < 1):
		return nil, fmt.Errorf("admission: Decrease %v must be between 0 and 1 (0 = default %v)", opts.Decrease, DefaultDecrease)
	case opts.MaxTargets < 0:
		return nil, fmt.Errorf("admission: MaxTargets %d is negative", opts.MaxTargets)
	case opts.DiscoverEvery < 0:
		return nil, fmt.Errorf("admission: DiscoverEvery %v is negative", opts.DiscoverEvery)
	case opts.DiscoverWait < 0:
		return nil, fmt.Errorf("admission: DiscoverWait %v is negative", opts.DiscoverWait)
	}
	if opts.DiscoverEvery == 0 {
		opts.DiscoverEvery = DefaultDiscoverEvery
	}
	if opts.DiscoverWait == 0 {
		opts.DiscoverWait = DefaultDiscoverWait
	}
	if opts.BatchEvery == 0 {
		opts.BatchEvery = DefaultBatchEvery
	}
	if opts.CoolDown == 0 {
		opts.CoolDown = DefaultCoolDown
	}
	if opts.QueueTarget == 0 {
		opts.QueueTarget = DefaultQueueTarget
	}
	if opts.Recovery == 0 {
		opts.Recovery = DefaultRecovery
	}
	if opts.Decrease == 0 {
		opts.Decrease = DefaultDecrease
	}
	if opts.MaxTargets == 0 {
		opts.MaxTargets = DefaultMaxTargets
	}
	if opts.Clock == nil {
		opts.Clock = clock.Real{}
	}
	if opts.Rand == nil {
		opts.Rand = rand.Float64
	}
	g := &Governor{opts: opts, clk: opts.Clock, rand: opts.Rand, batchEvery: opts.BatchEvery,
		coolDown: opts.CoolDown, recovery: opts.Recovery.Seconds(), beta: opts.Decrease, store: opts.Store,
		leaseOwner: newLeaseOwner()}
	if g.store == nil {
		g.store, g.ownStore = &MemStore{}, true
	}
	m := make(map[Target]*limiter, len(opts.Targets))
	now := g.clk.Now()
	for t, q := range opts.Targets {
		m[t] = newLimiter(g, t, q.policy(), now)
	}
	g.targets.Store(&m)
	return g, nil
}

// limiter returns t's state, making it on first use. When MaxTargets
// targets beyond the configured ones are governed, the one idle longest (no
// call in flight or waiting, none granted for evictIdle) is forgotten to
// make room; nil when none is.
func (g *Governor) limiter(t Target) *limiter {
	if l, ok := (*g.targets.Load())[t]; ok {
		return l
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	cur := *g.targets.Load()
	if l, ok := cur[t]; ok {
		return l
	}
	now := g.clk.Now()
	var victim *limiter
	if g.extra >= g.opts.MaxTargets {
		if victim = g.idlest(cur, now); victim == nil || !victim.forget() {
			return nil
		}
	}
	next := make(map[Target]*limiter, len(cur)+1)
	for k, v := range cur {
		if v != victim {
			next[k] = v
		}
	}
	if victim != nil {
		g.extra--
		g.evicted.Add(1)
		if err := g.store.Forget(context.Background(), victim.target); err != nil {
			g.noteStoreErr(err)
		}
		g.dropDiscovery(victim.target, next)
	}
	q := g.opts.Default
	if base, ok := g.opts.Targets[Target{Model: t.Model, Region: t.Region}]; ok && t.Tier != "" {
		// A tier's calls draw on its model's quota in the region (Bedrock's
		// on-demand quota is shared across tiers); the tier keeps a limiter
		// of its own because throttles differ by tier (flex is served last).
		q = base
	}
	base := Target{Model: t.Model, Region: t.Region}
	d := g.disc[base]
	if _, configured := g.opts.Targets[base]; d == nil && !configured && g.opts.Discover != nil {
		d = g.newDiscovery(base) // swept while its first call came here: read on the next
	}
	hint := false
	if d != nil && d.quota > 0 {
		q = discovered(q, d.quota)
	} else {
		q, hint = g.hinted(t, q)
	}
	p := q.policy()
	p.hint = hint
	l := newLimiter(g, t, p, now)
	if d != nil && d.quota > 0 {
		l.source = SourceDiscovered
	}
	l.disc = d
	next[t] = l
	g.extra++
	g.targets.Store(&next)
	return l
}

// Admit waits until the call fits t's quota, and returns the Ticket that
// holds its share: est's input (corrected by what t's past usage taught)
// plus its max tokens, or the target model's maximum output when est sets
// none. The caller must end the Ticket with exactly one of Settle, Cancel or
// Throttled.
//
// Calls that do not fit at once wait their turn: first come, first served
// within a class, Interactive ahead of Batch, with one Batch grant after
// every BatchEvery Interactive ones while Batch calls wait. A call waits at
// most until its context's deadline or MaxWait, whichever is sooner.
//
// Admit fails at once, without waiting, with an *Error matching ErrTooLarge
// when the call holds more than t's quota could ever give, and with one
// matching ErrWouldExceedDeadline when its estimated wait (from the calls
// ahead of it, the refill rate, the pause after a throttle, and the tokens
// the calls in flight are expected to give back) already crosses the
// deadline. The deadline is compared with the Governor's clock. If the
// deadline comes while it waits, the *Error also matches
// context.DeadlineExceeded when it was the context's. If ctx is cancelled,
// Admit returns an error wrapping ctx.Err(), leaves the queue and gives back
// anything it was granted.
//
// est.InputTokens and est.MaxTokens must not be negative; class must be
// Interactive or Batch. Calls to a target beyond MaxTargets are not
// governed: they get a zero Ticket at once. Admit does not allocate when the
// call fits at once.
func (g *Governor) Admit(ctx context.Context, t Target, est Estimate, class Class) (Ticket, error) {
	return g.AdmitBy(ctx, t, est, class, time.Time{})
}

// AdmitBy is Admit with a deadline of the caller's own besides its
// context's and MaxWait: the call waits at most until the earliest of the
// three, and is refused at once when its estimated wait crosses it. by is
// read on the Governor's clock; the zero time sets no deadline. A refusal
// because of by matches ErrWouldExceedDeadline, never
// context.DeadlineExceeded. The engine bounds the retry of a throttled
// attempt this way (by the retry policy's throttle cap), without deriving
// a context.
func (g *Governor) AdmitBy(ctx context.Context, t Target, est Estimate, class Class, by time.Time) (Ticket, error) {
	if g == nil {
		return Ticket{}, nil
	}
	if err := checkArgs(est, class); err != nil {
		return Ticket{}, err
	}
	if g.opts.Discover != nil {
		g.awaitQuota(ctx, t)
	}
	if err := ctx.Err(); err != nil {
		return Ticket{}, fmt.Errorf("admission: %s: %w", t, err)
	}
	for {
		l := g.limiter(t)
		if l == nil {
			return Ticket{}, nil
		}
		tk, err := l.admit(ctx, est, class, by)
		if err != errForgotten {
			return tk, err
		}
		// t was forgotten between the lookup and the admission: its new
		// state is looked up again.
	}
}

// errForgotten is what a forgotten limiter's admit returns: the caller looks
// the target up again.
var errForgotten = errors.New("admission: target forgotten")

func checkArgs(est Estimate, class Class) error {
	switch {
	case class >= numClasses:
		return fmt.Errorf("admission: class %d is neither Interactive (0) nor Batch (1)", class)
	case est.InputTokens < 0:
		return fmt.Errorf("admission: estimate's InputTokens %d is negative", est.InputTokens)
	case est.MaxTokens < 0:
		return fmt.Errorf("admission: estimate's MaxTokens %d is negative", est.MaxTokens)
	}
	return nil
}

// StoreErr returns how many operations on the Governor's bucket store
// failed, and the latest failure (nil: none). A limiter whose store fails
// goes on with the buckets it last read.
func (g *Governor) StoreErr() (int64, error) {
	if g == nil {
		return 0, nil
	}
	if p := g.lastStoreErr.Load(); p != nil {
		return g.storeErrs.Load(), *p
	}
	return 0, nil
}

// Stats returns t's figures, and false when the Governor holds no state for t.
func (g *Governor) Stats(t Target) (Stats, bool) {
	if g == nil {
		return Stats{}, false
	}
	l, ok := (*g.targets.Load())[t]
	if !ok {
		return Stats{}, false
	}
	return l.stats(), true
}

// Snapshot returns the figures of every target the Governor holds state for,
// in no particular order.
func (g *Governor) Snapshot() []Stats {
	if g == nil {
		return nil
	}
	m := *g.targets.Load()
	out := make([]Stats, 0, len(m))
	for _, l := range m {
		out = append(out, l.stats())
	}
	return out
}

// forget marks l forgotten if it is still idle, and reports whether it was:
// a call that looked l up before it was forgotten finds the mark in admit
// and looks its target up again.
func (l *limiter) forget() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.inflight > 0 || l.queued() {
		return false
	}
	l.gone = true
	return true
}
