package scenario

import (
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/keel-run/keel/internal/clock"
	"github.com/keel-run/keel/internal/emulator/fault"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func mustParse(t testing.TB, src string) *Scenario {
	t.Helper()
	s, err := Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func req(model, region, op string) fault.Request {
	return fault.Request{Model: model, Region: region, Operation: op}
}

const claude = "anthropic.claude-3-5-haiku-20241022-v1:0"

const mixed = `rules:
  - name: errors
    errors:
      - code: ThrottlingException
        probability: 0.2
      - code: InternalServerException
        probability: 0.1
  - name: slow
    latency:
      fixed: 10ms
      jitter: 90ms
  - name: streams
    stream:
      - kind: exception
        code: ModelStreamErrorException
        after: 2
        probability: 0.3
`

func TestInjectorSameSeedSamePlans(t *testing.T) {
	s := mustParse(t, mixed)
	a := NewInjector(s, 7, clock.NewFake(t0))
	b := NewInjector(s, 7, clock.NewFake(t0))
	c := NewInjector(s, 8, clock.NewFake(t0))
	differ := 0
	for i := range 500 {
		r := req(claude, "us-east-1", Operations[i%len(Operations)])
		pa, pb, pc := a.Plan(r), b.Plan(r), c.Plan(r)
		if !samePlan(pa, pb) {
			t.Fatalf("request %d: same seed, different plans: %s vs %s", i, show(pa), show(pb))
		}
		if !samePlan(pa, pc) {
			differ++
		}
	}
	if differ == 0 {
		t.Error("seeds 7 and 8 gave identical plans for 500 requests; the seed is not used")
	}
}

func TestInjectorStreamsArePerModelAndRegion(t *testing.T) {
	// Requests to other pairs in between must not change the plans of one pair.
	s := mustParse(t, mixed)
	alone := NewInjector(s, 42, clock.NewFake(t0))
	busy := NewInjector(s, 42, clock.NewFake(t0))
	for i := range 300 {
		r := req(claude, "us-west-2", "converse-stream")
		for j := range i % 4 {
			busy.Plan(req("amazon.nova-pro-v1:0", "us-west-2", "converse-stream"))
			busy.Plan(req(claude, fmt.Sprintf("eu-west-%d", j), "converse"))
		}
		if pa, pb := alone.Plan(r), busy.Plan(r); !samePlan(pa, pb) {
			t.Fatalf("request %d: plans changed by other traffic: %s vs %s", i, show(pa), show(pb))
		}
	}
}

func TestInjectorProbabilities(t *testing.T) {
	in := NewInjector(mustParse(t, mixed), 1, clock.NewFake(t0))
	const n = 20000
	counts := map[string]int{}
	for range n {
		p := in.Plan(req(claude, "us-east-1", "converse-stream"))
		switch {
		case p.Error != "":
			counts[p.Error]++
		case p.MidStream != nil:
			counts["mid"]++
		}
		if p.Latency < 10*time.Millisecond || p.Latency > 100*time.Millisecond {
			t.Fatalf("latency %v outside [10ms, 100ms]", p.Latency)
		}
		counts["lat>55ms"] += map[bool]int{true: 1}[p.Latency > 55*time.Millisecond]
	}
	// Throttling fires 20% of the time; the server error 10% of the rest;
	// the stream fault 30% of what is left.
	want := map[string]float64{
		"ThrottlingException":     0.2,
		"InternalServerException": 0.8 * 0.1,
		"mid":                     0.8 * 0.9 * 0.3,
		"lat>55ms":                0.5,
	}
	for k, w := range want {
		got := float64(counts[k]) / n
		if got < w-0.02 || got > w+0.02 {
			t.Errorf("%s: rate %.3f, want %.3f ± 0.02", k, got, w)
		}
	}
}

func TestInjectorPlans(t *testing.T) {
	const src = `rules:
  - name: east-outage
    region: us-east-1
    outages:
      - from: 10s
        to: 40s
        answer: 503
      - from: 40s
        to: 50s
        answer: refuse
      - from: 50s
        to: 60s
        answer: hang
  - name: windowed
    region: us-west-2
    from: 1m
    to: 2m
    errors:
      - code: ModelTimeoutException
        probability: 1
        message: too slow
  - name: first-latency
    model: "*nova*"
    latency:
      fixed: 1s
  - name: second-latency
    operation: "invoke*"
    latency:
      fixed: 250ms
  - name: nova-errors
    model: "*nova*"
    operation: converse
    errors:
      - code: ValidationException
        probability: 1
  - name: later-errors
    model: "*nova*"
    errors:
      - code: AccessDeniedException
        probability: 1
  - name: resets
    model: "*titan*"
    stream:
      - kind: corrupt
        after: 1
        probability: 1
      - kind: reset
        after: 4
        probability: 1
  - name: refusals
    model: refused
    refuse: 1
  - name: hangs
    model: hung
    hang: 1
`
	tests := []struct {
		name string
		at   time.Duration // since start
		r    fault.Request
		want fault.Plan
	}{
		{name: "before the outage", at: 9 * time.Second, r: req(claude, "us-east-1", "converse")},
		{name: "outage answers 503", at: 10 * time.Second, r: req(claude, "us-east-1", "converse"),
			want: fault.Plan{Error: "ServiceUnavailableException", Rule: "east-outage"}},
		{name: "outage covers every operation", at: 39 * time.Second, r: req(claude, "us-east-1", "count-tokens"),
			want: fault.Plan{Error: "ServiceUnavailableException", Rule: "east-outage"}},
		{name: "outage spares other regions", at: 20 * time.Second, r: req(claude, "us-east-2", "converse")},
		{name: "outage refuses", at: 40 * time.Second, r: req(claude, "us-east-1", "converse"),
			want: fault.Plan{Refuse: true, Rule: "east-outage"}},
		{name: "outage hangs", at: 59 * time.Second, r: req(claude, "us-east-1", "converse"),
			want: fault.Plan{Hang: true, Rule: "east-outage"}},
		{name: "after the outage", at: time.Minute, r: req(claude, "us-east-1", "converse")},
		{name: "rule not yet active", at: 59 * time.Second, r: req(claude, "us-west-2", "converse")},
		{name: "rule active", at: time.Minute, r: req(claude, "us-west-2", "converse"),
			want: fault.Plan{Error: "ModelTimeoutException", ErrorMessage: "too slow", Rule: "windowed"}},
		{name: "rule no longer active", at: 2 * time.Minute, r: req(claude, "us-west-2", "converse")},
		{name: "latencies add, first error wins", r: req("amazon.nova-pro-v1:0", "eu-west-1", "converse"),
			want: fault.Plan{Latency: time.Second, Error: "ValidationException", Rule: "nova-errors"}},
		{name: "operation filter", r: req("amazon.nova-pro-v1:0", "eu-west-1", "invoke"),
			want: fault.Plan{Latency: 1250 * time.Millisecond, Error: "AccessDeniedException", Rule: "later-errors"}},
		{name: "latency alone names its rule", r: req(claude, "eu-west-1", "invoke-with-response-stream"),
			want: fault.Plan{Latency: 250 * time.Millisecond, Rule: "second-latency"}},
		{name: "corrupt needs an event stream, reset does not", r: req("amazon.titan-text", "eu-west-1", "converse"),
			want: fault.Plan{MidStream: &fault.MidStream{Kind: fault.Reset, After: 4}, Rule: "resets"}},
		{name: "first stream fault wins", r: req("amazon.titan-text", "eu-west-1", "converse-stream"),
			want: fault.Plan{MidStream: &fault.MidStream{Kind: fault.Corrupt, After: 1}, Rule: "resets"}},
		{name: "refuse", r: req("refused", "eu-west-1", "converse"), want: fault.Plan{Refuse: true, Rule: "refusals"}},
		{name: "hang", r: req("hung", "eu-west-1", "converse"), want: fault.Plan{Hang: true, Rule: "hangs"}},
		{name: "unknown operation is matched by '*' rules only", r: req("amazon.nova-pro-v1:0", "eu-west-1", "get-async-invoke"),
			want: fault.Plan{Latency: time.Second, Error: "AccessDeniedException", Rule: "later-errors"}},
		{name: "no rule matches", r: req(claude, "eu-west-1", "converse")},
	}
	s := mustParse(t, src)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := clock.NewFake(t0)
			in := NewInjector(s, 1, clk)
			clk.Advance(tt.at)
			got := in.Plan(tt.r)
			if !samePlan(got, tt.want) {
				t.Errorf("Plan(%+v) at %v = %s, want %s", tt.r, tt.at, show(got), show(tt.want))
			}
		})
	}
}

