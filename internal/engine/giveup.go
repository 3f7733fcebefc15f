package engine

import (
	"errors"
	"strings"

	"github.com/keel-run/keel/internal/budget"
	"github.com/keel-run/keel/internal/catalog"
)

// GiveUpReason says why keel stopped trying a call. Error.Reason returns
// it; Error.GaveUp keeps the detail as text.
type GiveUpReason int

// Give-up reasons. Zero is no failure.
const (
	// GaveUpAttemptsExhausted: every attempt the retry policy allows was
	// used on every target of the route.
	GaveUpAttemptsExhausted GiveUpReason = iota + 1
	// GaveUpNotRetryable: the failure cannot succeed on a retry (its entry
	// says never, long-wait, or fallback with no target left).
	GaveUpNotRetryable
	// GaveUpBudgetExhausted: the retry budget shared by all calls was spent.
	GaveUpBudgetExhausted
	// GaveUpDeadline: the next wait would have crossed the call's deadline.
	GaveUpDeadline
	// GaveUpContextEnded: the caller's context was cancelled or its
	// deadline passed.
	GaveUpContextEnded
	// GaveUpCircuitOpen: the last target's circuit breaker was open.
	GaveUpCircuitOpen
	// GaveUpNoQuota: the quota governor refused the call (no room before
	// the deadline, too large for the quota, or the target overloaded).
	GaveUpNoQuota
	// GaveUpNotResumed: a stream broke after part of its reply and could
	// not be resumed.
	GaveUpNotResumed
)

var giveUpNames = [...]string{
	GaveUpAttemptsExhausted: "attempts exhausted",
	GaveUpNotRetryable:      "not retryable",
	GaveUpBudgetExhausted:   "budget exhausted",
	GaveUpDeadline:          "deadline",
	GaveUpContextEnded:      "context ended",
	GaveUpCircuitOpen:       "circuit open",
	GaveUpNoQuota:           "no quota",
	GaveUpNotResumed:        "not resumed",
}

// String returns the reason in a few words ("budget exhausted").
func (r GiveUpReason) String() string {
	if r > 0 && int(r) < len(giveUpNames) {
		return giveUpNames[r]
	}
	return "none"
}

// The texts Error.GaveUp starts with for the reasons Reason cannot read
// from the entry or the wrapped errors. path.go and stream.go write them;
// TestGiveUpTexts checks they still do.
const (
	gaveUpContextPrefix  = "the context ended"
	gaveUpNotResumedPfx  = "not resumed: "
	gaveUpDeadlineText   = "the next wait would cross the deadline"
	gaveUpBudgetSpentTxt = "the shared retry budget is spent"
)

// Reason returns why keel gave up on the call.
func (e *Error) Reason() GiveUpReason {
	code := ""
	if e.Entry != nil {
		code = e.Entry.Code
	}
	switch {
	case code == catalog.CodeContextCanceled || code == catalog.CodeDeadlineExceeded,
		strings.HasPrefix(e.GaveUp, gaveUpContextPrefix):
		return GaveUpContextEnded
	case strings.HasPrefix(e.GaveUp, gaveUpNotResumedPfx):
		return GaveUpNotResumed
	case e.GaveUp == gaveUpBudgetSpentTxt, errors.Is(e.Err, budget.ErrExhausted):
		return GaveUpBudgetExhausted
	case e.GaveUp == gaveUpDeadlineText:
		return GaveUpDeadline
	case code == catalog.CodeCircuitOpen:
		return GaveUpCircuitOpen
	case code == catalog.CodeNoQuotaBeforeDeadline, code == catalog.CodeRequestTooLargeForQuota, code == catalog.CodeTargetOverloaded:
		return GaveUpNoQuota
	case e.Entry != nil && !e.Entry.Retryable():
		return GaveUpNotRetryable
	}
	return GaveUpAttemptsExhausted
}
