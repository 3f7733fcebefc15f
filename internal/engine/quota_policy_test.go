package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/keel-run/keel/internal/admission"
	"github.com/keel-run/keel/internal/attempt"
	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/emulator/fault"
	"github.com/keel-run/keel/internal/route"
)

// TestQuotaRefusals: a call the governor refuses goes to the route's next
// target, whose quota is its own, or, with none, fails at once with the
// refusal's catalog entry, nothing sent.
func TestQuotaRefusals(t *testing.T) {
	west := route.New("us-east-1", map[string][]attempt.Target{m1: {{Model: m1, Region: "us-west-2"}}})
	tests := []struct {
		name      string
		routes    *route.Table
		maxTokens int
		deadline  time.Duration // 0: none
		crowd     bool          // 10 s later, an interactive call queues first: the target is overloaded
		code      string
		reason    error
		want      []string // "target code" per attempt; code "" for success
	}{
		// 60,000 tokens a minute refill 1,000 a second: 10,000 take 10s.
		{name: "no room before the deadline: fails at once", maxTokens: 10000, deadline: 5 * time.Second,
			code: catalog.CodeNoQuotaBeforeDeadline, reason: admission.ErrWouldExceedDeadline,
			want: []string{m1 + "@us-east-1 " + catalog.CodeNoQuotaBeforeDeadline}},
		{name: "no room before the deadline: falls back", routes: west, maxTokens: 10000, deadline: 5 * time.Second,
			want: []string{m1 + "@us-east-1 " + catalog.CodeNoQuotaBeforeDeadline, m1 + "@us-west-2 "}},
		{name: "overloaded, a long queue: fails at once", maxTokens: 10000, crowd: true,
			code: catalog.CodeTargetOverloaded, reason: admission.ErrOverloaded,
			want: []string{m1 + "@us-east-1 " + catalog.CodeTargetOverloaded}},
		{name: "overloaded, a long queue: falls back", routes: west, maxTokens: 10000, crowd: true,
			want: []string{m1 + "@us-east-1 " + catalog.CodeTargetOverloaded, m1 + "@us-west-2 "}},
		{name: "too large: fails at once", maxTokens: 70000,
			code: catalog.CodeRequestTooLargeForQuota, reason: admission.ErrTooLarge,
			want: []string{m1 + "@us-east-1 " + catalog.CodeRequestTooLargeForQuota}},
		{name: "too large here: falls back to a larger quota", routes: west, maxTokens: 70000,
			want: []string{m1 + "@us-east-1 " + catalog.CodeRequestTooLargeForQuota, m1 + "@us-west-2 "}},
	}
	for _, tt := range tests {
		t.Run(tt.name, bubble(func(t *testing.T) {
			up := &quotaUpstream{}
			h := newQuotaHarness(t, up, admission.Options{
				Default: admission.Quota{TokensPerMinute: 60000},
				Targets: map[admission.Target]admission.Quota{{Model: m1, Region: "us-west-2"}: {TokensPerMinute: 200000}},
			}, tt.routes)
			// Another call holds the whole of us-east-1's quota.
			fill, err := h.gov.Admit(context.Background(), admission.Target{Model: m1, Region: "us-east-1"}, admission.Estimate{MaxTokens: 60000}, Interactive)
			if err != nil || fill.Waited() != 0 {
				t.Fatal("could not fill the quota at once", err)
			}
			defer fill.Cancel()
			if tt.crowd {
				// 90,000 tokens asked in 10 s; the queued call needs 10 s more.
				advance(10 * time.Second)
				qctx, cancel := context.WithCancel(context.Background())
				queued := make(chan error, 1)
				go func() {
					_, err := h.gov.Admit(qctx, admission.Target{Model: m1, Region: "us-east-1"}, admission.Estimate{MaxTokens: 20000}, Interactive)
					queued <- err
				}()
				defer func() { cancel(); <-queued }()
				h.waitQueued(t, m1+"@us-east-1", Interactive, 1)
			}
			ctx := context.Background()
			if tt.deadline > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.deadline)
				defer cancel()
			}
			start := time.Now()
			rep, err := h.call(ctx, m1, "x", tt.maxTokens, Interactive)
			took := time.Since(start)
			var got []string
			for _, a := range rep.Attempts {
				got = append(got, a.Target.String()+" "+a.Code)
			}
			if strings.Join(got, ", ") != strings.Join(tt.want, ", ") {
				t.Fatalf("attempts %q, want %q", got, tt.want)
			}
			if rep.Attempts[0].Skipped != true || took != 0 {
				t.Fatalf("the refused attempt %+v was sent, or the call waited (%v)", rep.Attempts[0], took)
			}
			if tt.code == "" {
				if err != nil || len(up.requests()) != 1 || rep.Fallbacks != 1 {
					t.Fatalf("err %v, %d requests, %d fallbacks; want a success on the next target", err, len(up.requests()), rep.Fallbacks)
				}
				return
			}
			var ke *Error
			if !errors.As(err, &ke) || ke.Entry.Code != tt.code || ke.Entry.Category != catalog.Quota || !errors.Is(err, tt.reason) {
				t.Fatalf("err %v, want %s matching %v", err, tt.code, tt.reason)
			}
			if len(up.requests()) != 0 || !strings.Contains(err.Error(), "admission: "+m1+"@us-east-1") {
				t.Fatalf("%d requests sent; message %q", len(up.requests()), err)
			}
		}))
	}
}

