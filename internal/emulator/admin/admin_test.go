package admin

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keel-run/keel/internal/clock"
	"github.com/keel-run/keel/internal/emulator/fault"
	"github.com/keel-run/keel/internal/emulator/quota"
	"github.com/keel-run/keel/internal/emulator/scenario"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

const initial = `description: initial
quotas:
  - model: small
    tokens_per_minute: 100
rules:
  - name: slow
    latency:
      fixed: 1s
`

type env struct {
	srv      *httptest.Server
	injector *scenario.Injector
	meter    *quota.Meter
	outcomes *Outcomes
}

// newEnv mounts the admin API the way the emulator server does, beside a
// route of its own.
func newEnv(t *testing.T, withInjector bool) *env {
	t.Helper()
	s, err := scenario.Parse([]byte(initial))
	if err != nil {
		t.Fatal(err)
	}
	clk := clock.NewFake(t0)
	e := &env{meter: quota.NewMeter(clk, s.Quotas), outcomes: &Outcomes{}}
	if withInjector {
		e.injector = scenario.NewInjector(s, 1, clk)
	}
	mux := http.NewServeMux()
	mux.Handle(Prefix, New(Options{Injector: e.injector, Meter: e.meter, Outcomes: e.outcomes}))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "bedrock") })
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)
	return e
}

func (e *env) do(t *testing.T, method, path, body string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, b := send(t, http.DefaultClient, req)
	return resp.StatusCode, resp.Header, string(b)
}

func (e *env) counters(t *testing.T) Counters {
	t.Helper()
	code, h, body := e.do(t, http.MethodGet, "/_emulator/counters", "")
	if code != http.StatusOK || h.Get("Content-Type") != "application/json" {
		t.Fatalf("counters: %d %s %s", code, h.Get("Content-Type"), body)
	}
	var c Counters
	if err := json.Unmarshal([]byte(body), &c); err != nil {
		t.Fatalf("counters body %q: %v", body, err)
	}
	return c
}

func TestCounters(t *testing.T) {
	e := newEnv(t, true)
	e.meter.Admit(quota.AdmitRequest{Model: "small", Region: "us-east-1", Operation: "converse", InputTokens: 10, MaxTokens: 50})
	e.meter.Settle(quota.SettleRequest{Model: "small", Region: "us-east-1", Operation: "converse", InputTokens: 10, OutputTokens: 5, MaxTokens: 50})
	e.meter.Admit(quota.AdmitRequest{Model: "small", Region: "us-east-1", Operation: "converse", InputTokens: 10, MaxTokens: 90}) // 100 > 85: throttled
	e.outcomes.Add("small", "us-east-1", "")
	e.outcomes.Add("small", "us-east-1", "ThrottlingException")
	e.outcomes.Add("other", "eu-west-1", "ConnectionReset")

	c := e.counters(t)
	if c.Requests != 2 {
		t.Errorf("requests = %d, want 2", c.Requests)
	}
	if want := map[string]int64{"OK": 1, "ThrottlingException": 1, "ConnectionReset": 1}; fmt.Sprint(c.Outcomes) != fmt.Sprint(want) {
		t.Errorf("outcomes = %v, want %v", c.Outcomes, want)
	}
	if len(c.Targets) != 2 {
		t.Fatalf("targets = %+v, want 2", c.Targets)
	}
	other, small := c.Targets[0], c.Targets[1]
	if other.Model != "other" || other.Region != "eu-west-1" || other.Requests != 0 || other.Outcomes["ConnectionReset"] != 1 {
		t.Errorf("other = %+v", other)
	}
	if small.Model != "small" || small.Requests != 2 || small.Admitted != 1 || small.Throttled != 1 ||
		small.TokensReserved != 60 || small.TokensSettled != 15 || small.Limits.TokensPerMinute != 100 ||
		small.TokensAvailable == nil || *small.TokensAvailable != 85 || small.TokensCapacity == nil || *small.TokensCapacity != 100 ||
		small.Shape == nil || *small.Shape != quota.DefaultShape() ||
		small.Outcomes["OK"] != 1 || small.Outcomes["ThrottlingException"] != 1 {
		t.Errorf("small = %+v", small)
	}
	// The JSON keys are part of the API.
	_, _, raw := e.do(t, http.MethodGet, "/_emulator/counters", "")
	for _, k := range []string{`"requests"`, `"outcomes"`, `"targets"`, `"model"`, `"region"`, `"admitted"`, `"throttled"`,
		`"tokens_reserved"`, `"tokens_settled"`, `"tokens_available"`, `"tokens_per_minute"`, `"tokens_capacity"`,
		`"shape"`, `"burst"`, `"start_level"`, `"refill_every"`} {
		if !strings.Contains(raw, k) {
			t.Errorf("counters JSON has no key %s: %s", k, raw)
		}
	}
}

