package admission

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keel-run/keel/internal/clock"

	"github.com/keel-run/keel/internal/bedrock"
)

// Defaults for zero Options fields. docs/governor.md says why.
const (
	// DefaultBatchEvery: after 4 Interactive grants in a row while Batch
	// calls wait, the next grant goes to Batch.
	DefaultBatchEvery = 4
	// DefaultCoolDown is the mean pause after a throttle; each pause is drawn
	// from [CoolDown/2, 3×CoolDown/2).
	DefaultCoolDown = time.Second
	// DefaultRecovery is the time a shrunk limit takes to grow back to where
	// it was when the throttle came.
	DefaultRecovery = 30 * time.Second
	// DefaultDecrease is the share of the limit kept after a throttle, as in
	// the AWS SDK's adaptive retry mode (its beta).
	DefaultDecrease = 0.7
	// DefaultQueueTarget is how long an Interactive call joining the queue
	// of an overloaded target may expect to wait (see Options.QueueTarget).
	DefaultQueueTarget = time.Second
	// DefaultMaxTargets bounds the targets a Governor keeps state for.
	DefaultMaxTargets = 1024
	// DefaultFloor is the lowest tokens-per-minute limit a target's
	// adaptation goes down to when neither a quota nor a floor is set.
	DefaultFloor = 1000
)

// Class is a call's priority. The zero Class is Interactive.
type Class uint8

// Classes, highest priority first.
const (
	// Interactive calls are served first.
	Interactive Class = iota
	// Batch calls get every (BatchEvery+1)-th grant while Interactive calls wait.
	Batch
	numClasses
)

func (c Class) String() string {
	switch c {
	case Interactive:
		return "interactive"
	case Batch:
		return "batch"
	}
	return fmt.Sprintf("Class(%d)", uint8(c))
}

// Target is a model in a region (bedrock.Target): the unit Bedrock quotas
// are counted per.
type Target = bedrock.Target

// Quota is what is known about one target's quotas. The zero Quota means
// "unknown": tokens are not limited until Bedrock first throttles the
// target, and from then on the limit is learned (a throttle in the first
// seconds of watching the target only pauses it: too soon to tell a rate).
type Quota struct {
	// TokensPerMinute is the target's tokens-per-minute quota. When Learn is
	// false it is known: the limit starts there, shrinks after a throttle
	// and grows back, never above it. When Learn is true it is a first guess
	// the limit may grow past. Zero: unknown (see Quota).
	TokensPerMinute int
	// RequestsPerMinute is the target's requests-per-minute quota. Zero:
	// requests are not limited. It is never learned.
	RequestsPerMinute int
	// Learn makes TokensPerMinute a first guess rather than a known quota.
	Learn bool
	// MinTokensPerMinute is the floor adaptation never goes below. Zero: 1%
	// of TokensPerMinute or MaxTokensPerMinute, and at least DefaultFloor.
	MinTokensPerMinute int
	// MaxTokensPerMinute is the ceiling of a learned limit. Zero: none. It
	// must stay zero for a known quota, which is its own ceiling.
	MaxTokensPerMinute int
}

func (q Quota) validate(where string) error {
	switch {
	case q.TokensPerMinute < 0:
		return fmt.Errorf("admission: %s: TokensPerMinute %d is negative", where, q.TokensPerMinute)
	case q.RequestsPerMinute < 0:
		return fmt.Errorf("admission: %s: RequestsPerMinute %d is negative", where, q.RequestsPerMinute)
	case q.MinTokensPerMinute < 0:
		return fmt.Errorf("admission: %s: MinTokensPerMinute %d is negative", where, q.MinTokensPerMinute)
	case q.MaxTokensPerMinute < 0:
		return fmt.Errorf("admission: %s: MaxTokensPerMinute %d is negative", where, q.MaxTokensPerMinute)
	case q.MaxTokensPerMinute > 0 && q.MinTokensPerMinute > q.MaxTokensPerMinute:
		return fmt.Errorf("admission: %s: MinTokensPerMinute %d is above MaxTokensPerMinute %d", where, q.MinTokensPerMinute, q.MaxTokensPerMinute)
	case q.TokensPerMinute > 0 && !q.Learn && q.MaxTokensPerMinute > 0:
		return fmt.Errorf("admission: %s: MaxTokensPerMinute %d applies only when learning; the known TokensPerMinute %d is the ceiling", where, q.MaxTokensPerMinute, q.TokensPerMinute)
	case q.TokensPerMinute > 0 && q.MinTokensPerMinute > q.TokensPerMinute:
		return fmt.Errorf("admission: %s: MinTokensPerMinute %d is above TokensPerMinute %d", where, q.MinTokensPerMinute, q.TokensPerMinute)
	case q.Learn && q.MaxTokensPerMinute > 0 && q.TokensPerMinute > q.MaxTokensPerMinute:
		return fmt.Errorf("admission: %s: the first guess TokensPerMinute %d is above MaxTokensPerMinute %d", where, q.TokensPerMinute, q.MaxTokensPerMinute)
	}
	return nil
}