// TestQuotaRetryAfterThrottleIsBounded: two calls sent at once to a known
// quota of 10,000 tokens a minute are both throttled (the second confirms
// the first); the bucket is emptied, and each retry would wait 24 s for its
// 4,000 tokens, longer than the retry policy's throttle cap (20 s) allows,
// so both go to the route's next target at once.
func TestQuotaRetryAfterThrottleIsBounded(t *testing.T) {
	synctest.Test(t, testQuotaRetryAfterThrottleIsBounded)
}

func testQuotaRetryAfterThrottleIsBounded(t *testing.T) {
	west := route.New("us-east-1", map[string][]attempt.Target{m1: {{Model: m1, Region: "us-west-2"}}})
	up := &quotaUpstream{gate: 2, codes: []string{catalog.CodeThrottling, catalog.CodeThrottling}}
	h := newQuotaHarness(t, up, admission.Options{Default: admission.Quota{TokensPerMinute: 10000}}, west)
	start := time.Now()
	var wg sync.WaitGroup
	reps := make([]*Report, 2)
	errs := make([]error, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			reps[i], errs[i] = h.call(context.Background(), m1, fmt.Sprint("call", i), 4000, Interactive)
		}()
	}
	wg.Wait()
	took := time.Since(start)
	bounded := 0
	for i := range 2 {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		var got []string
		for _, a := range reps[i].Attempts {
			got = append(got, a.Target.Region+" "+a.Code)
		}
		// The first throttle's retry may be admitted before the second
		// confirms it: then it goes to us-east-1 once more.
		want := "us-east-1 ThrottlingException, us-east-1 NoQuotaBeforeDeadline, us-west-2 "
		g := strings.Join(got, ", ")
		if g != want && g != "us-east-1 ThrottlingException, us-east-1 " {
			t.Fatalf("call %d: attempts %q, want %q", i, got, want)
		}
		if g == want {
			bounded++
		}
	}
	if bounded == 0 {
		t.Fatal("no retry was bounded by the throttle cap")
	}
	if took != 0 {
		t.Fatalf("took %v; want no wait", took)
	}
	if s := h.stats(t, m1+"@us-east-1"); s.Limit != 10000 || s.Throttles != 2 || s.Resyncs != 1 {
		t.Fatalf("us-east-1 after the throttles: %+v", s)
	}
}

// TestQuotaPriority queues a Batch call and then an Interactive one behind
// an empty bucket that refills one call a second: the Interactive call is
// sent first.
func TestQuotaPriority(t *testing.T) { synctest.Test(t, testQuotaPriority) }

