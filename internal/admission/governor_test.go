package admission

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

func TestNewValidates(t *testing.T) {
	tg := Target{Model: "m", Region: "r"}
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{name: "negative tokens", opts: Options{Default: Quota{TokensPerMinute: -1}}, want: "admission: Default: TokensPerMinute -1 is negative"},
		{name: "negative requests in a target", opts: Options{Targets: map[Target]Quota{tg: {RequestsPerMinute: -2}}},
			want: "admission: Targets[m@r]: RequestsPerMinute -2 is negative"},
		{name: "negative floor", opts: Options{Default: Quota{MinTokensPerMinute: -3}}, want: "MinTokensPerMinute -3 is negative"},
		{name: "negative ceiling", opts: Options{Default: Quota{MaxTokensPerMinute: -4}}, want: "MaxTokensPerMinute -4 is negative"},
		{name: "floor above ceiling", opts: Options{Default: Quota{Learn: true, MinTokensPerMinute: 5000, MaxTokensPerMinute: 1000}},
			want: "MinTokensPerMinute 5000 is above MaxTokensPerMinute 1000"},
		{name: "ceiling on a known quota", opts: Options{Default: Quota{TokensPerMinute: 1000, MaxTokensPerMinute: 2000}},
			want: "MaxTokensPerMinute 2000 applies only when learning; the known TokensPerMinute 1000 is the ceiling"},
		{name: "floor above a known quota", opts: Options{Default: Quota{TokensPerMinute: 1000, MinTokensPerMinute: 5000}},
			want: "MinTokensPerMinute 5000 is above TokensPerMinute 1000"},
		{name: "guess above ceiling", opts: Options{Default: Quota{TokensPerMinute: 5000, Learn: true, MaxTokensPerMinute: 1000}},
			want: "the first guess TokensPerMinute 5000 is above MaxTokensPerMinute 1000"},
		{name: "negative max wait", opts: Options{MaxWait: -time.Second}, want: "admission: MaxWait -1s is negative"},
		{name: "negative batch every", opts: Options{BatchEvery: -1}, want: "admission: BatchEvery -1 is negative"},
		{name: "negative cool-down", opts: Options{CoolDown: -time.Millisecond}, want: "admission: CoolDown -1ms is negative"},
		{name: "negative recovery", opts: Options{Recovery: -time.Second}, want: "admission: Recovery -1s is negative"},
		{name: "decrease of 1", opts: Options{Decrease: 1}, want: "admission: Decrease 1 must be between 0 and 1 (0 = default 0.7)"},
		{name: "negative max targets", opts: Options{MaxTargets: -1}, want: "admission: MaxTargets -1 is negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := New(tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New = %v, %v; want error %q", g, err, tt.want)
			}
		})
	}
	if _, err := New(Options{}); err != nil {
		t.Errorf("New(Options{}) = %v, want the defaults", err)
	}
}