func samePlan(a, b fault.Plan) bool {
	am, bm := a.MidStream, b.MidStream
	a.MidStream, b.MidStream = nil, nil
	if a != b || (am == nil) != (bm == nil) {
		return false
	}
	return am == nil || *am == *bm
}

func show(p fault.Plan) string {
	s := fmt.Sprintf("%+v", p)
	if p.MidStream != nil {
		s += fmt.Sprintf(" mid=%+v", *p.MidStream)
	}
	return s
}

func TestInjectorColdStart(t *testing.T) {
	const src = `rules:
  - name: cold
    model: "*claude*"
    cold_start:
      idle: 5m
      requests: 2
      within: 30s
      message: warming
`
	type step struct {
		wait   time.Duration
		region string
		cold   bool
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{
			name: "cold at start, K requests rejected, then warm",
			steps: []step{
				{region: "us-east-1", cold: true},
				{wait: time.Second, region: "us-east-1", cold: true},
				{wait: time.Second, region: "us-east-1"},
				{wait: 4 * time.Minute, region: "us-east-1"},
			},
		},
		{
			name: "idle again after D",
			steps: []step{
				{region: "us-east-1", cold: true},
				{region: "us-east-1", cold: true},
				{region: "us-east-1"},
				{wait: 5 * time.Minute, region: "us-east-1", cold: true},
				{wait: 4*time.Minute + 59*time.Second, region: "us-east-1"}, // the rejected request counted as activity
			},
		},
		{
			name: "the window W ends the episode early",
			steps: []step{
				{region: "us-east-1", cold: true},
				{wait: 30 * time.Second, region: "us-east-1"},
			},
		},
		{
			name: "regions warm up apart",
			steps: []step{
				{region: "us-east-1", cold: true},
				{region: "us-east-1", cold: true},
				{region: "us-east-1"},
				{region: "us-west-2", cold: true},
			},
		},
	}
	s := mustParse(t, src)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := clock.NewFake(t0)
			in := NewInjector(s, 1, clk)
			for i, st := range tt.steps {
				clk.Advance(st.wait)
				p := in.Plan(req("anthropic.claude-sonnet-4", st.region, "converse"))
				want := fault.Plan{}
				if st.cold {
					want = fault.Plan{Error: "ModelNotReadyException", ErrorMessage: "warming", Rule: "cold"}
				}
				if p != want {
					t.Fatalf("step %d: plan %+v, want %+v", i, p, want)
				}
			}
			if p := in.Plan(req("amazon.nova-lite-v1:0", "us-east-1", "converse")); !p.Zero() {
				t.Errorf("a model the rule does not match got %+v", p)
			}
		})
	}
}

