package engine

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/keel-run/keel/internal/attempt"
	"github.com/keel-run/keel/internal/breaker"
	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/retry"
	"github.com/keel-run/keel/internal/route"
)

func TestBreakerOpensAndFailsFast(t *testing.T) {
	var changes []string
	h := newHarness(t, map[string][]reply{m1 + "@us-east-1": {{code: catalog.CodeInternalServer}}}, func(o *Options) {
		o.Breaker = breaker.Options{MinCalls: 4, FailureRate: 0.5, Cooldown: 30 * time.Second, Window: time.Minute, Probes: 1, Successes: 1}
		o.DisableBudget = true
		o.Retry = retry.Policy{MaxAttempts: 1}
	})
	orig := h.eng.breakers
	_ = orig
	for i := 0; i < 4; i++ {
		h.converse(context.Background(), m1)
	}
	if n := len(h.up.targets()); n != 4 {
		t.Fatalf("sent %d", n)
	}
	// Open: fails fast, nothing sent, a typed error naming target and probe time.
	_, rep, err := h.converse(context.Background(), m1)
	if n := len(h.up.targets()); n != 4 {
		t.Fatalf("an open breaker let a call through (%d sent)", n)
	}
	var oe *breaker.OpenError
	if !errors.Is(err, breaker.ErrOpen) || !errors.As(err, &oe) || oe.Target != m1+"@us-east-1" {
		t.Fatalf("err = %v, want an open-breaker error for the target", err)
	}
	if want := h.clk.Now().Add(30 * time.Second); !oe.ProbeAt.Equal(want) && !oe.ProbeAt.Before(want) {
		t.Fatalf("ProbeAt %v, want <= %v", oe.ProbeAt, want)
	}
	var ke *Error
	if !errors.As(err, &ke) || ke.Entry.Code != catalog.CodeCircuitOpen || !strings.Contains(ke.Message, "next probe at") {
		t.Fatalf("err %v: want CircuitOpen naming the probe time", err)
	}
	if len(rep.Attempts) != 1 || !rep.Attempts[0].Skipped {
		t.Fatalf("report %+v should record one skipped target", rep.Attempts)
	}
	// After the cool-down a probe goes through; success closes the breaker.
	h.up.mu.Lock()
	h.up.script[m1+"@us-east-1"] = []reply{{}}
	h.up.mu.Unlock()
	h.clk.Advance(31 * time.Second)
	if _, _, err := h.converse(context.Background(), m1); err != nil {
		t.Fatalf("probe failed: %v", err)
	}
	if st := h.eng.breakers.Get(m1, "us-east-1").State(); st != breaker.Closed {
		t.Fatalf("state after a good probe: %v", st)
	}
	_ = changes
}

func TestValidationDoesNotTripBreaker(t *testing.T) {
	h := newHarness(t, map[string][]reply{m1 + "@us-east-1": {{code: catalog.CodeValidation}}}, func(o *Options) {
		o.Breaker = breaker.Options{MinCalls: 2, FailureRate: 0.5}
	})
	for i := 0; i < 20; i++ {
		h.converse(context.Background(), m1)
	}
	if st := h.eng.breakers.Get(m1, "us-east-1").State(); st != breaker.Closed {
		t.Fatalf("caller mistakes opened the breaker: %v", st)
	}
	if n := len(h.up.targets()); n != 20 {
		t.Fatalf("sent %d, want 20", n)
	}
}

func TestOpenBreakerFallsBack(t *testing.T) {
	routes := route.New("us-east-1", map[string][]attempt.Target{m1: {{Model: m1, Region: "us-west-2"}}})
	h := newHarness(t, map[string][]reply{m1 + "@us-east-1": {{code: catalog.CodeServiceUnavailable}}}, func(o *Options) {
		o.Routes = routes
		o.Breaker = breaker.Options{MinCalls: 2, FailureRate: 0.5}
		o.Retry = retry.Policy{MaxAttempts: 1}
	})
	for i := 0; i < 3; i++ {
		if _, _, err := h.converse(context.Background(), m1); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	got := h.up.targets()
	// Two calls fail over from us-east-1; then its breaker is open and the third goes straight to us-west-2.
	want := []string{m1 + "@us-east-1", m1 + "@us-west-2", m1 + "@us-east-1", m1 + "@us-west-2", m1 + "@us-west-2"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("targets %v\nwant    %v", got, want)
	}
}

// TestThrottlesBreakTheFailureStreak: a throttle shows the target answers,
// so failures scattered among throttles are not "in a row" and do not open
// the breaker by the consecutive-failures rule; caller mistakes say nothing
// and leave the streak alone.
func TestThrottlesBreakTheFailureStreak(t *testing.T) {
	const failures = breaker.DefaultConsecutiveFailures
	interleave := func(between string) []reply {
		var rs []reply
		for i := range failures {
			if i%2 == 0 {
				rs = append(rs, reply{code: catalog.CodeServiceUnavailable})
			} else {
				rs = append(rs, reply{code: catalog.CodeModelNotReady})
			}
			if between != "" && i < failures-1 {
				rs = append(rs, reply{code: between}, reply{code: between})
			}
		}
		return append(rs, reply{}) // then healthy
	}
	tests := []struct {
		name   string
		script []reply
		want   breaker.State
	}{
		{name: "5xx among throttles", script: interleave(catalog.CodeThrottling), want: breaker.Closed},
		{name: "5xx among bare 429s", script: interleave(catalog.CodeTooManyRequests), want: breaker.Closed},
		{name: "5xx among validation errors", script: interleave(catalog.CodeValidation), want: breaker.Open},
		{name: "5xx in a row", script: interleave(""), want: breaker.Open},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, map[string][]reply{m1 + "@us-east-1": tt.script}, func(o *Options) {
				// MinCalls above the calls made: only the consecutive rule can open it.
				o.Breaker = breaker.Options{MinCalls: 100}
				o.DisableBudget = true
				o.Retry = retry.Policy{MaxAttempts: 1}
			})
			for range len(tt.script) - 1 {
				h.converse(context.Background(), m1)
			}
			if st := h.eng.breakers.Get(m1, "us-east-1").State(); st != tt.want {
				t.Fatalf("state after %d calls: %v, want %v", len(tt.script)-1, st, tt.want)
			}
			if n := len(h.up.targets()); tt.want == breaker.Closed && n != len(tt.script)-1 {
				t.Fatalf("sent %d, want %d", n, len(tt.script)-1)
			}
		})
	}
}