func TestBadArguments(t *testing.T) {
	g, _ := newGov(t, known(1000))
	tests := []struct {
		name  string
		est   Estimate
		class Class
		want  string
	}{
		{name: "class", class: 7, want: "admission: class 7 is neither Interactive (0) nor Batch (1)"},
		{name: "input", est: Estimate{InputTokens: -1}, want: "admission: estimate's InputTokens -1 is negative"},
		{name: "max tokens", est: Estimate{MaxTokens: -2}, want: "admission: estimate's MaxTokens -2 is negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := g.Admit(context.Background(), haiku, tt.est, tt.class); err == nil || err.Error() != tt.want {
				t.Errorf("Admit error %v, want %q", err, tt.want)
			}
			if _, _, err := g.TryAdmit(haiku, tt.est, tt.class); err == nil || err.Error() != tt.want {
				t.Errorf("TryAdmit error %v, want %q", err, tt.want)
			}
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := g.Admit(ctx, haiku, Estimate{}, Interactive); !errors.Is(err, context.Canceled) {
		t.Errorf("Admit with a done context = %v, want context.Canceled", err)
	}
}

// TestReserveAndSettle checks the arithmetic: the hold is the corrected
// input (the raw estimate × 1.25 until the target has learned) plus the max
// tokens; settling replaces it with input + cache-write + output × burndown.
func TestReserveAndSettle(t *testing.T) {
	const tpm = 100000
	tests := []struct {
		name      string
		target    Target
		est       Estimate
		usage     Usage
		wantInput int
		wantMax   int
		wantCost  int
	}{
		{name: "refund, burndown 1", target: haiku, est: Estimate{InputTokens: 1000, MaxTokens: 2000},
			usage: Usage{InputTokens: 1100, OutputTokens: 500}, wantInput: 1250, wantMax: 2000, wantCost: 1600},
		{name: "debit, burndown 5", target: sonnet, est: Estimate{InputTokens: 1000, MaxTokens: 200},
			usage: Usage{InputTokens: 1000, OutputTokens: 200}, wantInput: 1250, wantMax: 200, wantCost: 2000},
		{name: "unset max tokens holds the model's maximum (Sonnet 4)", target: sonnet, est: Estimate{InputTokens: 1000},
			usage: Usage{InputTokens: 900, OutputTokens: 100}, wantInput: 1250, wantMax: 64000, wantCost: 1400},
		{name: "unset max tokens holds the model's maximum (Claude 3 Haiku)", target: haiku, est: Estimate{},
			usage: Usage{InputTokens: 10, OutputTokens: 4096}, wantInput: 0, wantMax: 4096, wantCost: 4106},
		{name: "cache write is charged, cache read is free", target: haiku, est: Estimate{InputTokens: 4000, MaxTokens: 1000},
			usage:     Usage{InputTokens: 100, CacheReadInputTokens: 3000, CacheWriteInputTokens: 900, OutputTokens: 10},
			wantInput: 5000, wantMax: 1000, wantCost: 1010},
		{name: "unknown input charges the held estimate", target: sonnet, est: Estimate{InputTokens: 1000, MaxTokens: 500},
			usage: Usage{OutputTokens: 100}, wantInput: 1250, wantMax: 500, wantCost: 1750},
		{name: "negative counts are zero", target: haiku, est: Estimate{InputTokens: 1000, MaxTokens: 100},
			usage: Usage{InputTokens: -5, OutputTokens: -3}, wantInput: 1250, wantMax: 100, wantCost: 1250},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, _ := newGov(t, known(tpm))
			tk, err := g.Admit(context.Background(), tt.target, tt.est, Interactive)
			if err != nil {
				t.Fatalf("Admit: %v", err)
			}
			hold := tt.wantInput + tt.wantMax
			if tk.InputTokens() != tt.wantInput || tk.MaxTokens() != tt.wantMax || tk.Tokens() != hold {
				t.Errorf("ticket holds input %d + max %d = %d, want %d + %d = %d",
					tk.InputTokens(), tk.MaxTokens(), tk.Tokens(), tt.wantInput, tt.wantMax, hold)
			}
			s := stats(t, g, tt.target)
			if s.Available != int64(tpm-hold) || s.InFlight != 1 || s.InFlightTokens != int64(hold) || s.ReservedPerMinute != int64(hold) {
				t.Errorf("after Admit: available %d, in flight %d holding %d, reserved %d; want %d, 1, %d, %d",
					s.Available, s.InFlight, s.InFlightTokens, s.ReservedPerMinute, tpm-hold, hold, hold)
			}
			tk.Settle(tt.usage)
			s = stats(t, g, tt.target)
			if s.Available != int64(tpm-tt.wantCost) || s.InFlight != 0 || s.InFlightTokens != 0 || s.Settled != 1 || s.SettledPerMinute != int64(tt.wantCost) {
				t.Errorf("after Settle: available %d, in flight %d holding %d, settled %d (%d tokens); want %d, 0, 0, 1 (%d)",
					s.Available, s.InFlight, s.InFlightTokens, s.Settled, s.SettledPerMinute, tpm-tt.wantCost, tt.wantCost)
			}
		})
	}
}