func TestScenarioEndpoints(t *testing.T) {
	const replacement = `quotas:
  - model: small
    tokens_per_minute: 5
rules:
  - name: down
    outages:
      - answer: 503
`
	tests := []struct {
		name     string
		body     string
		wantCode int
		wantBody []string
		applied  bool
	}{
		{name: "valid", body: replacement, wantCode: http.StatusOK, wantBody: []string{`"rules": 1`, `"quotas": 1`}, applied: true},
		{name: "unknown key", body: "rules:\n  - hang: 1\n    sometimes: yes\n", wantCode: http.StatusBadRequest,
			wantBody: []string{`"message"`, `scenario: line 3: unknown key \"sometimes\" in rules[0]`}},
		{name: "bad probability", body: "rules:\n  - hang: 3\n", wantCode: http.StatusBadRequest,
			wantBody: []string{"line 2: rules[0].hang: probability 3 is not between 0 and 1"}},
		{name: "not yaml", body: "rules: [\n", wantCode: http.StatusBadRequest, wantBody: []string{"scenario: "}},
		{name: "too large", body: "description: " + strings.Repeat("x", MaxScenarioBytes) + "\n", wantCode: http.StatusRequestEntityTooLarge,
			wantBody: []string{"larger than"}},
		{name: "empty clears everything", body: "", wantCode: http.StatusOK, wantBody: []string{`"rules": 0`}, applied: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, true)
			code, h, body := e.do(t, http.MethodGet, "/_emulator/scenario", "")
			if code != http.StatusOK || body != initial || h.Get("Content-Type") != "application/yaml" {
				t.Fatalf("GET scenario = %d %q %q", code, h.Get("Content-Type"), body)
			}
			code, _, body = e.do(t, http.MethodPut, "/_emulator/scenario", tt.body)
			if code != tt.wantCode {
				t.Fatalf("PUT = %d %s, want %d", code, body, tt.wantCode)
			}
			for _, w := range tt.wantBody {
				if !strings.Contains(body, w) {
					t.Errorf("PUT body %q does not contain %q", body, w)
				}
			}
			_, _, now := e.do(t, http.MethodGet, "/_emulator/scenario", "")
			plan := e.injector.Plan(fault.Request{Model: "small", Region: "us-east-1", Operation: "converse"})
			if !tt.applied {
				if now != initial || plan.Latency != time.Second || len(e.meter.Table()) != 1 || e.meter.Table()[0].Limits.TokensPerMinute != 100 {
					t.Errorf("a rejected PUT changed the state: scenario %q plan %+v quotas %+v", now, plan, e.meter.Table())
				}
				return
			}
			if now != tt.body {
				t.Errorf("GET after PUT = %q, want %q", now, tt.body)
			}
			if tt.body == replacement {
				if plan.Error != "ServiceUnavailableException" || plan.Latency != 0 {
					t.Errorf("plan after PUT = %+v, want the outage", plan)
				}
				if rej := e.meter.Admit(quota.AdmitRequest{Model: "small", Region: "us-east-1", MaxTokens: 6}); rej == nil {
					t.Error("the new 5 tokens per minute limit is not in force")
				}
			} else if !plan.Zero() || len(e.meter.Table()) != 0 {
				t.Errorf("after clearing: plan %+v quotas %+v", plan, e.meter.Table())
			}
		})
	}
}

