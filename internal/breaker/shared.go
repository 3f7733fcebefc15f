package breaker

import (
	"cmp"
	"context"
	"math/rand/v2"
	"time"
)

// Shared keeps the state of breakers where every process calling the same
// targets sees it (internal/breaker/redisbreaker keeps it in Redis), so
// that a breaker one process opens is open for all, and half-open lets at
// most Probes probes through across all of them.
//
// Each process still judges a closed target by its own outcomes (its own
// window and failure streak); only the state is shared: closed, open until
// a time, or half-open with probe leases. A lease is taken by Allow for a
// given time; a process that dies mid-probe frees its lease when that time
// is up.
//
// One process's judgement does not open the breaker for all: a process
// with a bad network path or bad credentials would hold the fleet's
// breaker open. A process votes when its own judgement opens its breaker
// (its window's failure rate over MinCalls, or its failure streak): Open
// records the vote for the process's window and opens the shared breaker
// only when enough processes voted within their windows (the store's
// quorum); otherwise it answers Local, and the process opens its own
// breaker alone: it refuses calls for its cool-down, then probes on its
// own, and a failed probe votes again. Failures that do not open a
// process's breaker (a healthy fleet's stray 5xx) are no vote.
//
// Implementations are safe for concurrent use. Any error means the store
// could not answer; the Breaker then decides with its local state (see
// Options.Shared), so an implementation should fail fast while its store
// is known to be down.
type Shared interface {
	// Allow returns target's state. An open state whose cool-down has
	// passed turns half-open. When the state is half-open and fewer than
	// probes leases are held, it takes the lease named lease for ttl and
	// reports Granted.
	Allow(ctx context.Context, target string, lease uint64, probes int, ttl time.Duration) (View, error)
	// Open records this process's vote that target is failing, for
	// window, and, if target's breaker is closed, opens it for cooldown
	// when enough processes voted within their windows, and returns its
	// state; when too few did, the state stays closed and the View is
	// Local.
	Open(ctx context.Context, target string, cooldown, window time.Duration) (View, error)
	// EndProbe ends the probe lease lease with the probe's outcome: if the
	// lease is still held (it has not expired and the state has not changed
	// since it was taken), a Success counts toward successes, which close
	// the breaker, and a Failure opens it for cooldown; other outcomes only
	// free the lease. It returns target's state.
	EndProbe(ctx context.Context, target string, lease uint64, o Outcome, successes int, cooldown time.Duration) (View, error)
}

// View is a target's state as a Shared store answered it.
type View struct {
	State State
	// Gen changes with every state change; 0 means the store holds no
	// state for the target (never opened, or forgotten): closed.
	Gen uint64
	// Since is when the target entered State, by the store's clock; zero
	// when Gen is 0.
	Since time.Time
	// ProbeAt is when an open breaker's cool-down ends, by the store's
	// clock; zero unless State is Open.
	ProbeAt time.Time
	// Probes is the number of probe leases held (half-open).
	Probes int
	// Granted reports that Allow took the lease it was asked for.
	Granted bool
	// Local reports that Open left the shared state closed, too few
	// processes having seen the target fail: the caller opens its own
	// breaker only.
	Local bool
}

// Tunables of shared breakers.
const (
	// DefaultProbeLease is how long a probe lease lasts when the probe's
	// call has no deadline: long enough for a slow reply to end its probe
	// before the lease lapses, short enough that a process killed
	// mid-probe holds a slot of the fleet for at most a minute.
	DefaultProbeLease = time.Minute
	// leaseMargin is added to a call's deadline to make its probe lease:
	// the probe's outcome is recorded a little after the deadline, and
	// this host's clock and the store's may differ a little.
	leaseMargin = time.Second
)

// AllowContext is Allow for a call whose context is ctx: with Shared set,
// the round trip to the store ends with ctx (and the store's own timeout),
// and a probe lease lasts until ctx's deadline plus a margin (ProbeLease
// when ctx has none).
func (b *Breaker) AllowContext(ctx context.Context) (Permit, error) {
	if b == nil {
		return Permit{}, nil
	}
	if b.o.Shared != nil {
		b.mu.Lock()
		local := b.local
		b.mu.Unlock()
		if !local {
			if answered, p, err := b.allowShared(ctx); answered {
				return p, err
			}
		}
	}
	return b.allowLocal()
}