func TestEstimateCorrection(t *testing.T) {
	tests := []struct {
		name      string
		actual    []int // real input per settle, cycled; the raw estimate is 1000
		wantRatio float64
		minInput  int // the next hold's input
		maxInput  int
	}{
		{name: "steady ratio", actual: []int{1500}, wantRatio: 1.5, minInput: 1500, maxInput: 1510},
		{name: "noisy ratio keeps a margin", actual: []int{1200, 1800}, wantRatio: 1.5, minInput: 1700, maxInput: 1850},
		{name: "overestimate shrinks the hold", actual: []int{500}, wantRatio: 0.5, minInput: 500, maxInput: 510},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, _ := newGov(t, known(10_000_000))
			est := Estimate{InputTokens: 1000, MaxTokens: 100}
			for i := range 60 {
				tk := mustTry(t, g, haiku, est)
				tk.Settle(Usage{InputTokens: tt.actual[i%len(tt.actual)], OutputTokens: 10})
			}
			if r := stats(t, g, haiku).InputRatio; math.Abs(r-tt.wantRatio) > 0.05 {
				t.Errorf("InputRatio = %.3f, want %.2f", r, tt.wantRatio)
			}
			tk := mustTry(t, g, haiku, est)
			if in := tk.InputTokens(); in < tt.minInput || in > tt.maxInput {
				t.Errorf("next input estimate %d, want %d..%d", in, tt.minInput, tt.maxInput)
			}
			// A settle without input teaches nothing.
			before := stats(t, g, haiku).InputRatio
			tk.Settle(Usage{OutputTokens: 10})
			if after := stats(t, g, haiku).InputRatio; after != before {
				t.Errorf("InputRatio moved from %v to %v on a settle without input", before, after)
			}
		})
	}
}

func TestTooLarge(t *testing.T) {
	est := Estimate{InputTokens: 1000} // Sonnet 4 holds 1250 + 64000 = 65250
	tests := []struct {
		name      string
		quota     Quota
		wantErr   bool
		capacity  int64
		available int64 // after admission, when admitted
	}{
		{name: "known quota below the hold", quota: Quota{TokensPerMinute: 50000}, wantErr: true, capacity: 50000},
		{name: "learning, ceiling below the hold", quota: Quota{TokensPerMinute: 50000, Learn: true, MaxTokensPerMinute: 60000}, wantErr: true, capacity: 60000},
		{name: "learning without a ceiling: admitted from a full bucket, into debt", quota: Quota{TokensPerMinute: 50000, Learn: true}, available: 50000 - 65250},
		{name: "unknown quota", quota: Quota{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, _ := newGov(t, Options{Default: tt.quota})
			tryTk, _, tryErr := g.TryAdmit(sonnet, est, Batch)
			tryTk.Cancel()
			tk, err := g.Admit(context.Background(), sonnet, est, Batch)
			if !tt.wantErr {
				if err != nil || tryErr != nil {
					t.Fatalf("Admit = %v, TryAdmit = %v; want admitted", err, tryErr)
				}
				if s := stats(t, g, sonnet); s.Available != tt.available {
					t.Errorf("available %d, want %d", s.Available, tt.available)
				}
				tk.Cancel()
				return
			}
			var e *Error
			if !errors.Is(err, ErrTooLarge) || !errors.As(err, &e) || !errors.Is(tryErr, ErrTooLarge) {
				t.Fatalf("Admit = %v, TryAdmit = %v; want ErrTooLarge", err, tryErr)
			}
			if e.Tokens != 65250 || e.Input != 1250 || e.MaxTokens != 64000 || e.Capacity != tt.capacity || e.Class != Batch || e.Target != sonnet {
				t.Errorf("error fields %+v", e)
			}
			want := "admission: us.anthropic.claude-sonnet-4-20250514-v1:0@us-east-1: a request holding 65250 tokens (input 1250 + max tokens 64000) can never fit " +
				map[int64]string{50000: "50000", 60000: "60000"}[tt.capacity] + " tokens per minute; lower its max tokens or raise the quota"
			if err.Error() != want {
				t.Errorf("error\n%s\nwant\n%s", err, want)
			}
			if s := stats(t, g, sonnet); s.TooLarge != 2 || s.InFlight != 0 {
				t.Errorf("TooLarge %d, in flight %d; want 2, 0", s.TooLarge, s.InFlight)
			}
		})
	}
}