func TestInjectorHugeLatencySaturates(t *testing.T) {
	const huge = "2562047h47m16.854775807s" // the largest time.Duration
	in := NewInjector(mustParse(t, `rules:
  - latency:
      fixed: `+huge+`
      jitter: `+huge+`
  - latency:
      fixed: `+huge+`
`), 1, clock.NewFake(t0))
	for range 20 {
		if p := in.Plan(req(claude, "us-east-1", "converse")); p.Latency != math.MaxInt64 {
			t.Fatalf("latency %v, want the largest duration", p.Latency)
		}
	}
}

func TestInjectorReplace(t *testing.T) {
	clk := clock.NewFake(t0)
	first := mustParse(t, "rules:\n  - name: a\n    hang: 1\n")
	in := NewInjector(first, 1, clk)
	if p := in.Plan(req(claude, "us-east-1", "converse")); !p.Hang {
		t.Fatalf("plan %+v, want a hang", p)
	}
	clk.Advance(time.Minute)
	second := mustParse(t, "rules:\n  - name: b\n    from: 30s\n    to: 90s\n    refuse: 1\n")
	in.Replace(second)
	if in.Scenario() != second {
		t.Error("Scenario() does not return the replacement")
	}
	if !in.Start().Equal(t0) {
		t.Errorf("Start() = %v, want %v: Replace must keep the start", in.Start(), t0)
	}
	if p := in.Plan(req(claude, "us-east-1", "converse")); !p.Refuse || p.Rule != "b" {
		t.Fatalf("plan %+v, want a refusal by rule b (windows count from emulator start)", p)
	}
	in.Replace(nil)
	if p := in.Plan(req(claude, "us-east-1", "converse")); !p.Zero() {
		t.Fatalf("plan %+v after Replace(nil), want none", p)
	}
}

func TestInjectorNil(t *testing.T) {
	in := NewInjector(nil, 0, nil)
	if p := in.Plan(req(claude, "us-east-1", "converse")); !p.Zero() {
		t.Fatalf("plan %+v, want none", p)
	}
	if len(in.Scenario().Rules) != 0 {
		t.Error("nil scenario must read as empty")
	}
}

func TestInjectorGoBuiltScenario(t *testing.T) {
	s := &Scenario{Rules: []Rule{{
		Name:    "go",
		Errors:  []ErrorFault{{Code: "throttling", Probability: 1}},
		Outages: []Outage{{From: time.Hour, Answer: "500"}},
	}}}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	clk := clock.NewFake(t0)
	in := NewInjector(s, 1, clk)
	if p := in.Plan(req(claude, "us-east-1", "converse")); p.Error != "ThrottlingException" {
		t.Errorf("plan %+v, want the canonical ThrottlingException", p)
	}
	clk.Advance(time.Hour)
	if p := in.Plan(req(claude, "us-east-1", "converse")); p.Error != "InternalServerException" {
		t.Errorf("plan %+v, want the outage's InternalServerException", p)
	}
}

