package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/keel-run/keel/internal/attempt"
	"github.com/keel-run/keel/internal/budget"
	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/clock"
	"github.com/keel-run/keel/internal/retry"
	"github.com/keel-run/keel/internal/route"
)

// reply is one scripted upstream answer: an error code (HTTP status from the
// catalog), "reset" to drop the connection, or "" for success.
type reply struct {
	code       string
	retryAfter string
}

// upstream is a scripted Bedrock Runtime: per "model@region", a list of
// replies used in order (the last one repeats).
type upstream struct {
	mu     sync.Mutex
	script map[string][]reply
	seen   []seen
}

type seen struct {
	target string
	auth   string
	date   string
}

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	model, op, ok := attempt.ParsePath(r.URL.EscapedPath())
	if !ok {
		http.Error(w, "bad path", 400)
		return
	}
	io.Copy(io.Discard, r.Body)
	target := model + "@" + attempt.RegionFromAuthorization(r.Header.Get("Authorization"))
	u.mu.Lock()
	u.seen = append(u.seen, seen{target: target, auth: r.Header.Get("Authorization"), date: r.Header.Get("X-Amz-Date")})
	rs := u.script[target]
	var rp reply
	if len(rs) > 0 {
		rp = rs[0]
		if len(rs) > 1 {
			u.script[target] = rs[1:]
		}
	}
	u.mu.Unlock()
	w.Header().Set("X-Amzn-Requestid", fmt.Sprintf("req-%d", len(u.seen)))
	switch rp.code {
	case "":
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"output":{"message":{"role":"assistant","content":[{"text":"hello from %s via %s"}]}},"stopReason":"end_turn","usage":{"inputTokens":3,"outputTokens":5,"totalTokens":8},"metrics":{"latencyMs":1}}`, target, op)
	case "reset":
		hj := w.(http.Hijacker)
		c, _, _ := hj.Hijack()
		c.Close()
	case "filtered":
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"output":{"message":{"role":"assistant","content":[]}},"stopReason":"content_filtered","usage":{"inputTokens":3,"outputTokens":0,"totalTokens":3},"metrics":{"latencyMs":1}}`)
	default:
		e := catalog.Must(rp.code)
		w.Header().Set("X-Amzn-ErrorType", e.WireCode())
		w.Header().Set("Content-Type", "application/json")
		if rp.retryAfter != "" {
			w.Header().Set("Retry-After", rp.retryAfter)
		}
		w.WriteHeader(e.Status)
		fmt.Fprintf(w, `{"message":%q}`, e.DefaultMessage)
	}
}

func (u *upstream) targets() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := make([]string, len(u.seen))
	for i, s := range u.seen {
		out[i] = s.target
	}
	return out
}

type harness struct {
	eng *Engine
	up  *upstream
	clk *clock.Fake
}

func newHarness(t *testing.T, script map[string][]reply, mod func(*Options)) *harness {
	t.Helper()
	up := &upstream{script: script}
	srv := httptest.NewServer(up)
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	// The clock starts at time.Now(): the wall clock's, or the bubble's
	// under testing/synctest, so a context deadline set from it means the
	// same on any date.
	clk := clock.NewAuto(time.Now())
	opts := Options{
		Endpoints:   attempt.FixedEndpoint{URL: u},
		Credentials: credentials.NewStaticCredentialsProvider("AKID", "SECRET", ""),
		HTTPClient:  srv.Client(),
		Region:      "us-east-1",
		Clock:       clk,
		Rand:        rand.New(rand.NewPCG(1, 2)),
	}
	if mod != nil {
		mod(&opts)
	}
	eng, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return &harness{eng: eng, up: up, clk: clk}
}

func (h *harness) converse(ctx context.Context, model string) (*http.Response, *Report, error) {
	resp, rep, err := h.eng.Do(ctx, &Call{Op: attempt.Converse, Model: model, Body: []byte(`{"messages":[{"role":"user","content":[{"text":"hi"}]}]}`)})
	if resp != nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	return resp, rep, err
}