func TestRequestsPerMinute(t *testing.T) {
	synctest.Test(t, testRequestsPerMinute)
}

func testRequestsPerMinute(t *testing.T) {
	g, clk := newBubbleGov(t, Options{Default: Quota{RequestsPerMinute: 60}})
	est := Estimate{InputTokens: 10, MaxTokens: 10}
	var tks []Ticket
	for range 60 {
		tks = append(tks, mustTry(t, g, haiku, est))
	}
	if _, ok, _ := g.TryAdmit(haiku, est, Interactive); ok {
		t.Fatal("61st request in the minute admitted")
	}
	tks[0].Cancel() // not sent: its request comes back
	mustTry(t, g, haiku, est)
	tks[1].Settle(Usage{InputTokens: 10, OutputTokens: 10}) // sent: its request stays spent
	if _, ok, _ := g.TryAdmit(haiku, est, Interactive); ok {
		t.Fatal("admitted after a settle; a sent request must stay counted")
	}
	// A waiting call gets the next request, one second later.
	ch := make(chan result, 1)
	admitAsync(context.Background(), g, haiku, est, Interactive, "w", ch)
	waitQueued(t, g, haiku, 1, 0)
	clk.Advance(time.Second)
	if r := recv(t, ch); r.err != nil || !near(r.tk.Waited(), time.Second) {
		t.Fatalf("waiting call: %v after %v, want admitted after 1s", r.err, r.tk.Waited())
	}
}

func TestTicketEndsOnce(t *testing.T) {
	g, _ := newGov(t, known(10000))
	tk := mustTry(t, g, haiku, Estimate{MaxTokens: 4000})
	if !tk.Governed() {
		t.Error("an admitted Ticket is not Governed")
	}
	tk.Cancel()
	if tk.Governed() {
		t.Error("an ended Ticket is still Governed")
	}
	tk.Cancel()
	tk.Settle(Usage{InputTokens: 100, OutputTokens: 9000})
	tk.Throttled()
	s := stats(t, g, haiku)
	if s.Available != 10000 || s.InFlight != 0 || s.Cancelled != 1 || s.Settled != 0 || s.Throttles != 0 {
		t.Errorf("after ending a ticket four times: %+v", s)
	}
	var zero Ticket
	zero.Settle(Usage{InputTokens: 1})
	zero.Cancel()
	zero.Throttled()

	var none *Governor
	tk, err := none.Admit(context.Background(), haiku, Estimate{}, Interactive)
	if err != nil || tk != (Ticket{}) {
		t.Errorf("nil Governor Admit = %+v, %v; want a zero Ticket", tk, err)
	}
	none.Throttled(haiku)
	if _, ok := none.Stats(haiku); ok || none.Snapshot() != nil {
		t.Error("nil Governor has stats")
	}
}

