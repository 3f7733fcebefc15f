package breaker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/keel-run/keel/internal/bedrock"
	"github.com/keel-run/keel/internal/clock"
	"github.com/keel-run/keel/internal/window"
)

// Defaults for zero Options fields. docs/policies.md says why.
const (
	DefaultWindow      = 60 * time.Second
	DefaultMinCalls    = 10
	DefaultFailureRate = 0.5
	// DefaultConsecutiveFailures is Envoy's outlier-detection default
	// (consecutive_5xx); a healthy region failing 5% of calls at random
	// fails five in a row once in 3.2 million calls.
	DefaultConsecutiveFailures = 5
	DefaultCooldown            = 30 * time.Second
	DefaultProbes              = 2
	DefaultSuccesses           = 2
	DefaultMaxTargets          = 1024
)

// slots is the number of buckets the window is divided into.
const slots = 10

// MinWindow is the shortest Window accepted: one millisecond per slot.
const MinWindow = slots * time.Millisecond

// State is a breaker's state. Its numeric value rises with severity (closed
// 0, half-open 1, open 2), so it can be exported as a gauge as is.
type State int32

// States.
const (
	Closed   State = iota // calls flow; outcomes are counted
	HalfOpen              // a few probe calls test the target
	Open                  // calls are refused until the cool-down ends
)

func (s State) String() string {
	switch s {
	case Closed:
		return "closed"
	case HalfOpen:
		return "half-open"
	case Open:
		return "open"
	}
	return fmt.Sprintf("State(%d)", int32(s))
}

// Outcome is what a call told about its target's health.
type Outcome int

// Outcomes. The zero Outcome is Ignored.
const (
	// Ignored: the call says nothing about the target's health (the caller's
	// own mistake, or a call never sent). It counts neither way, and frees
	// a half-open probe slot.
	Ignored Outcome = iota
	// Success: the target answered well.
	Success
	// Failure: the target is unhealthy (5xx, timeout, not ready, connection error).
	Failure
	// Responsive: the target answered, but not with a reply that proves it
	// healthy (a throttle). It ends a run of consecutive failures, so that
	// a few 5xx scattered among many throttles do not count as "failures in
	// a row", yet counts neither way in the failure-rate window: a throttle
	// is not a success. For a half-open probe it is like Ignored: the slot
	// is freed, and only successes close the breaker.
	Responsive
)

func (o Outcome) String() string {
	switch o {
	case Ignored:
		return "ignored"
	case Success:
		return "success"
	case Failure:
		return "failure"
	case Responsive:
		return "responsive"
	}
	return fmt.Sprintf("Outcome(%d)", int(o))
}

// ErrOpen reports that a breaker refused a call. Errors returned by Allow
// match it with errors.Is.
var ErrOpen = errors.New("breaker: circuit open")

// OpenError is the error Allow returns when it refuses a call. Allow returns
// the same *OpenError for every refusal until the breaker's state changes;
// it must not be modified.
type OpenError struct {
	// Target names the target, as MODEL@REGION.
	Target string
	// ProbeAt is when the breaker lets probe calls through: the end of the
	// cool-down for an open breaker. For a half-open breaker whose probe
	// slots are all taken (HalfOpen true) it is when probing began; the next
	// slot frees up when a probe in flight ends.
	ProbeAt time.Time
	// HalfOpen reports that the breaker is half-open with every probe slot in use.
	HalfOpen bool
}

func (e *OpenError) Error() string {
	if e.HalfOpen {
		return fmt.Sprintf("breaker: circuit half-open for %s: probing since %s, no probe slot free",
			e.Target, e.ProbeAt.UTC().Format(time.RFC3339Nano))
	}
	return fmt.Sprintf("breaker: circuit open for %s: next probe at %s",
		e.Target, e.ProbeAt.UTC().Format(time.RFC3339Nano))
}

// Is reports whether target is ErrOpen.
func (e *OpenError) Is(target error) bool { return target == ErrOpen }

