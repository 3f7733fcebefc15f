package admission

import (
	"context"
	"slices"
	"testing"
	"time"
)

// TestProbe: a learning target below its ceiling, with no call in flight,
// whose bucket would keep a call waiting longer than probeEvery, sends one
// call probeEvery after its last grant; a leaked Ticket (past
// flightHorizon) does not count as in flight. A known quota, a limit at its
// ceiling and an empty request bucket do not probe.
func TestProbe(t *testing.T) {
	tests := []struct {
		name  string
		quota Quota
		leak  bool          // a Ticket granted first and never ended
		after time.Duration // after the debt, before asking
		want  bool
	}{
		{name: "in debt, probeEvery later: a probe", quota: Quota{TokensPerMinute: 1000, Learn: true}, after: probeEvery, want: true},
		{name: "in debt, sooner: no probe", quota: Quota{TokensPerMinute: 1000, Learn: true}, after: probeEvery - time.Second},
		{name: "a leaked Ticket does not hold the probe", quota: Quota{TokensPerMinute: 1000, Learn: true}, leak: true,
			after: flightHorizon + time.Minute, want: true},
		{name: "a known quota: no probe", quota: Quota{TokensPerMinute: 1000}, after: probeEvery},
		{name: "at its ceiling: no probe", quota: Quota{TokensPerMinute: 1000, Learn: true, MaxTokensPerMinute: 1000}, after: probeEvery},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, clk := newGov(t, Options{Default: tt.quota})
			if tt.leak {
				mustTry(t, g, haiku, Estimate{InputTokens: 1, MaxTokens: 1})
			}
			tk := mustTry(t, g, haiku, Estimate{InputTokens: 10, MaxTokens: 10})
			tk.Settle(Usage{InputTokens: 100000}) // a debt of 100 minutes' refill
			clk.Advance(tt.after)
			tk, ok, err := g.TryAdmit(haiku, Estimate{InputTokens: 10, MaxTokens: 10}, Interactive)
			if err != nil || ok != tt.want {
				t.Fatalf("TryAdmit = %v, %v; want %v", ok, err, tt.want)
			}
			if ok {
				tk.Cancel()
			}
		})
	}
}

// TestProbeKeepsTheRequestQuota: a learning target called one call at a
// time never goes past its requests per minute, nor past a token limit
// its calls fit in, through probes.
func TestProbeKeepsTheRequestQuota(t *testing.T) {
	tests := []struct {
		name  string
		quota Quota
		max   int // grants allowed in 10 minutes
	}{
		{name: "30 requests a minute", quota: Quota{TokensPerMinute: 600000, Learn: true, RequestsPerMinute: 30}, max: 330},
		{name: "at its ceiling", quota: Quota{TokensPerMinute: 60000, Learn: true, MaxTokensPerMinute: 60000}, max: 70},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, clk := newGov(t, Options{Default: tt.quota})
			n := 0
			for range 600 {
				if tk, ok, _ := g.TryAdmit(haiku, Estimate{InputTokens: 10, MaxTokens: 10000}, Interactive); ok {
					n++
					tk.Settle(Usage{InputTokens: 10, OutputTokens: 10000})
				}
				clk.Advance(time.Second)
			}
			if n > tt.max {
				t.Errorf("%d grants in 10 minutes, want at most %d", n, tt.max)
			}
		})
	}
}

// TestStaleThrottleDoesNotConfirm: a throttle of a call granted before the
// last confirmed throttle does not confirm a new suspicion, even granted at
// the same instant as the suspect.
func TestStaleThrottleDoesNotConfirm(t *testing.T) {
	g, _ := newGov(t, known(60000))
	est := Estimate{MaxTokens: 1000}
	x, y := mustTry(t, g, haiku, est), mustTry(t, g, haiku, est)
	a, b := mustTry(t, g, haiku, est), mustTry(t, g, haiku, est)
	a.Throttled()
	b.Throttled() // confirmed: a new generation
	y.Settle(Usage{InputTokens: 1, OutputTokens: 1})
	c := mustTry(t, g, haiku, Estimate{MaxTokens: 500})
	c.Throttled() // a suspicion
	before := stats(t, g, haiku)
	x.Throttled() // sent before the confirmed throttle: changes nothing
	if s := stats(t, g, haiku); s.Resyncs != before.Resyncs || s.PausedFor != 0 {
		t.Errorf("a stale throttle confirmed: resyncs %d -> %d, paused %v", before.Resyncs, s.Resyncs, s.PausedFor)
	}
}