func TestMaxTargets(t *testing.T) {
	other := Target{Model: "x", Region: "r"}
	g, _ := newGov(t, Options{MaxTargets: 1, Default: Quota{TokensPerMinute: 100},
		Targets: map[Target]Quota{sonnet: {TokensPerMinute: 1000}}})
	mustTry(t, g, haiku, Estimate{MaxTokens: 100})
	// other is beyond MaxTargets: not governed, so even a huge call passes.
	if tk, ok, err := g.TryAdmit(other, Estimate{MaxTokens: 1 << 30}, Interactive); !ok || err != nil || tk != (Ticket{}) || tk.Governed() {
		t.Errorf("TryAdmit beyond MaxTargets = %+v, %v, %v; want an ungoverned zero Ticket", tk, ok, err)
	}
	if _, ok := g.Stats(other); ok {
		t.Error("state kept for a target beyond MaxTargets")
	}
	// Configured targets do not count against MaxTargets.
	if s := stats(t, g, sonnet); s.Limit != 1000 {
		t.Errorf("configured target limit %d, want 1000", s.Limit)
	}
	if n := len(g.Snapshot()); n != 2 {
		t.Errorf("Snapshot has %d targets, want 2", n)
	}
}

// TestMaxTargetsForgetsIdle: past MaxTargets, a new target takes the place
// of the one idle longest (a minute at least, nothing in flight), whose
// state and buckets are forgotten; a busy or recently used target is kept,
// and a configured one never counts.
func TestMaxTargetsForgetsIdle(t *testing.T) {
	a, b, c, d := Target{Model: "a", Region: "r"}, Target{Model: "b", Region: "r"}, Target{Model: "c", Region: "r"}, Target{Model: "d", Region: "r"}
	g, clk := newGov(t, Options{MaxTargets: 2, Default: Quota{TokensPerMinute: 6000},
		Targets: map[Target]Quota{sonnet: {TokensPerMinute: 1000}}})
	first := mustTry(t, g, a, Estimate{MaxTokens: 100})
	first.Settle(Usage{InputTokens: 100})
	clk.Advance(10 * time.Second)
	busy := mustTry(t, g, b, Estimate{MaxTokens: 100}) // in flight throughout
	clk.Advance(30 * time.Second)
	steps := []struct {
		advance time.Duration
		target  Target
		want    []Target // governed after the call
		gone    []Target
	}{
		// a idle 30 s only: c is not governed.
		{0, c, []Target{a, b, sonnet}, []Target{c}},
		// a idle 70 s: c takes its place.
		{40 * time.Second, c, []Target{b, c, sonnet}, []Target{a}},
		// b is busy, c idle 70 s: d takes c's place.
		{70 * time.Second, d, []Target{b, d, sonnet}, []Target{a, c}},
	}
	for i, st := range steps {
		clk.Advance(st.advance)
		tk, ok, err := g.TryAdmit(st.target, Estimate{MaxTokens: 10}, Interactive)
		if !ok || err != nil {
			t.Fatalf("step %d: TryAdmit(%s) = %v, %v", i, st.target, ok, err)
		}
		tk.Cancel()
		for _, w := range st.want {
			if _, ok := g.Stats(w); !ok {
				t.Errorf("step %d: %s not governed", i, w)
			}
		}
		for _, w := range st.gone {
			if _, ok := g.Stats(w); ok {
				t.Errorf("step %d: %s still governed", i, w)
			}
		}
	}
	busy.Settle(Usage{InputTokens: 100})
	// A forgotten target starts anew: a's bucket is a fresh one (warming up,
	// or full with FullStart as here).
	clk.Advance(2 * time.Minute)
	again := mustTry(t, g, a, Estimate{MaxTokens: 10})
	again.Cancel()
	if s := stats(t, g, a); s.Available != 6000 || s.Settled != 0 {
		t.Errorf("a again: available %d, settled %d; want a fresh full bucket", s.Available, s.Settled)
	}
}

// TestAdmitFastPathDoesNotAllocate checks the hot path: a call that fits at once.
func TestAdmitFastPathDoesNotAllocate(t *testing.T) {
	g, _ := newGov(t, known(1<<40))
	ctx := context.Background()
	est := Estimate{InputTokens: 1000, MaxTokens: 1000}
	n := testing.AllocsPerRun(1000, func() {
		tk, err := g.Admit(ctx, haiku, est, Interactive)
		if err != nil {
			t.Fatal(err)
		}
		tk.Settle(Usage{InputTokens: 1000, OutputTokens: 100})
	})
	if n != 0 {
		t.Errorf("Admit+Settle allocates %v times, want 0", n)
	}
}

