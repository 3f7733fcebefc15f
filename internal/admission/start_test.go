package admission

import (
	"context"
	"testing"
	"time"
)

// TestStartWindow: while a target's quota is unknown and no throttle has
// been confirmed, a Batch call goes only while fewer calls in flight are
// younger than a throttle's round trip than have got past it (one may go
// when none is young): the calls a run starts at once go in rounds that
// double, and a bucket that starts empty throttles the first round, not
// all of them. Interactive calls are not held; a known quota or a learned
// limit ends the window.
func TestStartWindow(t *testing.T) {
	tests := []struct {
		name  string
		quota int             // a known quota (0: unknown)
		first Class           // the class of the calls sent at once
		gaps  []time.Duration // before each round: how long the clock moves
		want  []int           // Batch calls granted at once in each round
	}{
		{name: "unknown: rounds that double", first: Batch,
			gaps: []time.Duration{0, startRound, startRound, startRound, startRound},
			want: []int{1, 1, 2, 4, 8}},
		{name: "unknown: a round not yet past the check holds the next", first: Batch,
			gaps: []time.Duration{0, startRound / 2, startRound / 2},
			want: []int{1, 0, 1}},
		{name: "unknown: Interactive calls in flight count as young", first: Interactive,
			gaps: []time.Duration{0, startRound},
			want: []int{0, 4}},
		{name: "a known quota: no window", quota: 1_000_000, first: Batch,
			gaps: []time.Duration{0}, want: []int{20}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := Options{}
			if tt.quota > 0 {
				o.Default = Quota{TokensPerMinute: tt.quota}
			}
			g, clk := newGov(t, o)
			if tt.first == Interactive {
				for range 4 {
					mustTry(t, g, haiku, Estimate{MaxTokens: 100}) // not held: Interactive
				}
			}
			for i, gap := range tt.gaps {
				clk.Advance(gap)
				n := 0
				for range 20 {
					tk, ok, err := g.TryAdmit(haiku, Estimate{MaxTokens: 100}, Batch)
					if err != nil {
						t.Fatal(err)
					}
					if !ok {
						break
					}
					_ = tk
					n++
				}
				if n != tt.want[i] {
					t.Fatalf("round %d: %d Batch calls granted at once, want %d", i, n, tt.want[i])
				}
			}
		})
	}
}

// TestStartWindowWakes: a Batch call held by the window is granted when the
// call ahead of it has been in flight for a throttle's round trip, and a
// confirmed throttle ends the window: the limit learned from it governs.
func TestStartWindowWakes(t *testing.T) {
	t.Run("granted at the round trip", bubble(func(t *testing.T) {
		g, clk := newBubbleGov(t, Options{})
		first, ok, err := g.TryAdmit(haiku, Estimate{MaxTokens: 100}, Batch)
		if err != nil || !ok {
			t.Fatalf("TryAdmit = %v, %v; want admitted", ok, err)
		}
		defer first.Cancel()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		ch := make(chan result, 1)
		start := time.Now()
		admitAsync(ctx, g, haiku, Estimate{MaxTokens: 100}, Batch, "second", ch)
		waitQueued(t, g, haiku, 0, 1)
		clk.Advance(startRound)
		r := recv(t, ch)
		if r.err != nil {
			t.Fatalf("Admit = %v, want admitted", r.err)
		}
		if got := time.Since(start); !near(got, startRound) {
			t.Errorf("granted after %v, want %v", got, startRound)
		}
	}))
	t.Run("a confirmed throttle ends it", func(t *testing.T) {
		g, clk := newGov(t, Options{})
		confirmClass(t, g, 1000, Batch) // a first limit of 12,000 a minute
		clk.Advance(time.Second)        // 200 tokens refilled
		if _, ok, _ := g.TryAdmit(haiku, Estimate{MaxTokens: 10}, Batch); !ok {
			t.Fatal("the scout after the throttle was not admitted")
		}
		clk.Advance(throttleSlack) // the scout got through; the window would let one more go
		n := 0
		for range 4 {
			if _, ok, _ := g.TryAdmit(haiku, Estimate{MaxTokens: 10}, Batch); ok {
				n++
			}
		}
		if n != 4 {
			t.Errorf("%d of 4 Batch calls of 10 tokens granted at once after the scout, want 4", n)
		}
	})
}
