package quota

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/keel-run/keel/internal/clock"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

const (
	model  = "anthropic.claude-3-7-sonnet-20250219-v1:0"
	region = "us-east-1"

	msgTokens   = "Too many tokens, please wait before trying again."
	msgRequests = "Too many requests, please wait before trying again."
	msgDay      = "Too many tokens per day, please wait before trying again."
)

// step is one thing a test does to a meter: wait, admit or settle.
type step struct {
	wait   time.Duration
	admit  *AdmitRequest
	settle *SettleRequest
	want   string // for admit: the rejection message, "" when admitted
	left   *int64 // when set: what Snapshot says the tokens-per-minute bucket holds
}

func admit(in, maxTok int, want string) step {
	return step{admit: &AdmitRequest{Model: model, Region: region, Operation: "converse", InputTokens: in, MaxTokens: maxTok}, want: want}
}

func settle(in, cacheWrite, out, maxTok int, burndown float64) step {
	return step{settle: &SettleRequest{Model: model, Region: region, Operation: "converse",
		InputTokens: in, CacheWriteTokens: cacheWrite, OutputTokens: out, MaxTokens: maxTok, Burndown: burndown}}
}

func wait(d time.Duration) step { return step{wait: d} }

func run(t *testing.T, clk *clock.Fake, m *Meter, steps []step) {
	t.Helper()
	for i, s := range steps {
		switch {
		case s.wait > 0:
			clk.Advance(s.wait)
		case s.admit != nil:
			got := ""
			if rej := m.Admit(*s.admit); rej != nil {
				if rej.Code != "ThrottlingException" {
					t.Fatalf("step %d: rejection code %q, want ThrottlingException", i, rej.Code)
				}
				got = rej.Message
			}
			if got != s.want {
				t.Fatalf("step %d: Admit(in=%d, max=%d) = %q, want %q", i, s.admit.InputTokens, s.admit.MaxTokens, got, s.want)
			}
		case s.settle != nil:
			m.Settle(*s.settle)
		case s.left != nil:
			u := m.Snapshot()
			if len(u) != 1 || u[0].TokensAvailable == nil || *u[0].TokensAvailable != *s.left {
				t.Fatalf("step %d: Snapshot() = %+v, want one entry with %d tokens available", i, u, *s.left)
			}
		}
	}
}

// windowCase is a meter under one rule for every pair, and what is done to it.
type windowCase struct {
	name   string
	limits Limits
	steps  []step
}

// runWindowCases runs each case on a fresh meter and fake clock.
func runWindowCases(t *testing.T, cases []windowCase) {
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			clk := clock.NewFake(t0)
			m := NewMeter(clk, Table{{Model: "*", Region: "*", Limits: tt.limits}})
			run(t, clk, m, tt.steps)
		})
	}
}