func TestInjectorConcurrent(t *testing.T) {
	clk := clock.NewFake(t0)
	in := NewInjector(mustParse(t, mixed+`  - name: cold
    cold_start: {}
`), 3, clk)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				in.Plan(req(fmt.Sprintf("m%d", i%5), fmt.Sprintf("r%d", w%2), Operations[i%len(Operations)]))
				if i == 250 && w == 0 {
					in.Replace(mustParse(t, mixed))
				}
			}
		}()
	}
	wg.Wait()
}

func TestInjectorPlanDoesNotAllocate(t *testing.T) {
	in := NewInjector(mustParse(t, mixed+`  - name: cold
    cold_start: {}
  - name: outage
    outages:
      - from: 1h
`), 1, clock.NewFake(t0))
	r := req(claude, "us-east-1", "converse-stream")
	in.Plan(r)
	if n := testing.AllocsPerRun(200, func() { in.Plan(r) }); n != 0 {
		t.Errorf("Plan allocates %v times per request, want 0", n)
	}
}

func BenchmarkInjectorPlan(b *testing.B) {
	in := NewInjector(mustParse(b, mixed), 1, clock.Real{})
	models := []string{"a", "b", "c", "d"}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			in.Plan(req(models[i%len(models)], "us-east-1", "converse-stream"))
			i++
		}
	})
}

// TestItem11aInjectorKeysCapped covers issue 15, item 11 (counters): beyond
// maxKeys (model, region) pairs the Injector keeps no more state; later
// pairs share one, and their rules still match as written.
func TestItem11aInjectorKeysCapped(t *testing.T) {
	in := NewInjector(mustParse(t, `rules:
  - name: m-errors
    model: "m*"
    operation: converse
    errors:
      - code: ThrottlingException
        probability: 1
  - name: x-hangs
    model: x
    region: eu-west-1
    hang: 1
`), 1, clock.NewFake(t0))
	for i := range maxKeys + 500 {
		in.Plan(req(fmt.Sprintf("m%d", i), "us-east-1", "converse"))
	}
	if n := len(*in.cur.Load().keys.Load()); n != maxKeys {
		t.Fatalf("%d pairs kept, want %d", n, maxKeys)
	}
	tests := []struct {
		name string
		r    fault.Request
		want string // the rule that decides, "" for none
		hang bool
	}{
		{name: "matching model and operation", r: req("m-new", "us-east-1", "converse"), want: "m-errors"},
		{name: "other operation", r: req("m-new", "us-east-1", "converse-stream")},
		{name: "model and region of the second rule", r: req("x", "eu-west-1", "invoke"), want: "x-hangs", hang: true},
		{name: "second rule's model in another region", r: req("x", "us-east-1", "invoke")},
		{name: "no rule", r: req("y", "us-east-1", "converse")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := in.Plan(tt.r)
			if p.Rule != tt.want || p.Hang != tt.hang || (tt.want == "m-errors") != (p.Error == "ThrottlingException") {
				t.Errorf("Plan(%+v) = %+v, want rule %q", tt.r, p, tt.want)
			}
		})
	}
	if n := len(*in.cur.Load().keys.Load()); n != maxKeys {
		t.Errorf("%d pairs kept after the cap, want %d", n, maxKeys)
	}
}

// TestInjectorTiers: a rule with a tier matches requests asking for that
// tier only, "default" also matching a request that names none.
func TestInjectorTiers(t *testing.T) {
	s, err := Parse([]byte(`rules:
  - name: default-busy
    tier: default
    errors:
      - code: ThrottlingException
        probability: 1
  - name: flex-slow
    tier: flex
    latency:
      fixed: 2s
`))
	if err != nil {
		t.Fatal(err)
	}
	in := NewInjector(s, 1, nil)
	tests := []struct {
		tier    string
		rule    string
		error   string
		latency time.Duration
	}{
		{"", "default-busy", "ThrottlingException", 0},
		{"default", "default-busy", "ThrottlingException", 0},
		{"flex", "flex-slow", "", 2 * time.Second},
		{"priority", "", "", 0},
	}
	for _, tt := range tests {
		p := in.Plan(fault.Request{Model: "m", Region: "us-east-1", Operation: "converse", Tier: tt.tier})
		if p.Rule != tt.rule || p.Error != tt.error || p.Latency != tt.latency {
			t.Errorf("tier %q: plan %+v, want rule %q, error %q, latency %v", tt.tier, p, tt.rule, tt.error, tt.latency)
		}
	}
}