// policy is a Quota resolved into the numbers a limiter works with.
type policy struct {
	limit float64 // starting tokens-per-minute limit; +Inf: unknown
	floor float64
	ceil  float64 // +Inf: none
	rpm   float64 // 0: not limited
	learn bool    // the limit may grow past its starting value
}

func (q Quota) policy() policy {
	p := policy{limit: math.Inf(1), ceil: math.Inf(1), rpm: float64(q.RequestsPerMinute), learn: true}
	if q.TokensPerMinute > 0 {
		p.limit = float64(q.TokensPerMinute)
		p.learn = q.Learn
	}
	if q.MaxTokensPerMinute > 0 {
		p.ceil = float64(q.MaxTokensPerMinute)
	}
	if !p.learn {
		p.ceil = p.limit
	}
	p.floor = float64(q.MinTokensPerMinute)
	if p.floor == 0 {
		ref := p.limit
		if math.IsInf(ref, 1) {
			ref = p.ceil
		}
		p.floor = DefaultFloor
		if !math.IsInf(ref, 1) {
			p.floor = max(p.floor, ref/100)
			p.floor = min(p.floor, ref)
		}
	}
	return p
}

// Options configure a Governor. The zero value means all defaults: every
// target's quota unknown and learned from throttling.
type Options struct {
	// Default is the quota of every target not in Targets.
	Default Quota
	// Targets holds the quotas of particular targets, by exact model id (as
	// the calls name it) and region.
	Targets map[Target]Quota
	// Models adds model facts, matched before the built-in ones (see
	// LookupModel). Nil: the built-in table only.
	Models []Model
	// MaxWait bounds how long a call waits for quota, on top of its
	// context's deadline. Zero: only the context bounds it.
	MaxWait time.Duration
	// SmallFirst judges a call that must wait by its own size alone: under
	// overload, small calls then get through far more often than large ones,
	// which need the bucket to refill further. The zero value judges a call
	// entering the queue as if it held at least what the target's large calls
	// hold (the 95th percentile of recent holds), so that large and small
	// calls are refused alike when the queue is too long for their
	// deadlines.
	SmallFirst bool
	// QueueTarget is how long an Interactive call may expect to wait in the
	// queue of an overloaded target: one whose calls asked over the last
	// minute for more than its limit (what they would settle): more than
	// its bucket, which holds a minute of quota, could absorb. There,
	// a call whose estimated wait (judged as the target's large calls, see
	// SmallFirst) exceeds QueueTarget is refused at once with ErrOverloaded
	// rather than queued: the quota is used as fully with a short queue as
	// with a long one, while every reply behind a long queue comes later.
	// A target that is not overloaded (a burst) lets calls wait up to
	// their deadlines; Batch calls and the retry of a throttled attempt
	// always may. Zero means DefaultQueueTarget; a value as long as the
	// calls' deadlines turns the rule off.
	QueueTarget time.Duration
	// BatchEvery is how many Interactive grants in a row may pass Batch
	// calls that wait; the next grant is then a Batch one. Zero means
	// DefaultBatchEvery.
	BatchEvery int
	// CoolDown is the mean pause of a target's admissions after a throttle.
	// Zero means DefaultCoolDown.
	CoolDown time.Duration
	// Recovery is how long a limit shrunk by a throttle takes to grow back.
	// Zero means DefaultRecovery.
	Recovery time.Duration
	// Decrease is the share of the limit kept after a throttle, in (0, 1).
	// Zero means DefaultDecrease.
	Decrease float64
	// MaxTargets bounds the targets the Governor keeps state for; calls to
	// further targets are not governed. Targets listed in Targets always
	// count. Zero means DefaultMaxTargets.
	MaxTargets int
	// Clock tells the time and makes the timers waits use; nil means
	// clock.Real{}.
	Clock clock.Clock
	// Rand draws the cool-down jitter, uniform in [0, 1); it must be safe
	// for concurrent use. Nil means math/rand/v2's Float64.
	Rand func() float64
}

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

	mu      sync.Mutex // serialises adding targets
	targets atomic.Pointer[map[Target]*limiter]
	extra   int // targets added beyond those configured
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
		coolDown: opts.CoolDown, recovery: opts.Recovery.Seconds(), beta: opts.Decrease}
	m := make(map[Target]*limiter, len(opts.Targets))
	now := g.clk.Now()
	for t, q := range opts.Targets {
		m[t] = newLimiter(g, t, q.policy(), now)
	}
	g.targets.Store(&m)
	return g, nil
}

