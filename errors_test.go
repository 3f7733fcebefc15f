package keel

import (
	"context"
	"errors"
	"testing"

	"github.com/keel-run/keel/internal/budget"
	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/config"
	"github.com/keel-run/keel/internal/emulator/fault"
	"github.com/keel-run/keel/internal/engine"
)

var sentinels = map[string]error{
	"ErrThrottled": ErrThrottled, "ErrCircuitOpen": ErrCircuitOpen, "ErrNoQuotaBeforeDeadline": ErrNoQuotaBeforeDeadline,
	"ErrOverloaded": ErrOverloaded, "ErrAttemptTimeout": ErrAttemptTimeout, "ErrResponseTooLarge": ErrResponseTooLarge,
	"ErrBudgetExhausted": ErrBudgetExhausted,
}

// TestSentinelErrors: each of keel's sentinel errors matches the failures
// of its kind, through keel's own error and the SDK face's, and no other.
func TestSentinelErrors(t *testing.T) {
	tests := []struct {
		code string
		err  error // joined into the failure
		want string
	}{
		{code: catalog.CodeThrottling, want: "ErrThrottled"},
		{code: catalog.CodeTooManyRequests, want: "ErrThrottled"},
		{code: catalog.CodeCircuitOpen, want: "ErrCircuitOpen"},
		{code: catalog.CodeNoQuotaBeforeDeadline, want: "ErrNoQuotaBeforeDeadline"},
		{code: catalog.CodeTargetOverloaded, want: "ErrOverloaded"},
		{code: catalog.CodeAttemptTimeout, want: "ErrAttemptTimeout"},
		{code: catalog.CodeResponseTooLarge, want: "ErrResponseTooLarge"},
		{code: catalog.CodeServiceUnavailable, err: budget.ErrExhausted, want: "ErrBudgetExhausted"},
		{code: catalog.CodeValidation},
	}
	for _, tt := range tests {
		t.Run(tt.code+"/"+tt.want, func(t *testing.T) {
			f := &engine.Error{Entry: catalog.Must(tt.code), Err: tt.err}
			for face, err := range map[string]error{"keel": f, "SDK": &Error{err: errors.New("operation error Bedrock Runtime: Converse"), failure: f}} {
				for name, s := range sentinels {
					if got := errors.Is(err, s); got != (name == tt.want) {
						t.Errorf("%s face: errors.Is(%s failure, %s) = %v", face, tt.code, name, got)
					}
				}
			}
		})
	}
}

// TestSentinelErrorsThroughTheSDK: a call throttled to the end, and one
// whose retries the budget refused, read as such through the SDK client.
func TestSentinelErrorsThroughTheSDK(t *testing.T) {
	tests := []struct {
		name string
		code string
		c    *config.Config
		want error
	}{
		{name: "throttled", code: catalog.CodeThrottling, c: &config.Config{}, want: ErrThrottled},
		{name: "budget", code: catalog.CodeServiceUnavailable, c: &config.Config{Budget: config.Budget{Ratio: 0.001, MinPerSecond: 0.001}}, want: ErrBudgetExhausted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSetup(t, func(int, fault.Request) fault.Plan { return fault.Plan{Error: tt.code} }, tt.c, false)
			_, err := s.client.Converse(context.Background(), converseInput(haiku))
			if !errors.Is(err, tt.want) {
				t.Fatalf("err %v does not match %v", err, tt.want)
			}
		})
	}
}