func TestMeterWindows(t *testing.T) {
	runWindowCases(t, []windowCase{
		{
			name:   "tokens per minute refill continuously",
			limits: Limits{TokensPerMinute: 1000},
			steps: []step{
				admit(400, 500, ""),       // 100 left
				admit(100, 50, msgTokens), // needs 150
				wait(2 * time.Second),     // +33.3
				admit(100, 50, msgTokens), // 133 < 150
				wait(time.Second),         // +16.7 -> 150
				admit(100, 50, ""),        // 0 left
				admit(0, 1, msgTokens),    // nothing left
				wait(time.Minute),         // full again
				admit(500, 500, ""),       // whole minute in one burst
				wait(10 * time.Minute),    // refills to capacity, no further
				admit(1000, 0, ""),
				admit(0, 1, msgTokens),
			},
		},
		{
			name:   "a reservation larger than the quota never fits",
			limits: Limits{TokensPerMinute: 1000},
			steps: []step{
				admit(100, 1000, msgTokens),
				wait(time.Hour),
				admit(100, 1000, msgTokens),
				admit(100, 900, ""),
			},
		},
		{
			name:   "requests per minute",
			limits: Limits{RequestsPerMinute: 2},
			steps: []step{
				admit(10, 10, ""),
				admit(10, 10, ""),
				admit(10, 10, msgRequests),
				wait(29 * time.Second),
				admit(10, 10, msgRequests),
				wait(time.Second), // one request's worth back after 30s
				admit(10, 10, ""),
				admit(10, 10, msgRequests),
			},
		},
		{
			name:   "requests are checked before tokens",
			limits: Limits{RequestsPerMinute: 1, TokensPerMinute: 100},
			steps: []step{
				admit(50, 50, ""),
				admit(50, 50, msgRequests),
			},
		},
		{
			name:   "a rejected request reserves nothing",
			limits: Limits{RequestsPerMinute: 2, TokensPerMinute: 100},
			steps: []step{
				admit(50, 100, msgTokens), // would take a request slot if it were charged
				admit(50, 50, ""),
				admit(0, 0, ""),
			},
		},
		{
			name:   "tokens per day",
			limits: Limits{TokensPerDay: 1000},
			steps: []step{
				admit(300, 300, ""),
				admit(300, 300, msgDay),
				wait(time.Hour), // +41.7
				admit(300, 300, msgDay),
				wait(23 * time.Hour),
				admit(300, 300, ""),
			},
		},
		{
			name:   "settle gives back what was not used",
			limits: Limits{TokensPerMinute: 1000},
			steps: []step{
				admit(100, 900, ""),
				admit(0, 1, msgTokens),
				settle(100, 0, 50, 900, 1), // used 150 of 1000
				admit(100, 700, ""),        // 850 free
				admit(0, 51, msgTokens),    // 50 free
			},
		},
		{
			name:   "settle counts cache writes",
			limits: Limits{TokensPerMinute: 1000},
			steps: []step{
				admit(100, 900, ""),
				settle(100, 300, 100, 900, 1), // used 500
				admit(0, 500, ""),
				admit(0, 1, msgTokens),
			},
		},
		{
			name:   "burndown can drive the window below zero",
			limits: Limits{TokensPerMinute: 1000},
			steps: []step{
				admit(100, 200, ""),         // 700 left
				settle(100, 0, 200, 200, 5), // used 100 + 1000: window at -100
				admit(0, 1, msgTokens),
				wait(6 * time.Second), // +100: 0
				admit(0, 1, msgTokens),
				wait(6 * time.Second), // +100
				admit(50, 50, ""),
			},
		},
		{
			name:   "burndown rounds up",
			limits: Limits{TokensPerMinute: 100},
			steps: []step{
				admit(0, 100, ""),
				settle(0, 0, 3, 100, 1.5), // used ceil(4.5) = 5
				admit(0, 95, ""),
				admit(0, 1, msgTokens),
			},
		},
		{
			name:   "settle is charged to the daily window too",
			limits: Limits{TokensPerDay: 1000},
			steps: []step{
				admit(0, 100, ""),
				settle(0, 0, 100, 100, 5), // used 500
				admit(0, 500, ""),
				admit(0, 1, msgDay),
			},
		},
		{
			name:   "count-tokens is never limited",
			limits: Limits{TokensPerMinute: 10, RequestsPerMinute: 1},
			steps: []step{
				{admit: &AdmitRequest{Model: model, Region: region, Operation: "count-tokens", InputTokens: 1000, MaxTokens: 1000}},
				{admit: &AdmitRequest{Model: model, Region: region, Operation: "count-tokens", InputTokens: 1000, MaxTokens: 1000}},
				admit(5, 5, ""),
			},
		},
		{
			name:   "zero limits admit everything",
			limits: Limits{},
			steps: []step{
				admit(1<<30, 1<<30, ""),
				admit(1<<30, 1<<30, ""),
			},
		},
		{
			name:   "negative token counts count as zero",
			limits: Limits{TokensPerMinute: 10},
			steps: []step{
				admit(-100, 10, ""),
				admit(0, 1, msgTokens),
			},
		},
	})
}