const m1 = "anthropic.claude-3-haiku-20240307-v1:0"

func TestRetriesPerErrorClass(t *testing.T) {
	tests := []struct {
		name      string
		code      string
		attempts  int // attempts sent before the outcome
		succeeds  bool
		maxDelays []time.Duration // the jitter ceiling of each wait
	}{
		{"service unavailable retried with backoff", catalog.CodeServiceUnavailable, 3, true, []time.Duration{250 * time.Millisecond, 500 * time.Millisecond}},
		{"internal server retried", catalog.CodeInternalServer, 3, true, []time.Duration{250 * time.Millisecond, 500 * time.Millisecond}},
		{"throttling slows down more", catalog.CodeThrottling, 3, true, []time.Duration{time.Second, 2 * time.Second}},
		{"model not ready retried", catalog.CodeModelNotReady, 3, true, []time.Duration{250 * time.Millisecond, 500 * time.Millisecond}},
		{"connection reset retried", "reset", 3, true, []time.Duration{250 * time.Millisecond, 500 * time.Millisecond}},
		{"validation never retried", catalog.CodeValidation, 1, false, nil},
		{"access denied not retried here", catalog.CodeAccessDenied, 1, false, nil},
		{"not found not retried here", catalog.CodeResourceNotFound, 1, false, nil},
		{"marketplace wait not retried inline", catalog.CodeMPAgreementBeingCreated, 1, false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, map[string][]reply{m1 + "@us-east-1": {{code: tt.code}, {code: tt.code}, {}}}, nil)
			_, rep, err := h.converse(context.Background(), m1)
			if tt.succeeds != (err == nil) {
				t.Fatalf("err = %v, want success %v", err, tt.succeeds)
			}
			if got := len(h.up.targets()); got != tt.attempts || rep.Sent() != tt.attempts {
				t.Fatalf("upstream saw %d attempts, report %d; want %d", got, rep.Sent(), tt.attempts)
			}
			if len(h.clk.Waits()) != len(tt.maxDelays) {
				t.Fatalf("waits %v, want %d of them", h.clk.Waits(), len(tt.maxDelays))
			}
			for i, w := range h.clk.Waits() {
				if w < 0 || w > tt.maxDelays[i] {
					t.Errorf("wait %d = %v, want within [0, %v]", i, w, tt.maxDelays[i])
				}
				if rep.Attempts[i+1].Delay != w {
					t.Errorf("report delay %v, clock waited %v", rep.Attempts[i+1].Delay, w)
				}
			}
			if !tt.succeeds {
				var ke *Error
				if !errors.As(err, &ke) || ke.Entry.Code != catalog.Must(tt.code).Code || ke.Status != catalog.Must(tt.code).Status {
					t.Fatalf("error %#v does not carry the entry for %s", err, tt.code)
				}
			}
		})
	}
}

func TestRetryAfterIsHonoured(t *testing.T) {
	h := newHarness(t, map[string][]reply{m1 + "@us-east-1": {{code: catalog.CodeServiceUnavailable, retryAfter: "3"}, {}}}, nil)
	if _, _, err := h.converse(context.Background(), m1); err != nil {
		t.Fatal(err)
	}
	if len(h.clk.Waits()) != 1 || h.clk.Waits()[0] != 3*time.Second {
		t.Fatalf("waits %v, want [3s]", h.clk.Waits())
	}
	s := h.up.seen
	if s[0].date == s[1].date || s[0].auth == s[1].auth {
		t.Fatalf("the retry reused the first signature: %q", s[1].auth)
	}
}

func TestDeadlineFailsAtOnce(t *testing.T) {
	// A real context deadline meets the fake clock: in a synctest bubble
	// both read the bubble's time, whatever today's date.
	synctest.Test(t, func(t *testing.T) {
		testDeadlineFailsAtOnce(t)
	})
}