// Options configures breakers. The zero value means all defaults; each zero
// field takes the Default constant of the same name.
type Options struct {
	// Window is the sliding window outcomes are counted over; it slides in
	// steps of Window/10. Zero means DefaultWindow; a non-zero Window must be
	// at least MinWindow.
	Window time.Duration
	// MinCalls is how many outcomes (successes and failures) the window must
	// hold before the breaker may open, so one failure among the first calls
	// does not open it. Zero means DefaultMinCalls.
	MinCalls int
	// FailureRate is the share of failures, in (0, 1], at which the breaker
	// opens. Zero means DefaultFailureRate.
	FailureRate float64
	// ConsecutiveFailures opens the breaker after this many failures in a
	// row (a Success or Responsive outcome resets the count), whatever else
	// the window holds: a target that has just gone down, or hangs, is left
	// after a few calls, not once its failures outweigh a window of earlier
	// successes. Zero
	// means DefaultConsecutiveFailures; a negative value turns the rule off.
	ConsecutiveFailures int
	// Cooldown is how long an open breaker refuses calls before probing.
	// Zero means DefaultCooldown.
	Cooldown time.Duration
	// Probes is how many probe calls a half-open breaker lets through at
	// once. Zero means DefaultProbes.
	Probes int
	// Successes is how many successful probes close a half-open breaker.
	// Zero means DefaultSuccesses.
	Successes int
	// MaxTargets bounds how many breakers a Registry holds, so that a stream
	// of made-up model ids cannot grow it without end: past it, a closed
	// breaker with no outcome for IdleEvict is forgotten for a new one.
	// Zero means DefaultMaxTargets.
	MaxTargets int
	// OnStateChange, if not nil, is called on every state change, with the
	// breaker's lock held so calls arrive in order: it must be quick and must
	// not call the breaker's methods.
	OnStateChange func(model, region, tier string, from, to State)
	// Shared, if not nil, keeps each breaker's state where other
	// processes see it: Allow reads it with one round trip, and the
	// transitions are made there. While Shared fails, each breaker goes on
	// from the state it saw last, with its own transitions and probes, as
	// if Shared were nil, and returns to Shared's state when it answers.
	// Nil keeps the state in this process.
	Shared Shared
	// ProbeLease is how long a probe lease taken from Shared lasts when
	// the call has no deadline (see AllowContext). Zero means
	// DefaultProbeLease.
	ProbeLease time.Duration
}

// resolve validates o and fills in the defaults.
func (o Options) resolve() (Options, error) {
	switch {
	case o.Window < 0:
		return o, fmt.Errorf("breaker: Window must not be negative, got %v", o.Window)
	case o.Window > 0 && o.Window < MinWindow:
		return o, fmt.Errorf("breaker: Window must be at least %v, got %v", MinWindow, o.Window)
	case o.MinCalls < 0:
		return o, fmt.Errorf("breaker: MinCalls must not be negative, got %d", o.MinCalls)
	case o.FailureRate < 0 || o.FailureRate > 1:
		return o, fmt.Errorf("breaker: FailureRate must be in (0, 1] (0 = default %g), got %g", DefaultFailureRate, o.FailureRate)
	case o.Cooldown < 0:
		return o, fmt.Errorf("breaker: Cooldown must not be negative, got %v", o.Cooldown)
	case o.Probes < 0:
		return o, fmt.Errorf("breaker: Probes must not be negative, got %d", o.Probes)
	case o.Successes < 0:
		return o, fmt.Errorf("breaker: Successes must not be negative, got %d", o.Successes)
	case o.MaxTargets < 0:
		return o, fmt.Errorf("breaker: MaxTargets must not be negative, got %d", o.MaxTargets)
	case o.ProbeLease < 0:
		return o, fmt.Errorf("breaker: ProbeLease must not be negative, got %v", o.ProbeLease)
	}
	o.Window = cmp.Or(o.Window, DefaultWindow)
	o.MinCalls = cmp.Or(o.MinCalls, DefaultMinCalls)
	o.FailureRate = cmp.Or(o.FailureRate, DefaultFailureRate)
	o.Cooldown = cmp.Or(o.Cooldown, DefaultCooldown)
	o.ConsecutiveFailures = cmp.Or(o.ConsecutiveFailures, DefaultConsecutiveFailures)
	o.Probes = cmp.Or(o.Probes, DefaultProbes)
	o.Successes = cmp.Or(o.Successes, DefaultSuccesses)
	o.MaxTargets = cmp.Or(o.MaxTargets, DefaultMaxTargets)
	o.ProbeLease = cmp.Or(o.ProbeLease, DefaultProbeLease)
	return o, nil
}