func BenchmarkAdmitSettle(b *testing.B) {
	g, _ := newGov(b, known(1<<40))
	ctx := context.Background()
	est := Estimate{InputTokens: 1000, MaxTokens: 1000}
	b.ReportAllocs()
	for b.Loop() {
		tk, err := g.Admit(ctx, haiku, est, Interactive)
		if err != nil {
			b.Fatal(err)
		}
		tk.Settle(Usage{InputTokens: 1000, OutputTokens: 100})
	}
}

func BenchmarkAdmitSettleParallel(b *testing.B) {
	g, _ := newGov(b, known(1<<40))
	ctx := context.Background()
	est := Estimate{InputTokens: 1000, MaxTokens: 1000}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			tk, err := g.Admit(ctx, haiku, est, Interactive)
			if err != nil {
				b.Fatal(err)
			}
			tk.Settle(Usage{InputTokens: 1000, OutputTokens: 100})
		}
	})
}

// TestTierTargetTakesItsModelsQuota: a tier of a target whose quota is
// written has a limiter of its own, starting from that quota; a tier of a
// target with none takes the default.
func TestTierTargetTakesItsModelsQuota(t *testing.T) {
	base := Target{Model: "m", Region: "us-east-1"}
	g, err := New(Options{Targets: map[Target]Quota{base: {TokensPerMinute: 100_000}}})
	if err != nil {
		t.Fatal(err)
	}
	flex := Target{Model: "m", Region: "us-east-1", Tier: "flex"}
	other := Target{Model: "n", Region: "us-east-1", Tier: "flex"}
	for _, tt := range []struct {
		t     Target
		limit int64
	}{{flex, 100_000}, {other, 0}} {
		tk, err := g.Admit(context.Background(), tt.t, Estimate{InputTokens: 10, MaxTokens: 10}, Batch)
		if err != nil {
			t.Fatal(err)
		}
		tk.Cancel()
		st, ok := g.Stats(tt.t)
		if !ok || st.Limit != tt.limit {
			t.Errorf("%s: limit %d (known %v), want %d", tt.t, st.Limit, ok, tt.limit)
		}
	}
	if st, _ := g.Stats(base); st.Target != base {
		t.Errorf("the base target's stats are %s's", st.Target)
	}
}

// TestForgottenLimiter: a call that looked its target up just before the
// target was forgotten does not admit on the forgotten state (its Store
// buckets are gone): Admit looks the target up again.
func TestForgottenLimiter(t *testing.T) {
	a, b := Target{Model: "a", Region: "r"}, Target{Model: "b", Region: "r"}
	g, clk := newGov(t, Options{MaxTargets: 1, Default: Quota{TokensPerMinute: 6000}})
	first := mustTry(t, g, a, Estimate{MaxTokens: 100})
	first.Settle(Usage{InputTokens: 100})
	clk.Advance(2 * time.Minute)
	l := g.limiter(a) // Admit(a) has looked its limiter up...
	g.limiter(b)      // ...when a call to b makes room by forgetting a
	if _, err := l.admit(context.Background(), Estimate{MaxTokens: 5000}, Interactive, time.Time{}); !errors.Is(err, errForgotten) {
		t.Fatalf("admit on the forgotten limiter: %v, want errForgotten", err)
	}
	// Admit looks a up again: b, just made, is not idle, so a is not
	// governed now; nothing touched a forgotten bucket.
	tk, err := g.Admit(context.Background(), a, Estimate{MaxTokens: 5000}, Interactive)
	if err != nil || tk.Governed() {
		t.Fatalf("Admit(a) = %+v, %v; want an ungoverned Ticket", tk, err)
	}
	if n, err := g.StoreErr(); n > 0 {
		t.Errorf("%d Store failures: %v", n, err)
	}
}
