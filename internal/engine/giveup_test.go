package engine

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keel-run/keel/internal/budget"
	"github.com/keel-run/keel/internal/catalog"
)

func TestGiveUpReason(t *testing.T) {
	entry := catalog.Must
	tests := []struct {
		name string
		err  *Error
		want GiveUpReason
	}{
		{"retries used", &Error{Entry: entry(catalog.CodeThrottling)}, GaveUpAttemptsExhausted},
		{"validation", &Error{Entry: entry(catalog.CodeValidation)}, GaveUpNotRetryable},
		{"long wait", &Error{Entry: entry(catalog.CodeMPAgreementBeingCreated)}, GaveUpNotRetryable},
		{"budget text", &Error{Entry: entry(catalog.CodeThrottling), GaveUp: gaveUpBudgetSpentTxt}, GaveUpBudgetExhausted},
		{"budget wrapped", &Error{Entry: entry(catalog.CodeInternalServer), Err: errors.Join(errors.New("x"), budget.ErrExhausted)}, GaveUpBudgetExhausted},
		{"deadline", &Error{Entry: entry(catalog.CodeThrottling), GaveUp: gaveUpDeadlineText}, GaveUpDeadline},
		{"context while waiting", &Error{Entry: entry(catalog.CodeThrottling), GaveUp: "the context ended while waiting to retry", Err: context.Canceled}, GaveUpContextEnded},
		{"context entry", &Error{Entry: entry(catalog.CodeDeadlineExceeded)}, GaveUpContextEnded},
		{"breaker", &Error{Entry: entry(catalog.CodeCircuitOpen)}, GaveUpCircuitOpen},
		{"no quota", &Error{Entry: entry(catalog.CodeNoQuotaBeforeDeadline)}, GaveUpNoQuota},
		{"overloaded", &Error{Entry: entry(catalog.CodeTargetOverloaded)}, GaveUpNoQuota},
		{"too large for quota", &Error{Entry: entry(catalog.CodeRequestTooLargeForQuota)}, GaveUpNoQuota},
		{"stream not resumed", &Error{Entry: entry(catalog.CodeModelStreamError), GaveUp: "not resumed: resume is turned off"}, GaveUpNotResumed},
		{"no entry", &Error{}, GaveUpAttemptsExhausted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.err.Reason(); got != tt.want {
				t.Fatalf("Reason() = %v, want %v", got, tt.want)
			}
		})
	}
	for r := GaveUpAttemptsExhausted; r <= GaveUpNotResumed; r++ {
		if s := r.String(); s == "" || s == "none" {
			t.Errorf("GiveUpReason(%d) has no name", r)
		}
	}
	if s := GiveUpReason(0).String(); s != "none" {
		t.Errorf("zero reason = %q, want none", s)
	}
}

// TestGiveUpTexts checks that the engine still writes the texts Reason
// reads: a reworded message would turn its reason into another.
func TestGiveUpTexts(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	var src strings.Builder
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") || f == "giveup.go" {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		src.Write(b)
	}
	for _, want := range []string{`"` + gaveUpContextPrefix + ` `, `"` + gaveUpNotResumedPfx, `"` + gaveUpDeadlineText + `"`, "gaveUpBudgetSpentTxt"} {
		if !strings.Contains(src.String(), want) {
			t.Errorf("no engine source writes %s", want)
		}
	}
}
