package keel

import (
	"errors"

	"github.com/keel-run/keel/internal/budget"
	"github.com/keel-run/keel/internal/catalog"
)

// Sentinel errors. errors.Is(err, keel.ErrThrottled) holds for an error
// from a keel-enabled client whose final failure was of that
// kind, whatever the SDK's own type for it; errors.As with the SDK's types
// keeps working beside them.
var (
	// ErrThrottled: the call ended on a throttle (ThrottlingException, or a
	// 429 without a code) after keel's retries and fallbacks.
	ErrThrottled error = throttled("keel: throttled: a per-minute quota was exceeded")
	// ErrCircuitOpen: keel did not send the call to its last target because
	// that target's circuit breaker was open.
	ErrCircuitOpen error = kindOf("keel: circuit breaker open", CodeCircuitOpen)
	// ErrNoQuotaBeforeDeadline: the quota governor found no room for the
	// call before its deadline.
	ErrNoQuotaBeforeDeadline error = kindOf("keel: no quota before the deadline", CodeNoQuotaBeforeDeadline)
	// ErrOverloaded: the quota governor refused an interactive call on a
	// target asked for more than its quota rather than queue it.
	ErrOverloaded error = kindOf("keel: target overloaded", CodeTargetOverloaded)
	// ErrAttemptTimeout: the last attempt exceeded keel's per-attempt
	// timeout (the caller's own deadline still reads as
	// context.DeadlineExceeded).
	ErrAttemptTimeout error = kindOf("keel: attempt timed out", CodeAttemptTimeout)
	// ErrResponseTooLarge: a reply or stream event exceeded keel's limits.
	ErrResponseTooLarge error = kindOf("keel: response too large", CodeResponseTooLarge)
	// ErrBudgetExhausted: keel stopped retrying because the retry budget
	// shared by all calls was spent.
	ErrBudgetExhausted = errBudgetExhausted
)

// The sentinels' makers, kept out of their declarations so that the
// documentation names no internal package.
var (
	kindOf             = catalog.KindOf
	errBudgetExhausted = budget.ErrExhausted
)

func throttled(msg string) error {
	return catalog.NewKind(msg, func(e *catalog.Entry) bool { return e.Retry == catalog.Throttled })
}

// Is reports whether keel's account of the call matches target: one of the
// sentinel errors above, or any error keel's failure wraps (the context's
// error when keel stopped because it ended).
func (e *Error) Is(target error) bool {
	if k, ok := target.(*catalog.Kind); ok {
		return k.Matches(e.entry())
	}
	return e.failure != nil && errors.Is(e.failure, target)
}