// allowShared asks the Shared store; answered is false when it did not
// answer and the local state must decide.
func (b *Breaker) allowShared(ctx context.Context) (answered bool, p Permit, err error) {
	lease := rand.Uint64() | 1 // never 0, which marks a local permit
	b.mu.Lock()
	seq := b.ask()
	b.mu.Unlock()
	v, err := b.o.Shared.Allow(ctx, b.name, lease, b.o.Probes, b.leaseTTL(ctx))
	if err != nil {
		return false, Permit{}, nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.apply(v, seq)
	if b.local {
		// Opened alone while the question was in flight: the local state
		// decides, as for every call until it closes.
		return false, Permit{}, nil
	}
	switch {
	case v.State == Closed:
		return true, Permit{b: b, gen: b.gen}, nil
	case v.Granted:
		return true, Permit{b: b, gen: b.gen, probe: true, lease: lease}, nil
	}
	if v.Gen != b.sgen || v.State != b.state {
		// The answer is older than the state applied since.
		e := &OpenError{Target: b.name, ProbeAt: v.ProbeAt}
		if v.State == HalfOpen {
			e.ProbeAt, e.HalfOpen = v.Since, true
		}
		return true, Permit{}, e
	}
	if v.State == Open {
		return true, Permit{}, b.openErr
	}
	return true, Permit{}, b.busyErr
}

// DoneContext is Done for a call whose context is ctx: with Shared set,
// a round trip to the store (a probe's end, or an outcome that opens the
// breaker) ends with ctx and the store's own timeout.
func (p Permit) DoneContext(ctx context.Context, o Outcome) {
	if p.b != nil {
		p.b.record(ctx, p, o)
	}
}

// leaseTTL is how long a probe lease taken for a call with ctx lasts.
func (b *Breaker) leaseTTL(ctx context.Context) time.Duration {
	if d, ok := ctx.Deadline(); ok {
		return max(d.Sub(b.clk.Now()), 0) + leaseMargin
	}
	return b.o.ProbeLease
}

// ask numbers a round trip to the Shared store, so that an answer is
// applied only if no answer to a later question was; b.mu must be held.
func (b *Breaker) ask() uint64 {
	b.asked++
	return b.asked
}

// apply makes v, the answer to question seq, the breaker's state, unless
// an answer to a later question was applied already. While the breaker
// is open alone (local), a closed state is what the store answered when
// it opened, so it changes nothing; an open or half-open one means the
// fleet opened, and it rules. b.mu must be held.
func (b *Breaker) apply(v View, seq uint64) {
	if seq <= b.applied {
		return
	}
	b.applied = seq
	if b.local && v.State == Closed {
		b.sgen, b.sprobes = v.Gen, v.Probes
		return
	}
	b.local = false
	if v.Gen != b.sgen || v.State != b.state {
		switch {
		case v.Gen == 0 && v.State == Closed && b.state == Closed:
			// A closed state the store forgot: still closed.
		case v.State == Closed:
			now := b.clk.Now()
			b.close(now, cmp.Or(v.Since, now)) // a forgotten state has no Since
		case v.State == Open:
			b.enterOpen(v.Since, v.ProbeAt)
		default:
			b.halfOpen(v.Since)
		}
	}
	b.sgen, b.sprobes = v.Gen, v.Probes
}

// recordShared ends a permit issued in closed state whose outcome opens
// the breaker, a probe's lease, or a failed probe of a breaker open alone
// (Local), through the Shared store; when the store does not answer, the
// local state judges, and when it answers Local, the breaker opens alone. b.mu must be held; it is
// released during the round trip.
func (b *Breaker) recordShared(ctx context.Context, p Permit, o Outcome, now time.Time) {
	seq, gen := b.ask(), b.gen
	b.mu.Unlock()
	var v View
	var err error
	if p.lease != 0 {
		v, err = b.o.Shared.EndProbe(ctx, b.name, p.lease, o, b.o.Successes, b.o.Cooldown)
	} else {
		v, err = b.o.Shared.Open(ctx, b.name, b.o.Cooldown, b.o.Window)
	}
	b.mu.Lock()
	if err == nil && !v.Local {
		b.apply(v, seq)
		return
	}
	if b.gen != gen {
		return
	}
	switch {
	case err == nil:
		// Local: too few processes judged the target failing. An Allow in
		// flight may still answer closed, which apply ignores now.
		b.open(now)
		b.local = true
	case p.lease == 0 && b.state == Closed:
		b.open(now)
	case b.state == HalfOpen:
		// A probe: the store's lease, or this process's own while its
		// breaker is open alone.
		b.probeOutcome(now, o)
	}
}