func testDeadlineFailsAtOnce(t *testing.T) {
	h := newHarness(t, map[string][]reply{m1 + "@us-east-1": {{code: catalog.CodeThrottling, retryAfter: "10"}}}, nil)
	ctx, cancel := context.WithDeadline(context.Background(), h.clk.Now().Add(5*time.Second))
	defer cancel()
	_, rep, err := h.converse(ctx, m1)
	var ke *Error
	if !errors.As(err, &ke) || ke.Entry.Code != catalog.CodeThrottling || !errors.Is(err, retry.ErrDeadline) {
		t.Fatalf("err = %v; want the throttling error, marked as a deadline give-up", err)
	}
	if rep.Sent() != 1 || len(h.clk.Waits()) != 0 {
		t.Fatalf("sent %d, waited %v: should fail at once without waiting", rep.Sent(), h.clk.Waits())
	}
	if !strings.Contains(err.Error(), "deadline") {
		t.Fatalf("message %q does not say why", err)
	}
}

func TestFallbackOrder(t *testing.T) {
	alt := "us.anthropic.claude-3-haiku-20240307-v1:0"
	nova := "amazon.nova-lite-v1:0"
	routes := route.New("us-east-1", map[string][]attempt.Target{m1: {
		{Model: m1, Region: "us-west-2"}, {Model: alt, Region: "us-east-2"}, {Model: nova},
	}})
	tests := []struct {
		name   string
		op     attempt.Op
		script map[string][]reply
		want   []string
		ok     bool
	}{
		{"not found moves on at once", attempt.Converse, map[string][]reply{
			m1 + "@us-east-1": {{code: catalog.CodeResourceNotFound}}},
			[]string{m1 + "@us-east-1", m1 + "@us-west-2"}, true},
		{"access denied moves on", attempt.Converse, map[string][]reply{
			m1 + "@us-east-1": {{code: catalog.CodeAccessDenied}}, m1 + "@us-west-2": {{code: catalog.CodeAccessDenied}}},
			[]string{m1 + "@us-east-1", m1 + "@us-west-2", alt + "@us-east-2"}, true},
		{"retries used up, then next region", attempt.Converse, map[string][]reply{
			m1 + "@us-east-1": {{code: catalog.CodeServiceUnavailable}}},
			[]string{m1 + "@us-east-1", m1 + "@us-east-1", m1 + "@us-east-1", m1 + "@us-west-2"}, true},
		{"model error moves on to another target", attempt.Converse, map[string][]reply{
			m1 + "@us-east-1": {{code: catalog.CodeModelError}}},
			[]string{m1 + "@us-east-1", m1 + "@us-west-2"}, true},
		{"validation does not fall back", attempt.Converse, map[string][]reply{
			m1 + "@us-east-1": {{code: catalog.CodeValidation}}},
			[]string{m1 + "@us-east-1"}, false},
		{"converse reaches another model", attempt.Converse, map[string][]reply{
			m1 + "@us-east-1": {{code: catalog.CodeResourceNotFound}}, m1 + "@us-west-2": {{code: catalog.CodeResourceNotFound}},
			alt + "@us-east-2": {{code: catalog.CodeResourceNotFound}}},
			[]string{m1 + "@us-east-1", m1 + "@us-west-2", alt + "@us-east-2", nova + "@us-east-1"}, true},
		{"invoke keeps to the same body format", attempt.Invoke, map[string][]reply{
			m1 + "@us-east-1": {{code: catalog.CodeResourceNotFound}}, m1 + "@us-west-2": {{code: catalog.CodeResourceNotFound}},
			alt + "@us-east-2": {{code: catalog.CodeResourceNotFound}}},
			[]string{m1 + "@us-east-1", m1 + "@us-west-2", alt + "@us-east-2"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, tt.script, func(o *Options) { o.Routes = routes })
			resp, rep, err := h.eng.Do(context.Background(), &Call{Op: tt.op, Model: m1, Body: []byte(`{}`)})
			if resp != nil {
				resp.Body.Close()
			}
			if got := h.up.targets(); strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Fatalf("targets tried:\n %v\nwant\n %v", got, tt.want)
			}
			if (err == nil) != tt.ok {
				t.Fatalf("err = %v, want ok=%v", err, tt.ok)
			}
			if tt.ok && rep.Target.String() != tt.want[len(tt.want)-1] {
				t.Fatalf("answered by %s", rep.Target)
			}
			if rep.Fallbacks == 0 && len(tt.want) > 1 && tt.want[0] != tt.want[len(tt.want)-1] {
				t.Fatalf("report counts no fallback")
			}
		})
	}
}