// limiter returns t's state, making it on first use; nil when MaxTargets
// targets are already governed.
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
	if g.extra >= g.opts.MaxTargets {
		return nil
	}
	next := make(map[Target]*limiter, len(cur)+1)
	for k, v := range cur {
		next[k] = v
	}
	l := newLimiter(g, t, g.opts.Default.policy(), g.clk.Now())
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
	if err := ctx.Err(); err != nil {
		return Ticket{}, fmt.Errorf("admission: %s: %w", t, err)
	}
	l := g.limiter(t)
	if l == nil {
		return Ticket{}, nil
	}
	return l.admit(ctx, est, class, by)
}

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

// Usage is what a finished call used, as Bedrock reports it (Converse
// "usage", Anthropic "usage", or the stream's metadata event).
type Usage struct {
	// InputTokens are the input tokens not read from or written to the
	// prompt cache. Zero, with both cache fields zero, means the input is
	// not known (a stream cut before its usage arrived): the Governor then
	// charges its own estimate and learns nothing from it.
	InputTokens           int
	OutputTokens          int
	CacheReadInputTokens  int
	CacheWriteInputTokens int
}

// Ticket holds one admitted call's share of its target's quota. End it with
// exactly one of Settle, Cancel or Throttled; after that its methods do
// nothing. A Ticket is a small value: keep it in one variable and do not
// end copies of it. The zero Ticket (from a nil or non-governing Governor)
// holds nothing, and its methods do nothing.
type Ticket struct {
	l      *limiter
	gen    uint64    // the limiter's throttle generation when admitted
	seq    uint64    // its place in the limiter's flight
	at     time.Time // when it was granted
	hold   float64
	input  float64 // corrected input estimate (part of hold)
	raw    int     // the caller's raw input estimate
	max    int     // max tokens held (part of hold)
	waited time.Duration
}

// Tokens returns the tokens the Ticket holds: its input estimate plus its
// max tokens.
func (t *Ticket) Tokens() int { return int(t.hold) }

// InputTokens returns the input estimate the Ticket holds, after the
// target's correction.
func (t *Ticket) InputTokens() int { return int(t.input) }

// MaxTokens returns the max tokens the Ticket holds: the request's own, or
// the target model's maximum output when the request set none. A caller that
// sends a request without max tokens may set this value in it.
func (t *Ticket) MaxTokens() int { return t.max }

// Waited returns how long Admit waited for the Ticket.
func (t *Ticket) Waited() time.Duration { return t.waited }

// Governed reports whether the Ticket holds a share of a quota, that is,
// whether it came from a Governor that governs its target and has not been
// ended yet. The zero Ticket is not governed.
func (t *Ticket) Governed() bool { return t.l != nil }