// TestShapeOverAdmin puts a scenario whose bucket holds 10 s of quota and
// starts half full, and reads the shape and level back from the counters,
// before and after a reset.
func TestShapeOverAdmin(t *testing.T) {
	e := newEnv(t, true)
	const shaped = "quotas:\n  - model: small\n    tokens_per_minute: 600\n    requests_per_minute: 12\n" +
		"    burst: 10s\n    start_level: 0.5\n    refill_every: 1m\n"
	if code, _, body := e.do(t, http.MethodPut, "/_emulator/scenario", shaped); code != http.StatusOK {
		t.Fatalf("PUT = %d %s", code, body)
	}
	admit := func() *quota.Rejection {
		return e.meter.Admit(quota.AdmitRequest{Model: "small", Region: "us-east-1", MaxTokens: 30})
	}
	check := func(when string, tokens int64, requests float64) {
		t.Helper()
		c := e.counters(t)
		if len(c.Targets) != 1 {
			t.Fatalf("%s: targets = %+v, want 1", when, c.Targets)
		}
		u := c.Targets[0]
		want := quota.Shape{Burst: 10 * time.Second, StartLevel: 0.5, RefillEvery: time.Minute}
		if u.Shape == nil || *u.Shape != want || *u.TokensCapacity != 100 || *u.TokensAvailable != tokens ||
			*u.RequestsCapacity != 2 || *u.RequestsAvailable != requests {
			t.Errorf("%s: shape %v, tokens %d of %d, requests %v of %v; want %v, %d of 100, %v of 2",
				when, u.Shape, *u.TokensAvailable, *u.TokensCapacity, *u.RequestsAvailable, *u.RequestsCapacity, want, tokens, requests)
		}
	}
	if rej := admit(); rej != nil { // 50 tokens and 1 request at the start
		t.Fatalf("first request: %s", rej.Message)
	}
	check("after a request", 20, 0)
	if code, _, body := e.do(t, http.MethodPost, "/_emulator/reset", ""); code != http.StatusNoContent {
		t.Fatalf("reset = %d %s", code, body)
	}
	if rej := admit(); rej != nil {
		t.Fatalf("after reset: %s", rej.Message)
	}
	check("after a reset and a request", 20, 0)
}

func TestReset(t *testing.T) {
	e := newEnv(t, true)
	if rej := e.meter.Admit(quota.AdmitRequest{Model: "small", Region: "us-east-1", MaxTokens: 100}); rej != nil {
		t.Fatal(rej.Message)
	}
	if rej := e.meter.Admit(quota.AdmitRequest{Model: "small", Region: "us-east-1", MaxTokens: 100}); rej == nil {
		t.Fatal("second request admitted; the window should be empty")
	}
	e.outcomes.Add("small", "us-east-1", "ThrottlingException")
	code, _, body := e.do(t, http.MethodPost, "/_emulator/reset", "")
	if code != http.StatusNoContent {
		t.Fatalf("reset = %d %s", code, body)
	}
	c := e.counters(t)
	if c.Requests != 0 || len(c.Outcomes) != 0 || len(c.Targets) != 0 {
		t.Errorf("counters after reset = %+v", c)
	}
	if rej := e.meter.Admit(quota.AdmitRequest{Model: "small", Region: "us-east-1", MaxTokens: 100}); rej != nil {
		t.Errorf("after reset the window must be full: %s", rej.Message)
	}
}

func TestRouting(t *testing.T) {
	tests := []struct {
		name      string
		injector  bool
		method    string
		path      string
		wantCode  int
		wantAllow string
		wantBody  string
	}{
		{name: "wrong method on counters", injector: true, method: http.MethodPost, path: "/_emulator/counters",
			wantCode: http.StatusMethodNotAllowed, wantAllow: "GET", wantBody: "POST /_emulator/counters is not allowed; use GET"},
		{name: "wrong method on scenario", injector: true, method: http.MethodDelete, path: "/_emulator/scenario",
			wantCode: http.StatusMethodNotAllowed, wantAllow: "GET, PUT"},
		{name: "wrong method on reset", injector: true, method: http.MethodGet, path: "/_emulator/reset",
			wantCode: http.StatusMethodNotAllowed, wantAllow: "POST"},
		{name: "unknown endpoint", injector: true, method: http.MethodGet, path: "/_emulator/nope",
			wantCode: http.StatusNotFound, wantBody: "no admin endpoint /_emulator/nope"},
		{name: "no injector", injector: false, method: http.MethodGet, path: "/_emulator/scenario",
			wantCode: http.StatusNotFound, wantBody: "no scenario engine"},
		{name: "no injector, counters still work", injector: false, method: http.MethodGet, path: "/_emulator/counters",
			wantCode: http.StatusOK},
		{name: "other routes are the server's", injector: true, method: http.MethodGet, path: "/model/x/converse",
			wantCode: http.StatusOK, wantBody: "bedrock"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, tt.injector)
			code, h, body := e.do(t, tt.method, tt.path, "")
			if code != tt.wantCode {
				t.Errorf("status %d (%s), want %d", code, body, tt.wantCode)
			}
			if h.Get("Allow") != tt.wantAllow {
				t.Errorf("Allow %q, want %q", h.Get("Allow"), tt.wantAllow)
			}
			if !strings.Contains(body, tt.wantBody) {
				t.Errorf("body %q does not contain %q", body, tt.wantBody)
			}
		})
	}
}

