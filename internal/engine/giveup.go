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

// Give-up reasons, numbered as keel.GiveUpReason's (which documents each);
// zero is none.
const (
	GaveUpAttemptsExhausted GiveUpReason = iota + 1
	GaveUpNotRetryable
	GaveUpBudgetExhausted
	GaveUpDeadline
	GaveUpContextEnded
	GaveUpCircuitOpen
	GaveUpNoQuota
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