func TestTableLookup(t *testing.T) {
	table := Table{
		{Model: "anthropic.claude-3-7-sonnet*", Region: "us-east-1", Limits: Limits{TokensPerMinute: 1}},
		{Model: "anthropic.*", Limits: Limits{TokensPerMinute: 2}},
		{Region: "eu-*", Limits: Limits{TokensPerMinute: 3}},
	}
	tests := []struct {
		name   string
		model  string
		region string
		want   int64
		found  bool
	}{
		{name: "first rule", model: model, region: "us-east-1", want: 1, found: true},
		{name: "region differs falls through", model: model, region: "us-west-2", want: 2, found: true},
		{name: "empty region pattern means any", model: "anthropic.claude-3-haiku-20240307-v1:0", region: "ap-south-1", want: 2, found: true},
		{name: "empty model pattern means any", model: "amazon.nova-pro-v1:0", region: "eu-west-1", want: 3, found: true},
		{name: "no rule", model: "amazon.nova-pro-v1:0", region: "us-east-1", found: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, found := table.Lookup(tt.model, tt.region)
			if found != tt.found || got.TokensPerMinute != tt.want {
				t.Errorf("Lookup(%q, %q) = %+v, %v; want tpm %d, %v", tt.model, tt.region, got, found, tt.want, tt.found)
			}
		})
	}
}

