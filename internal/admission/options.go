package admission

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/keel-run/keel/internal/bedrock"
	"github.com/keel-run/keel/internal/clock"
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
// "unknown": tokens are not limited until Bedrock throttles the target (a
// throttle confirmed by a second, see Ticket.Throttled), and from then on
// the limit is learned.
type Quota struct {
	// TokensPerMinute is the target's tokens-per-minute quota. When Learn is
	// false it is known: the limit starts there, comes down when a minute
	// of throttles shows Bedrock gives less, and grows back, never above it. When Learn is true it is a first guess
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
	hint  bool    // the starting limit is a hint (see Governor.Hint): the bucket starts warm even with FullStart
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
	// FullStart makes a known quota's bucket start full, a minute of
	// quota, as Bedrock's is when nothing used it lately. By default it
	// starts with a second of quota and warms up as calls get through
	// (docs/governor.md, Warm-up), since Bedrock's may be spent (another
	// process used it just now) or hold less than a minute.
	FullStart bool
	// QueueTarget is how long an Interactive call may expect to wait in the
	// queue of an overloaded target: one whose calls asked over the last
	// minute for more than its limit (what they would settle): more than
	// its bucket, which holds a minute of quota, could absorb. With a Store
	// that is a Sharer, this process's calls are weighed against its share
	// of the limit, and a call's wait at its share of the refill. There,
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
	// MaxTargets bounds the targets, beyond those listed in Targets, that
	// the Governor keeps state for. Past it, the one idle longest (no call
	// in flight or waiting, none granted for a minute) is forgotten for a
	// new one; when none is idle, calls to further targets are not
	// governed. Zero means DefaultMaxTargets.
	MaxTargets int
	// Discover, when not nil, reads a target's tokens-per-minute quota
	// from outside the Governor (keel's Service Quotas discovery). The
	// Governor calls it, in a goroutine of its own and with a context that
	// ends after at most 30 s, for each model and region that Targets does
	// not configure: when a call first names it, and again on the first
	// call DiscoverEvery after the last read (a minute after a read that
	// gave no quota). t's Tier is empty: a quota
	// holds for every tier of the model in the region. A positive quota
	// becomes the target's known quota, replacing Default and what was
	// learned (Stats.Source "discovered"; see SetQuota); zero or an error
	// leaves the target as it is (learned, or its last discovered quota).
	// The first calls to a target wait for the first read, at most
	// DiscoverWait (and MaxWait, when set), and not past their context's
	// end. It must be safe for concurrent use.
	Discover func(ctx context.Context, t Target) (tokensPerMinute int, err error)
	// DiscoverEvery is how long a read of Discover holds before the next
	// call asks again. Zero means DefaultDiscoverEvery.
	DiscoverEvery time.Duration
	// DiscoverWait bounds how long a call waits for its target's first
	// read of Discover. Zero means DefaultDiscoverWait.
	DiscoverWait time.Duration
	// Store holds the targets' buckets (see Store); nil: a MemStore of the
	// Governor's own. Governors in several processes that share a Store
	// (redisstore) share their targets' quotas.
	Store Store
	// Clock tells the time and makes the timers waits use; nil means
	// clock.Real{}.
	Clock clock.Clock
	// Rand draws the cool-down jitter, uniform in [0, 1); it must be safe
	// for concurrent use. Nil means math/rand/v2's Float64.
	Rand func() float64
}
