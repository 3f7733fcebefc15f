package retry

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/keel-run/keel/internal/catalog"
)

// Defaults for the zero Policy. docs/policies.md compares them with the AWS
// SDK's standard retryer and says why they differ.
const (
	// DefaultMaxAttempts is the number of attempts on one target, the first
	// included. It matches the AWS SDK's standard retryer.
	DefaultMaxAttempts = 3
	// DefaultBase is the backoff base for transient failures: the first retry
	// waits up to Base, the second up to 2×Base, and so on.
	DefaultBase = 250 * time.Millisecond
	// DefaultCap is the ceiling for transient-failure backoff. It is low on
	// purpose: a target still failing after a few quick retries is better
	// left to the breaker and the route's next target than waited on.
	DefaultCap = 5 * time.Second
	// DefaultThrottleBase is the backoff base after throttling, the base the
	// AWS SDK's 2026 retry behaviour uses for throttling errors.
	DefaultThrottleBase = time.Second
	// DefaultThrottleCap is the ceiling for throttling backoff, the AWS SDK's
	// default MaxBackoff.
	DefaultThrottleCap = 20 * time.Second
	// DefaultMaxRetryAfter bounds how long a Retry-After hint may make a
	// retry wait.
	DefaultMaxRetryAfter = 20 * time.Second
)

// MaxMaxAttempts is the largest MaxAttempts Validate accepts.
const MaxMaxAttempts = 20

// Reasons a Decision gives. They are constants so that a decision costs no
// allocation; compare Decision.Reason against them.
const (
	ReasonTransient    = "transient failure: back off and retry"
	ReasonThrottled    = "throttled: back off longer and retry"
	ReasonRetryAfter   = "retry after the service's Retry-After hint"
	ReasonExhausted    = "attempts on this target used up"
	ReasonNever        = "not retryable: the same request cannot succeed"
	ReasonFallback     = "not retryable here: this target cannot serve the request"
	ReasonLongWait     = "not retried inline: needs a long wait (dead-letter it)"
	ReasonNoEntry      = "no catalog entry: not retried"
	ReasonUnknownClass = "unknown retry class: not retried"
)

// Rand is the source of jitter. *rand.Rand from math/rand/v2 implements it.
// Implementations used by concurrent Decide calls must be safe for
// concurrent use; *rand.Rand is not, so share one only in single-goroutine
// tests.
type Rand interface {
	// Int64N returns a uniform random number in [0, n); n > 0.
	Int64N(n int64) int64
}

// Policy says how failed attempts on one target are retried.
//
// The zero value is ready to use and means all defaults: every zero field
// takes the Default constant of the same name. A Policy is safe for
// concurrent use as long as it is not modified. Most callers want Decide.
type Policy struct {
	// MaxAttempts is the number of attempts on one target, the first
	// included; 1 disables retries. Zero means DefaultMaxAttempts.
	MaxAttempts int
	// Base and Cap shape the backoff for transient failures (catalog.Backoff):
	// retry n waits a uniform random time in [0, min(Cap, Base×2^(n-1))].
	// Zero means DefaultBase and DefaultCap.
	Base, Cap time.Duration
	// ThrottleBase and ThrottleCap do the same for throttling
	// (catalog.Throttled). Zero means DefaultThrottleBase and DefaultThrottleCap.
	ThrottleBase, ThrottleCap time.Duration
	// MaxRetryAfter bounds the floor a Retry-After hint sets: a hint of
	// 60 s with MaxRetryAfter 20 s waits 20 s. Zero means DefaultMaxRetryAfter.
	MaxRetryAfter time.Duration
}

// Decision is what to do after a failed attempt.
type Decision struct {
	// Retry reports whether to try the same target again.
	Retry bool
	// Delay is how long to wait before that retry; zero when Retry is false.
	Delay time.Duration
	// Reason says why, as one of the Reason constants.
	Reason string
}

// Validate reports the first field of p that is out of range: negative
// durations, a MaxAttempts below zero or above MaxMaxAttempts, or a cap below
// its base once defaults are applied. Call it when loading configuration;
// Decide never fails and replaces an invalid field by its default.
func (p *Policy) Validate() error {
	if p.MaxAttempts < 0 || p.MaxAttempts > MaxMaxAttempts {
		return fmt.Errorf("retry: MaxAttempts must be between 1 and %d (0 = default %d), got %d",
			MaxMaxAttempts, DefaultMaxAttempts, p.MaxAttempts)
	}
	for _, f := range [...]struct {
		name string
		d    time.Duration
	}{{"Base", p.Base}, {"Cap", p.Cap}, {"ThrottleBase", p.ThrottleBase}, {"ThrottleCap", p.ThrottleCap}, {"MaxRetryAfter", p.MaxRetryAfter}} {
		if f.d < 0 {
			return fmt.Errorf("retry: %s must not be negative, got %v", f.name, f.d)
		}
	}
	if b, c := or(p.Base, DefaultBase), or(p.Cap, DefaultCap); c < b {
		return fmt.Errorf("retry: Cap %v is below Base %v", c, b)
	}
	if b, c := or(p.ThrottleBase, DefaultThrottleBase), or(p.ThrottleCap, DefaultThrottleCap); c < b {
		return fmt.Errorf("retry: ThrottleCap %v is below ThrottleBase %v", c, b)
	}
	return nil
}