func TestTableValidate(t *testing.T) {
	tests := []struct {
		name  string
		table Table
		want  string
	}{
		{name: "ok", table: Table{{Limits: Limits{TokensPerMinute: 1}}}},
		{name: "negative tpm", table: Table{{}, {Limits: Limits{TokensPerMinute: -1}}}, want: "quota: rule 1: tokens per minute -1 is negative"},
		{name: "negative rpm", table: Table{{Limits: Limits{RequestsPerMinute: -2}}}, want: "quota: rule 0: requests per minute -2 is negative"},
		{name: "negative tpd", table: Table{{Limits: Limits{TokensPerDay: -3}}}, want: "quota: rule 0: tokens per day -3 is negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.table.Validate()
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Errorf("Validate() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestMeterKeysAreSeparate(t *testing.T) {
	clk := clock.NewFake(t0)
	m := NewMeter(clk, Table{{Limits: Limits{TokensPerMinute: 100}}})
	for _, k := range []struct{ model, region string }{{"a", "us-east-1"}, {"a", "us-west-2"}, {"b", "us-east-1"}} {
		if rej := m.Admit(AdmitRequest{Model: k.model, Region: k.region, MaxTokens: 100}); rej != nil {
			t.Fatalf("Admit(%s, %s) = %q, want admitted: windows must be per model and region", k.model, k.region, rej.Message)
		}
	}
	if rej := m.Admit(AdmitRequest{Model: "a", Region: "us-east-1", MaxTokens: 1}); rej == nil {
		t.Fatal("second Admit(a, us-east-1) admitted, want throttled")
	}
}

func TestMeterSetTable(t *testing.T) {
	tests := []struct {
		name   string
		before Limits
		after  Limits
		steps  []step // run after the table is replaced
	}{
		{
			name:   "a smaller capacity cuts the level",
			before: Limits{TokensPerMinute: 1000},
			after:  Limits{TokensPerMinute: 100},
			steps:  []step{admit(0, 100, ""), admit(0, 1, msgTokens)},
		},
		{
			name:   "a larger capacity keeps the level and refills faster",
			before: Limits{TokensPerMinute: 1000},
			after:  Limits{TokensPerMinute: 6000},
			steps: []step{
				admit(0, 501, msgTokens), // 500 left from before
				wait(time.Second),        // +100 at the new rate
				admit(0, 600, ""),
			},
		},
		{
			name:   "a window that was not limited starts full",
			before: Limits{TokensPerMinute: 1000},
			after:  Limits{TokensPerMinute: 1000, RequestsPerMinute: 1},
			steps:  []step{admit(0, 1, ""), admit(0, 1, msgRequests)},
		},
		{
			name:   "lifting a limit",
			before: Limits{TokensPerMinute: 1000},
			after:  Limits{},
			steps:  []step{admit(0, 1<<20, "")},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := clock.NewFake(t0)
			m := NewMeter(clk, Table{{Limits: tt.before}})
			run(t, clk, m, []step{admit(0, 500, "")})
			m.SetTable(Table{{Limits: tt.after}})
			if got := m.Table(); len(got) != 1 || got[0].Limits != tt.after {
				t.Fatalf("Table() = %+v, want the new limits %+v", got, tt.after)
			}
			run(t, clk, m, tt.steps)
		})
	}
}

func TestMeterSnapshotAndReset(t *testing.T) {
	clk := clock.NewFake(t0)
	m := NewMeter(clk, Table{{Model: "limited", Limits: Limits{TokensPerMinute: 1000}}})
	m.Admit(AdmitRequest{Model: "limited", Region: "us-east-1", InputTokens: 100, MaxTokens: 500})
	m.Admit(AdmitRequest{Model: "limited", Region: "us-east-1", InputTokens: 100, MaxTokens: 500}) // throttled
	m.Settle(SettleRequest{Model: "limited", Region: "us-east-1", InputTokens: 100, OutputTokens: 20, Burndown: 5, MaxTokens: 500})
	m.Admit(AdmitRequest{Model: "free", Region: "eu-west-1", InputTokens: 7, MaxTokens: 3})

	got := m.Snapshot()
	if len(got) != 2 {
		t.Fatalf("Snapshot() has %d entries, want 2: %+v", len(got), got)
	}
	free, limited := got[0], got[1]
	if free.Model != "free" || free.Requests != 1 || free.Admitted != 1 || free.TokensReserved != 10 ||
		free.TokensAvailable != nil || !free.Limits.Unlimited() {
		t.Errorf("free = %+v", free)
	}
	if limited.Model != "limited" || limited.Region != "us-east-1" || limited.Requests != 2 || limited.Admitted != 1 ||
		limited.Throttled != 1 || limited.Settled != 1 || limited.TokensReserved != 600 || limited.TokensSettled != 200 ||
		limited.Limits.TokensPerMinute != 1000 {
		t.Errorf("limited = %+v", limited)
	}
	// 1000 - 600 reserved + 400 given back = 800.
	if limited.TokensAvailable == nil || *limited.TokensAvailable != 800 {
		t.Errorf("limited.TokensAvailable = %v, want 800", limited.TokensAvailable)
	}

	m.Reset()
	if got := m.Snapshot(); len(got) != 0 {
		t.Fatalf("Snapshot() after Reset = %+v, want empty", got)
	}
	if rej := m.Admit(AdmitRequest{Model: "limited", Region: "us-east-1", MaxTokens: 1000}); rej != nil {
		t.Fatalf("Admit after Reset = %q, want a full window", rej.Message)
	}
}

func TestMeterConcurrent(t *testing.T) {
	m := NewMeter(clock.NewFake(t0), Table{{Model: "m0", Limits: Limits{TokensPerMinute: 10_000}}})
	const workers, each = 8, 500
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			model := fmt.Sprintf("m%d", w%3)
			for range each {
				if m.Admit(AdmitRequest{Model: model, Region: "us-east-1", InputTokens: 5, MaxTokens: 5}) == nil {
					m.Settle(SettleRequest{Model: model, Region: "us-east-1", InputTokens: 5, OutputTokens: 5, MaxTokens: 5})
				}
			}
			_ = m.Snapshot()
		}()
	}
	wg.Wait()
	var requests, admitted int64
	for _, u := range m.Snapshot() {
		requests += u.Requests
		admitted += u.Admitted
		if u.Admitted+u.Throttled != u.Requests || u.Settled != u.Admitted || u.TokensSettled != 10*u.Admitted {
			t.Errorf("inconsistent counters: %+v", u)
		}
		if u.Model == "m0" && u.Admitted != 1000 { // the clock does not move: 10,000 / 10 per request
			t.Errorf("m0 admitted %d, want 1000", u.Admitted)
		}
	}
	if requests != workers*each {
		t.Errorf("requests = %d, want %d", requests, workers*each)
	}
}