func testQuotaPriority(t *testing.T) {
	up := &quotaUpstream{}
	h := newQuotaHarness(t, up, admission.Options{Default: admission.Quota{TokensPerMinute: 60000}}, nil)
	tg := admission.Target{Model: m1, Region: "us-east-1"}
	fill, err := h.gov.Admit(context.Background(), tg, admission.Estimate{MaxTokens: 60000}, Interactive)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for _, c := range []struct {
		name string
		p    Priority
	}{{"batch", Batch}, {"interactive", Interactive}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := h.call(context.Background(), m1, c.name, 900, c.p); err != nil {
				t.Error(err)
			}
		}()
		h.waitQueued(t, tg.String(), c.p, 1)
	}
	defer fill.Cancel()
	// One second refills room for one call: the Interactive one goes; the
	// Batch one fits once the Interactive one has settled and given back
	// most of what it held.
	advance(time.Second)
	wg.Wait()
	if r := up.requests(); len(r) != 2 || !strings.HasSuffix(r[0], " interactive") || !strings.HasSuffix(r[1], " batch") {
		t.Fatalf("requests %q, want interactive first", r)
	}
}

// TestQuotaCountTokensBypasses: Bedrock does not meter CountTokens, so the
// governor does not see it.
func TestQuotaCountTokensBypasses(t *testing.T) { synctest.Test(t, testQuotaCountTokensBypasses) }

func testQuotaCountTokensBypasses(t *testing.T) {
	h := newQuotaHarness(t, &quotaUpstream{}, admission.Options{Default: admission.Quota{TokensPerMinute: 1000}}, nil)
	resp, rep, err := h.eng.Do(context.Background(), &Call{Op: attempt.CountTokens, Model: m1, Body: []byte(`{"input":{"converse":{"messages":[]}}}`)})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if _, ok := h.gov.Stats(admission.Target{Model: m1, Region: "us-east-1"}); ok || rep.Attempts[0].QuotaTokens != 0 {
		t.Fatalf("the governor saw a CountTokens call: %+v", rep.Attempts[0])
	}
}

// TestQuotaStreamsSettle: a stream's attempts settle with the usage their
// streams reported: a whole stream with its metadata, a broken one with
// the output it delivered (then its continuation with its own), one the
// reader closes early with what was delivered.
func TestQuotaStreamsSettle(t *testing.T) {
	tests := []struct {
		name    string
		plan    func(n int) fault.Plan
		early   bool // the reader closes after the first read
		settled int64
	}{
		{name: "whole", settled: 1},
		{name: "broken and resumed", settled: 2, plan: func(n int) fault.Plan {
			if n == 0 {
				return fault.Plan{MidStream: &fault.MidStream{Kind: fault.Reset, After: 8}}
			}
			return fault.Plan{}
		}},
		{name: "throttled before its first content", settled: 1, plan: func(n int) fault.Plan {
			if n == 0 {
				return fault.Plan{MidStream: &fault.MidStream{Kind: fault.Exception, After: 0, Code: catalog.CodeThrottling}}
			}
			return fault.Plan{}
		}},
		{name: "closed early", settled: 1, early: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			em := startEmu(t, tt.plan)
			c := converseCase()
			var gov *admission.Governor
			e, _ := newStreamEngine(t, em.rn.URL, func(o *Options) {
				g, err := admission.New(admission.Options{Default: admission.Quota{TokensPerMinute: 1_000_000}, Clock: o.Clock})
				if err != nil {
					t.Fatal(err)
				}
				gov, o.Governor = g, g
			})
			resp, rep, err := streamCall(context.Background(), e, c.op, c.model, c.body)
			if err != nil {
				t.Fatal(err)
			}
			if tt.early {
				resp.Body.Read(make([]byte, 64))
			} else {
				readAll(t, resp.Body, false)
			}
			resp.Body.Close()
			s, _ := gov.Stats(admission.Target{Model: c.model, Region: "us-east-1"})
			var want int64
			for _, a := range rep.Attempts {
				if a.Code != catalog.CodeThrottling {
					want += int64(a.Usage.InputTokens + 5*a.Usage.OutputTokens) // Sonnet 4.5: burndown 5
				}
			}
			if s.InFlight != 0 || s.Settled != tt.settled || s.Throttles != int64(rep.Sent())-tt.settled {
				t.Fatalf("settled %d, throttled %d, in flight %d; want %d settled, none in flight (report %+v)", s.Settled, s.Throttles, s.InFlight, tt.settled, rep)
			}
			if !tt.early && tt.name != "broken and resumed" && s.SettledPerMinute != want {
				// A broken ConverseStream attempt reports no input: the governor
				// charges its own estimate for it, which the report does not show.
				t.Fatalf("settled %d tokens, want %d from the report's usage", s.SettledPerMinute, want)
			}
		})
	}
}