// Settle ends the Ticket with what the call really used: it replaces the
// hold with input + cache-write input + output × the model's burndown
// (cache reads are free), giving back what it held beyond that, or taking
// what it used beyond it. It also teaches the Governor the target's ratio of
// real to estimated input. Negative counts are taken as zero.
func (t *Ticket) Settle(u Usage) {
	if l := t.l; l != nil {
		t.l = nil
		l.settle(t, u)
	}
}

// Cancel ends the Ticket of a call that was not sent, or that failed without
// Bedrock charging it: everything it held goes back, its request included.
func (t *Ticket) Cancel() {
	if l := t.l; l != nil {
		t.l = nil
		l.cancel(t)
	}
}

// Throttled ends the Ticket of a call Bedrock throttled: everything it held
// goes back (Bedrock reserved nothing), and the target is paused for a short,
// jittered cool-down while its limit shrinks. Only the first throttle of
// calls admitted before a shrink shrinks the limit; the others, which were
// sent at the same old rate, are counted but change nothing.
func (t *Ticket) Throttled() {
	if l := t.l; l != nil {
		t.l = nil
		l.throttle(t)
	}
}

// Stats are one target's figures.
type Stats struct {
	Target Target
	// Model holds the facts in use for the target's model.
	Model Model
	// Limit is the tokens-per-minute limit in force; zero while it is
	// unknown (no throttle seen yet).
	Limit int64
	// Floor and Ceiling bound the limit; Ceiling is zero when there is none.
	Floor, Ceiling int64
	// Learning reports that the limit may grow past its first value.
	Learning bool
	// Available is what the token bucket holds now; negative while a call
	// that used more than it held is paid back.
	Available int64
	// RequestsPerMinute is the request limit (zero: none).
	RequestsPerMinute int64
	// PausedFor is what is left of the pause after a throttle.
	PausedFor time.Duration
	// InFlight counts admitted Tickets not yet ended; InFlightTokens sums
	// what they hold.
	InFlight       int
	InFlightTokens int64
	// ReservedPerMinute sums the tokens granted over the last minute;
	// SettledPerMinute sums what the calls that ended in it really used.
	ReservedPerMinute int64
	SettledPerMinute  int64
	// OfferedPerMinute is what the calls that asked for admission over the
	// last minute would settle (their holds × the tokens the last minute's
	// calls settled per token they held), per minute; above Limit, the
	// target is overloaded (see Options.QueueTarget).
	OfferedPerMinute int64
	// InputRatio is the learned ratio of real to estimated input tokens.
	InputRatio float64
	// Settled, Cancelled and Throttles count Tickets ended each way;
	// Decreases counts the throttles that set or lowered the limit, Resyncs
	// those that only emptied the bucket (a known quota's first of an
	// episode, or one whose bound was above the limit).
	Settled, Cancelled, Throttles, Decreases, Resyncs int64
	// ReplyTime is the time the target's replies take (the 95th percentile
	// of its attempts, admission to settlement, or the age of its calls in
	// flight while they show it is more) that Admit keeps before a call's
	// deadline; LargeHold what its large calls hold (the 99th
	// percentile of the calls' holds), the size a call entering the queue is
	// judged by. Zero until measured.
	ReplyTime time.Duration
	LargeHold int64
	// TooLarge counts calls refused with ErrTooLarge.
	TooLarge int64
	// Classes holds the queue figures per Class.
	Classes [2]ClassStats
}

// ClassStats are one class's queue figures for a target.
type ClassStats struct {
	// Queued and QueuedTokens are the calls waiting now and what they would hold.
	Queued       int
	QueuedTokens int64
	// Admitted counts granted calls; Waited those of them that had to wait.
	Admitted, Waited int64
	// Expired counts calls refused with ErrWouldExceedDeadline, Shed those
	// refused with ErrOverloaded; Cancelled those whose context was
	// cancelled while they waited.
	Expired, Shed, Cancelled int64
	// WaitTotal sums the waits of granted calls; WaitMax is the longest.
	WaitTotal, WaitMax time.Duration
}