func TestMeterAdmitSettleDoNotAllocate(t *testing.T) {
	m := NewMeter(clock.NewFake(t0), Table{{Limits: Limits{TokensPerMinute: 1 << 40, RequestsPerMinute: 1 << 40}}})
	a := AdmitRequest{Model: model, Region: region, InputTokens: 10, MaxTokens: 10}
	s := SettleRequest{Model: model, Region: region, InputTokens: 10, OutputTokens: 5, MaxTokens: 10}
	m.Admit(a)
	m.Settle(s)
	if n := testing.AllocsPerRun(100, func() {
		m.Admit(a)
		m.Settle(s)
	}); n != 0 {
		t.Errorf("Admit+Settle allocate %v times per request, want 0", n)
	}
}

func BenchmarkMeterParallel(b *testing.B) {
	m := NewMeter(clock.Real{}, Table{{Limits: Limits{TokensPerMinute: 1 << 40, RequestsPerMinute: 1 << 40}}})
	models := []string{"a", "b", "c", "d"}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			mod := models[i%len(models)]
			i++
			m.Admit(AdmitRequest{Model: mod, Region: region, InputTokens: 10, MaxTokens: 10})
			m.Settle(SettleRequest{Model: mod, Region: region, InputTokens: 10, OutputTokens: 5, MaxTokens: 10})
		}
	})
}

// TestItem11aMeterPairsCapped covers issue 15, item 11 (counters): beyond
// MaxPairs, new (model, region) pairs share one entry, named Other, limited
// by a catch-all rule.
func TestItem11aMeterPairsCapped(t *testing.T) {
	clk := clock.NewFake(t0)
	m := NewMeter(clk, Table{
		{Model: "arn:*", Limits: Limits{RequestsPerMinute: 1_000_000}},
		{Model: "*", Region: "*", Limits: Limits{RequestsPerMinute: 5}},
	})
	arn := func(i int) string { return fmt.Sprintf("arn:aws:bedrock:us-east-1:%012d:inference-profile/us.m", i) }
	for i := range MaxPairs {
		if rej := m.Admit(AdmitRequest{Model: arn(i), Region: region}); rej != nil {
			t.Fatalf("Admit %d: %s", i, rej.Message)
		}
	}
	admitted := 0
	for i := range 20 {
		if m.Admit(AdmitRequest{Model: arn(MaxPairs + i), Region: region}) == nil {
			admitted++
			m.Settle(SettleRequest{Model: arn(MaxPairs + i), Region: region})
		}
	}
	if admitted != 5 {
		t.Errorf("%d of 20 requests beyond the cap admitted, want 5: they share the catch-all's window", admitted)
	}
	snap := m.Snapshot()
	if len(snap) != MaxPairs+1 {
		t.Fatalf("%d entries, want %d", len(snap), MaxPairs+1)
	}
	var other *Usage
	for i := range snap {
		if snap[i].Model == Other && snap[i].Region == Other {
			other = &snap[i]
		}
	}
	if other == nil || other.Requests != 20 || other.Admitted != 5 || other.Settled != 5 {
		t.Errorf("the shared entry is %+v, want 20 requests, 5 admitted and settled", other)
	}
	// A pair seen before the cap keeps its own window.
	if rej := m.Admit(AdmitRequest{Model: arn(0), Region: region}); rej != nil {
		t.Errorf("Admit for a pair kept before the cap: %s", rej.Message)
	}
}