// Breaker is the circuit breaker of one target. It is safe for concurrent
// use. Most callers get one from a Registry; Allow and Permit.Done are the
// per-call methods.
type Breaker struct {
	model, region, tier, name string
	o                         Options
	clk                       clock.Clock

	mu    sync.Mutex
	state State
	// gen changes on every state change. A Permit carries the gen it was
	// issued in, and an outcome from an earlier gen is dropped: calls let in
	// while closed do not count once the breaker has opened, nor do they
	// pass for probes.
	gen      uint64
	since    time.Time          // when the breaker entered its state
	used     time.Time          // when a call's outcome was last recorded
	ok, bad  window.Ring[int64] // outcomes in the window (closed state)
	probeAt  time.Time
	inflight int // probes in flight (half-open)
	probeOK  int // successful probes in this half-open spell
	streak   int // failures in a row (closed)
	openErr  *OpenError
	busyErr  *OpenError

	// With Options.Shared: the round trips asked and the last whose answer
	// was applied, the store's generation of the state applied, and the
	// probe leases it reported held.
	asked, applied uint64
	sgen           uint64
	sprobes        int
	// local: the breaker is open (or half-open) alone, Shared having
	// answered Local; Allow does not ask Shared until it closes.
	local bool
}

// New returns a closed breaker for model in region. A nil clk means
// clock.Real{}. It returns an error naming the first option out of range.
func New(model, region string, o Options, clk clock.Clock) (*Breaker, error) {
	o, err := o.resolve()
	if err != nil {
		return nil, err
	}
	return newBreaker(model, region, "", o, clk), nil
}

func newBreaker(model, region, tier string, o Options, clk clock.Clock) *Breaker {
	if clk == nil {
		clk = clock.Real{}
	}
	now := clk.Now()
	return &Breaker{
		model: model, region: region, tier: tier, name: bedrock.Target{Model: model, Region: region, Tier: tier}.String(),
		o: o, clk: clk,
		gen:   1, // the zero Permit (gen 0) never matches
		since: now,
		ok:    window.New[int64](slots, o.Window/slots, now),
		bad:   window.New[int64](slots, o.Window/slots, now),
	}
}

// Model returns the breaker's model id.
func (b *Breaker) Model() string { return b.model }

// Region returns the breaker's region.
func (b *Breaker) Region() string { return b.region }

// Tier returns the breaker's service tier; "" for calls naming none.
func (b *Breaker) Tier() string { return b.tier }

// Permit is a breaker's leave for one call. Every Permit from Allow must be
// ended exactly once, with Done when the call's outcome is known or with
// Cancel when the call is not sent after all; a half-open breaker's probe
// slot stays taken until then. For a stream, the outcome is known at the
// first content or at the failure before it. The zero Permit's methods do
// nothing.
type Permit struct {
	b     *Breaker
	gen   uint64
	probe bool
	lease uint64 // the probe's lease in Options.Shared; 0 for a local permit
}

// Done records the call's outcome.
func (p Permit) Done(o Outcome) { p.DoneContext(context.Background(), o) }

// Cancel ends a Permit whose call was not sent; it counts as Ignored.
func (p Permit) Cancel() { p.Done(Ignored) }

// Probe reports whether the Permit is for a half-open breaker's probe call.
func (p Permit) Probe() bool { return p.probe }

// Allow asks to send one call to the target. It returns a Permit to end with
// Done or Cancel, or an *OpenError when the breaker is open, or half-open
// with every probe slot taken. An open breaker whose cool-down has passed
// turns half-open here and lets the call through as a probe.
//
// A nil *Breaker allows every call. With Options.Shared, Allow is
// AllowContext with no deadline but the store's timeout.
func (b *Breaker) Allow() (Permit, error) { return b.AllowContext(context.Background()) }

// allowLocal is Allow on the breaker's local state.
func (b *Breaker) allowLocal() (Permit, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case Closed:
		// No clock read: a closed breaker needs no time, and the common
		// path stays cheap.
		return Permit{b: b, gen: b.gen}, nil
	case Open:
		now := b.clk.Now()
		if now.Before(b.probeAt) {
			return Permit{}, b.openErr
		}
		b.halfOpen(now)
	}
	// Half-open.
	if b.inflight >= b.o.Probes {
		return Permit{}, b.busyErr
	}
	b.inflight++
	return Permit{b: b, gen: b.gen, probe: true}, nil
}

func (b *Breaker) record(ctx context.Context, p Permit, o Outcome) {
	now := b.clk.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.recordLocked(ctx, p, o, now)
}

// recordLocked records a permit's outcome. b.mu must be held;
// recordShared releases it during its round trip.
func (b *Breaker) recordLocked(ctx context.Context, p Permit, o Outcome, now time.Time) {
	b.used = now
	if p.gen != b.gen {
		return // issued before the last state change
	}
	switch b.state {
	case Closed:
		if !b.judge(now, o) {
			return
		}
		if b.o.Shared != nil {
			b.recordShared(ctx, p, o, now)
			return
		}
		b.open(now)
	case HalfOpen:
		switch {
		case !p.probe:
		case p.lease != 0:
			b.recordShared(ctx, p, o, now)
		default:
			if b.inflight > 0 {
				b.inflight--
			}
			if o == Failure && b.local {
				// Open alone, and its probe failed: maybe the fleet
				// agrees now.
				b.recordShared(ctx, p, o, now)
				return
			}
			b.probeOutcome(now, o)
		}
	}
}