// TestProbeThrottleIsNoStrike: a probe goes whatever the bucket holds, so
// Bedrock throttling it says nothing the Governor did not assume: it does
// not count toward the pause, and the next probe goes probeEvery later.
// Counted, the probes sent into a debt doubled the pause up to 32 s, which
// then outlasted the debt (keel bench learn's tight case sent nothing for
// 17-35 s while the bucket held room). Calls granted on room that are
// throttled still pause.
func TestProbeThrottleIsNoStrike(t *testing.T) {
	tests := []struct {
		name  string
		debt  bool            // the bucket is 100 minutes in debt: every call is a probe
		every time.Duration   // between calls
		want  []time.Duration // the pause after each throttle
	}{
		{name: "probes", debt: true, every: probeEvery, want: []time.Duration{0, 0, 0, 0, 0, 0}},
		{name: "calls on room", every: 2 * time.Minute, want: []time.Duration{0, 0, 0, time.Second, 0, 2 * time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, clk := newGov(t, Options{Default: Quota{TokensPerMinute: 1000, Learn: true}})
			if tt.debt {
				tk := mustTry(t, g, haiku, Estimate{InputTokens: 10, MaxTokens: 10})
				tk.Settle(Usage{InputTokens: 100000})
			}
			var got []time.Duration
			for range tt.want {
				clk.Advance(tt.every)
				tk := mustTry(t, g, haiku, Estimate{InputTokens: 10, MaxTokens: 10})
				tk.Throttled()
				got = append(got, stats(t, g, haiku).PausedFor.Round(time.Second))
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("pauses %v, want %v", got, tt.want)
			}
		})
	}
}

// TestProbeForgivesTheDebt: a probe that gets through shows that Bedrock's
// bucket was not in the Governor's debt: the level goes up to zero, or to
// what the probe cost beyond its hold; a probe throttled forgives nothing,
// nor one granted before a later confirmed throttle, and a debt taken on
// after the probe was granted (another process's, through a shared Store)
// stays.
func TestProbeForgivesTheDebt(t *testing.T) {
	tests := []struct {
		name    string
		between func(g *Governor) // after the probe is granted
		end     func(tk *Ticket)
		want    func(hold int64) (lo, hi int64) // the level after it
	}{
		{name: "a debt taken on since stays", between: func(g *Governor) {
			g.store.Give(context.Background(), haiku, g.clk.Now(), -30000, 0)
		}, end: func(tk *Ticket) { tk.Settle(Usage{InputTokens: 10, OutputTokens: 10}) },
			want: func(hold int64) (int64, int64) { return hold - 20 - 30000, hold - 20 - 30000 }}, // Bedrock held the hold, the probe cost 20
		{name: "granted before a confirmed throttle: the debt stays", between: func(g *Governor) {
			g.Throttled(haiku)
		}, end: func(tk *Ticket) { tk.Settle(Usage{InputTokens: 10, OutputTokens: 10}) },
			want: func(int64) (int64, int64) { return -100000, -90000 }},
		{name: "through: no debt left", end: func(tk *Ticket) { tk.Settle(Usage{InputTokens: 10, OutputTokens: 10}) },
			want: func(int64) (int64, int64) { return 0, 0 }},
		{name: "through, costing more than it held: that much debt", end: func(tk *Ticket) { tk.Settle(Usage{InputTokens: 10, OutputTokens: 5000}) },
			want: func(hold int64) (int64, int64) { return hold - 5010, hold - 5010 }},
		{name: "throttled: the debt stays", end: func(tk *Ticket) { tk.Throttled() },
			want: func(int64) (int64, int64) { return -100000, -90000 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, clk := newGov(t, Options{Default: Quota{TokensPerMinute: 1000, Learn: true}})
			tk := mustTry(t, g, haiku, Estimate{InputTokens: 10, MaxTokens: 10})
			tk.Settle(Usage{InputTokens: 100000}) // a debt of 100 minutes' refill
			clk.Advance(probeEvery)
			tk = mustTry(t, g, haiku, Estimate{InputTokens: 10, MaxTokens: 10})
			if !tk.probe {
				t.Fatal("the call after the debt is not a probe")
			}
			hold := int64(tk.hold)
			if tt.between != nil {
				tt.between(g)
			}
			tt.end(&tk)
			lo, hi := tt.want(hold)
			if a := stats(t, g, haiku).Available; a < lo || a > hi {
				t.Errorf("available %d after the probe (hold %d); want %d to %d", a, hold, lo, hi)
			}
		})
	}
}