// Decide says whether to retry after attempt number attempt (1 for the first
// attempt) failed with the catalog entry e, and how long to wait.
//
// retryAfter is the service's hint (Retry-After or x-amz-retry-after, as the
// classifier parsed it), zero when absent; a retryable failure then waits at
// least min(retryAfter, MaxRetryAfter). rnd supplies the jitter; nil means
// math/rand/v2's lock-free global source. Decide does not allocate.
func (p *Policy) Decide(attempt int, e *catalog.Entry, retryAfter time.Duration, rnd Rand) Decision {
	if e == nil {
		return Decision{Reason: ReasonNoEntry}
	}
	var base, ceiling time.Duration
	reason := ReasonTransient
	switch e.Retry {
	case catalog.Backoff:
		base, ceiling = orValid(p.Base, DefaultBase), orValid(p.Cap, DefaultCap)
	case catalog.Throttled:
		base, ceiling = orValid(p.ThrottleBase, DefaultThrottleBase), orValid(p.ThrottleCap, DefaultThrottleCap)
		reason = ReasonThrottled
	case catalog.Never:
		return Decision{Reason: ReasonNever}
	case catalog.Fallback:
		return Decision{Reason: ReasonFallback}
	case catalog.LongWait:
		return Decision{Reason: ReasonLongWait}
	default:
		return Decision{Reason: ReasonUnknownClass}
	}
	maxAttempts := p.MaxAttempts
	if maxAttempts <= 0 || maxAttempts > MaxMaxAttempts {
		maxAttempts = DefaultMaxAttempts
	}
	if attempt >= maxAttempts {
		return Decision{Reason: ReasonExhausted}
	}
	if ceiling < base {
		ceiling = base
	}
	delay := jitter(Backoff(attempt, base, ceiling), rnd)
	if retryAfter > 0 {
		floor := min(retryAfter, orValid(p.MaxRetryAfter, DefaultMaxRetryAfter))
		if floor > delay {
			delay, reason = floor, ReasonRetryAfter
		}
	}
	return Decision{Retry: true, Delay: delay, Reason: reason}
}

// Backoff returns the un-jittered ceiling for the retry after attempt
// number attempt: min(ceiling, base×2^(attempt-1)), without overflowing.
// An attempt below 1 counts as 1.
func Backoff(attempt int, base, ceiling time.Duration) time.Duration {
	if attempt < 1 {
		attempt = 1
	}
	if base <= 0 {
		return 0
	}
	shift := attempt - 1
	if shift >= 62 || base > ceiling>>shift {
		return ceiling
	}
	return base << shift
}

// jitter returns a uniform random duration in [0, d] ("full jitter").
func jitter(d time.Duration, rnd Rand) time.Duration {
	if d <= 0 {
		return 0
	}
	n := int64(d)
	if n < 1<<62 {
		n++ // make d itself reachable
	}
	if rnd == nil {
		return time.Duration(rand.Int64N(n))
	}
	return time.Duration(rnd.Int64N(n))
}

func or(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// orValid is or, also replacing a negative d, which Validate rejects.
func orValid(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// ErrDeadline reports that waiting before a retry would cross the context's
// deadline, so the wait was not started. Errors returned by Wait match it
// with errors.Is when that is why they failed.
var ErrDeadline = errors.New("retry: backoff would cross the context deadline")

// WaitError is the error Wait returns. It wraps both why the wait failed
// (ErrDeadline, context.Canceled or context.DeadlineExceeded) and the last
// attempt's error, so errors.Is and errors.As find either.
type WaitError struct {
	// Delay is the wait that was asked for.
	Delay time.Duration
	// Left is the time that was left before the context's deadline when the
	// wait was refused; zero when the context was cancelled instead.
	Left time.Duration
	// Err is ErrDeadline, or the context's error when it was cancelled or
	// expired.
	Err error
	// Last is the error of the attempt that failed before the wait; it may be nil.
	Last error
}

func (e *WaitError) Error() string {
	var msg string
	if errors.Is(e.Err, ErrDeadline) {
		msg = fmt.Sprintf("retry: not waiting %v for a retry: only %v left before the context deadline", e.Delay, e.Left)
	} else {
		msg = fmt.Sprintf("retry: wait of %v for a retry interrupted: %v", e.Delay, e.Err)
	}
	if e.Last != nil {
		msg += "; last error: " + e.Last.Error()
	}
	return msg
}

// Unwrap returns the cause of the failed wait and the last attempt's error.
func (e *WaitError) Unwrap() []error {
	if e.Last == nil {
		return []error{e.Err}
	}
	return []error{e.Err, e.Last}
}
