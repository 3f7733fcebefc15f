package engine

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/keel-run/keel/internal/admission"
	"github.com/keel-run/keel/internal/attempt"
	"github.com/keel-run/keel/internal/breaker"
	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/retry"
)

// statusLine renders what a test checks of a TargetStatus, times as offsets
// from start.
func statusLine(s TargetStatus, start time.Time) string {
	var b strings.Builder
	b.WriteString(s.Target.String())
	if br := s.Breaker; br != nil {
		fmt.Fprintf(&b, " breaker=%v since=+%v", br.State, br.Since.Sub(start))
	}
	if q := s.Quota; q != nil {
		fmt.Fprintf(&b, " limit=%d(%s) settled=%d queued=%d/%d", q.Limit, s.LimitSource(), q.SettledPerMinute,
			q.Classes[admission.Interactive].Queued, q.Classes[admission.Batch].Queued)
	}
	for _, e := range s.Errors {
		fmt.Fprintf(&b, " %s=%d/%d", e.Code, e.Recent, e.Total)
	}
	return b.String()
}

func TestSnapshot(t *testing.T) {
	const m2 = "amazon.nova-lite-v1:0"
	breakerOpts := breaker.Options{MinCalls: 4, FailureRate: 0.5, Cooldown: 30 * time.Second, Window: time.Minute, Probes: 1, Successes: 1}
	tests := []struct {
		name   string
		script map[string][]reply
		gov    *admission.Options // nil: no governor
		// calls are sent to m1, then m2; wait passes between the calls and
		// the snapshot.
		m1Calls, m2Calls int
		wait             time.Duration
		want             []string
	}{
		{name: "nothing sent", want: nil},
		{
			name:    "a breaker opens on server errors; the skipped call counts",
			script:  map[string][]reply{m1 + "@us-east-1": {{code: catalog.CodeInternalServer}}},
			m1Calls: 5, m2Calls: 1,
			want: []string{
				"amazon.nova-lite-v1:0@us-east-1 breaker=closed since=+5s",
				m1 + "@us-east-1 breaker=open since=+3s InternalServerException=4/4 CircuitOpen=1/1",
			},
		},
		{
			name:    "errors leave Recent after the window, not Total",
			script:  map[string][]reply{m1 + "@us-east-1": {{code: catalog.CodeThrottling}}},
			m1Calls: 2, wait: RecentErrorWindow + time.Minute,
			want: []string{m1 + "@us-east-1 breaker=closed since=+0s ThrottlingException=0/2"},
		},
		{
			name: "quota in use: configured on one target, unknown on the other",
			gov: &admission.Options{Targets: map[admission.Target]admission.Quota{
				{Model: m1, Region: "us-east-1"}: {TokensPerMinute: 100_000},
			}},
			m1Calls: 2, m2Calls: 1,
			want: []string{
				"amazon.nova-lite-v1:0@us-east-1 breaker=closed since=+2s limit=0() settled=8 queued=0/0",
				m1 + "@us-east-1 breaker=closed since=+0s limit=100000(configured) settled=16 queued=0/0",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h *harness
			h = newHarness(t, tt.script, func(o *Options) {
				o.Breaker = breakerOpts
				o.DisableBudget = true
				o.Retry = retry.Policy{MaxAttempts: 1}
				if tt.gov != nil {
					g := *tt.gov
					g.Clock = o.Clock
					gov, err := admission.New(g)
					if err != nil {
						t.Fatal(err)
					}
					o.Governor = gov
				}
			})
			start := h.clk.Now()
			for range tt.m1Calls {
				h.converse(context.Background(), m1)
				h.clk.Advance(time.Second)
			}
			for range tt.m2Calls {
				h.converse(context.Background(), m2)
				h.clk.Advance(time.Second)
			}
			h.clk.Advance(tt.wait)
			var got []string
			for _, s := range h.eng.Snapshot() {
				got = append(got, statusLine(s, start))
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Fatalf("Snapshot:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

// TestErrorLogBounds checks that the failure counts stop growing at their
// bounds rather than keep every target or code they are told.
func TestErrorLogBounds(t *testing.T) {
	now := time.Unix(0, 0)
	var l errorLog
	for i := range maxErrorTargets + 10 {
		l.add(attempt.Target{Model: fmt.Sprint("m", i), Region: "us-east-1"}, catalog.CodeThrottling, now)
	}
	one := attempt.Target{Model: "m0", Region: "us-east-1"}
	for i := range maxErrorCodes + 10 {
		l.add(one, fmt.Sprint("Code", i), now)
	}
	c := l.counts(now)
	if len(c) != maxErrorTargets {
		t.Fatalf("%d targets kept, want %d", len(c), maxErrorTargets)
	}
	if n := len(c[one]); n != maxErrorCodes {
		t.Fatalf("%d codes kept for one target, want %d", n, maxErrorCodes)
	}
	// Equal counts and times: ordered by code.
	if e := c[one][maxErrorCodes-1]; e.Code != catalog.CodeThrottling || e.Recent != 1 || e.Total != 1 || !e.Last.Equal(now) {
		t.Fatalf("last count %+v, want the throttle counted first", e)
	}
}

func TestLimitSource(t *testing.T) {
	for _, tt := range []struct {
		q    *admission.Stats
		want string
	}{
		{nil, ""},
		{&admission.Stats{}, ""},
		{&admission.Stats{Limit: 5, Learning: true, Source: admission.SourceLearned}, LimitLearned},
		{&admission.Stats{Limit: 5, Source: admission.SourceConfigured}, LimitConfigured},
		{&admission.Stats{Limit: 5, Source: admission.SourceDiscovered}, LimitDiscovered},
		{&admission.Stats{Limit: 5}, LimitConfigured},
	} {
		if got := (TargetStatus{Quota: tt.q}).LimitSource(); got != tt.want {
			t.Errorf("LimitSource(%+v) = %q, want %q", tt.q, got, tt.want)
		}
	}
}