func TestBudgetBoundsRetriesUnderOutage(t *testing.T) {
	h := newHarness(t, map[string][]reply{m1 + "@us-east-1": {{code: catalog.CodeServiceUnavailable}}}, func(o *Options) {
		o.DisableBreaker = true // measure the budget alone
	})
	const calls = 500
	start := h.clk.Now()
	for i := 0; i < calls; i++ {
		h.converse(context.Background(), m1)
		h.clk.Advance(20 * time.Millisecond) // 500 calls over 10 s
	}
	sent := len(h.up.targets())
	// The budget's bound: ratio 0.1 of first attempts + 1 retry/s over the
	// run plus one 10 s window (the run is ~10 s of calls plus the backoffs).
	elapsed := h.clk.Now().Sub(start)
	limit := calls + calls/10 + int((elapsed+10*time.Second).Seconds()+0.999)
	if float64(limit) > 1.2*calls {
		t.Fatalf("test set-up: bound %d is loose; elapsed %v", limit, elapsed)
	}
	if sent > limit {
		t.Fatalf("total outage: %d attempts for %d calls (%.2fx), want at most %d", sent, calls, float64(sent)/calls, limit)
	}
	if sent <= calls {
		t.Fatalf("no retries at all (%d attempts): the budget should allow some", sent)
	}
	t.Logf("total outage: %d calls -> %d attempts (%.3fx)", calls, sent, float64(sent)/calls)
	_, _, err := h.converse(context.Background(), m1)
	var ke *Error
	if !errors.As(err, &ke) || !errors.Is(err, budget.ErrExhausted) || !strings.Contains(err.Error(), "retry budget is spent") {
		t.Fatalf("a call refused by the spent budget says %v", err)
	}
}

func TestContentFilterDegradation(t *testing.T) {
	for _, tt := range []struct {
		name    string
		message string
		want    string
	}{
		{"off by default", "", `"content_filtered"`},
		{"configured message", "Sorry, I can't help with that.", "Sorry, I can't help with that."},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, map[string][]reply{m1 + "@us-east-1": {{code: "filtered"}}}, func(o *Options) { o.ContentFilterMessage = tt.message })
			resp, rep, err := h.eng.Do(context.Background(), &Call{Op: attempt.Converse, Model: m1, Body: []byte(`{}`)})
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !strings.Contains(string(b), tt.want) {
				t.Fatalf("body %s does not contain %q", b, tt.want)
			}
			if rep.Degraded != (tt.message != "") {
				t.Fatalf("Degraded = %v", rep.Degraded)
			}
			var out map[string]any
			if err := json.Unmarshal(b, &out); err != nil {
				t.Fatalf("body is not JSON: %v", err)
			}
		})
	}
}

func TestBadCalls(t *testing.T) {
	h := newHarness(t, nil, nil)
	for _, tt := range []struct {
		name string
		call Call
		want string
	}{
		{"unknown op", Call{Op: "apply", Model: m1}, "unknown operation"},
		{"no model", Call{Op: attempt.Converse}, "no model"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := h.eng.Do(context.Background(), &tt.call)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want %q", err, tt.want)
			}
		})
	}
	if _, err := New(Options{Retry: retry.Policy{MaxAttempts: -1}}); err == nil {
		t.Fatal("New accepted a negative MaxAttempts")
	}
}