func TestOutcomes(t *testing.T) {
	var o Outcomes
	if got := o.Snapshot(); len(got) != 0 {
		t.Fatalf("zero Outcomes snapshot = %+v", got)
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 1000 {
				code := []string{"", "ThrottlingException"}[i%2]
				o.Add(fmt.Sprintf("m%d", w%2), "us-east-1", code)
			}
		}()
	}
	wg.Wait()
	want := []Outcome{
		{Model: "m0", Region: "us-east-1", Code: "OK", Count: 1000},
		{Model: "m0", Region: "us-east-1", Code: "ThrottlingException", Count: 1000},
		{Model: "m1", Region: "us-east-1", Code: "OK", Count: 1000},
		{Model: "m1", Region: "us-east-1", Code: "ThrottlingException", Count: 1000},
	}
	if got := o.Snapshot(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Snapshot() = %+v, want %+v", got, want)
	}
	if n := testing.AllocsPerRun(100, func() { o.Add("m0", "us-east-1", "OK") }); n != 0 {
		t.Errorf("Add allocates %v times for a known key, want 0", n)
	}
	o.Reset()
	if got := o.Snapshot(); len(got) != 0 {
		t.Errorf("after Reset: %+v", got)
	}
	o.Add("m0", "us-east-1", "OK")
	if got := o.Snapshot(); len(got) != 1 || got[0].Count != 1 {
		t.Errorf("after Reset and Add: %+v", got)
	}
}

func BenchmarkOutcomesAdd(b *testing.B) {
	var o Outcomes
	codes := []string{"OK", "ThrottlingException", "ServiceUnavailableException"}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			o.Add("anthropic.claude-3-5-haiku-20241022-v1:0", "us-east-1", codes[i%len(codes)])
			i++
		}
	})
}

// TestItem11aOutcomesCapped covers issue 15, item 11 (counters): beyond
// MaxOutcomeKeys counters, new (model, region) pairs are counted under
// Other with their code, so the totals stay exact and memory bounded.
func TestItem11aOutcomesCapped(t *testing.T) {
	var o Outcomes
	const extra = 300
	for i := range MaxOutcomeKeys + extra {
		o.Add(fmt.Sprintf("m%d", i), "us-east-1", "OK")
	}
	o.Add("m0", "us-east-1", "OK")                    // a counter kept before the cap still counts alone
	o.Add("late", "us-east-1", "ThrottlingException") // a new code beyond the cap gets its own Other counter
	got := o.Snapshot()
	if len(got) != MaxOutcomeKeys+2 {
		t.Fatalf("%d counters, want %d (the cap, and one Other per code)", len(got), MaxOutcomeKeys+2)
	}
	var total int64
	byKey := map[string]int64{}
	for _, c := range got {
		total += c.Count
		byKey[c.Model+" "+c.Region+" "+c.Code] = c.Count
	}
	if want := int64(MaxOutcomeKeys + extra + 2); total != want {
		t.Errorf("counters sum to %d, want %d", total, want)
	}
	for k, want := range map[string]int64{"m0 us-east-1 OK": 2, Other + " " + Other + " OK": extra,
		Other + " " + Other + " ThrottlingException": 1} {
		if byKey[k] != want {
			t.Errorf("counter %q = %d, want %d", k, byKey[k], want)
		}
	}
}