// judge counts a closed breaker's outcome and reports whether the breaker
// must open. b.mu must be held.
func (b *Breaker) judge(now time.Time, o Outcome) bool {
	switch o {
	case Success:
		b.ok.Add(now, 1)
		b.streak = 0
	case Responsive:
		b.streak = 0
	case Failure:
		b.bad.Add(now, 1)
		b.streak++
		bad := b.bad.Sum(now)
		n := b.ok.Sum(now) + bad
		return n >= int64(b.o.MinCalls) && float64(bad) >= b.o.FailureRate*float64(n) ||
			b.o.ConsecutiveFailures > 0 && b.streak >= b.o.ConsecutiveFailures
	}
	return false
}

// probeOutcome judges a local probe's outcome. b.mu must be held.
func (b *Breaker) probeOutcome(now time.Time, o Outcome) {
	switch o {
	case Success:
		b.probeOK++
		if b.probeOK >= b.o.Successes {
			b.close(now, now)
		}
	case Failure:
		b.open(now)
	}
}

// The transitions; b.mu must be held.

func (b *Breaker) open(now time.Time) { b.enterOpen(now, now.Add(b.o.Cooldown)) }

// enterOpen opens the breaker as of since until probeAt.
func (b *Breaker) enterOpen(since, probeAt time.Time) {
	b.probeAt = probeAt
	b.since = since
	b.openErr = &OpenError{Target: b.name, ProbeAt: b.probeAt}
	b.setState(Open)
}

func (b *Breaker) halfOpen(since time.Time) {
	b.inflight, b.probeOK, b.sprobes = 0, 0, 0
	b.since = since
	b.busyErr = &OpenError{Target: b.name, ProbeAt: since, HalfOpen: true}
	b.setState(HalfOpen)
}

// close closes the breaker as of since; now is the local clock's time,
// which the window is measured by.
func (b *Breaker) close(now, since time.Time) {
	b.local = false
	// Start the window afresh: the failures that opened the breaker are
	// history once probes have succeeded.
	b.ok.Reset(now)
	b.bad.Reset(now)
	b.streak = 0
	b.since = since
	b.setState(Closed)
}

// setState moves the breaker to state to. A Shared store's state may
// have gone round a whole cycle unseen (open to open, closed to closed):
// the generation changes, and OnStateChange is not called.
func (b *Breaker) setState(to State) {
	from := b.state
	b.state = to
	b.gen++
	if b.o.OnStateChange != nil && from != to {
		b.o.OnStateChange(b.model, b.region, b.tier, from, to)
	}
}

// State returns the breaker's state. An open breaker whose cool-down has
// passed still reports Open until the next Allow turns it half-open. A nil
// *Breaker is Closed.
func (b *Breaker) State() State {
	if b == nil {
		return Closed
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state
}

// Snapshot is a breaker's state and counts, for metrics and `keel` status.
type Snapshot struct {
	State State
	// Since is when the breaker entered State (made, for a breaker that
	// never changed).
	Since time.Time
	// Successes and Failures are the outcomes in the window (closed state).
	Successes, Failures int64
	// ProbeAt is when an open breaker will probe; zero unless Open.
	ProbeAt time.Time
	// Probes is the number of probes in flight (half-open state); with
	// Options.Shared, those of every process as last seen, and this
	// process's own while the store fails.
	Probes int
	// Alone reports a breaker open or half-open in this process only: with
	// Options.Shared, the fleet's state stayed closed (too few processes
	// judged the target failing for the quorum).
	Alone bool
}

// Snapshot returns the breaker's state and counts as of now.
func (b *Breaker) Snapshot() Snapshot {
	if b == nil {
		return Snapshot{}
	}
	now := b.clk.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	s := Snapshot{State: b.state, Since: b.since, Alone: b.local && b.state != Closed}
	switch b.state {
	case Closed:
		s.Successes, s.Failures = b.ok.Sum(now), b.bad.Sum(now)
	case Open:
		s.ProbeAt = b.probeAt
	case HalfOpen:
		s.Probes = b.inflight + b.sprobes
	}
	return s
}
