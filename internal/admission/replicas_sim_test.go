package admission

import (
	"testing"
	"time"

	"github.com/keel-run/keel/internal/clock"
	"github.com/keel-run/keel/internal/emulator/quota"
)

// TestSharedWarmUp: Governors sharing a Store each warm up (see warm); a
// throttle that one confirms ends every one's warm-up, since the bucket
// they share is spent: the others no longer lend on a full start's bucket.
func TestSharedWarmUp(t *testing.T) {
	tests := []struct {
		name     string
		throttle bool // A confirms a throttle
		wantLent bool // B's Interactive call beyond the level goes at once
	}{
		{name: "warming up", wantLent: true},
		{name: "after another's confirmed throttle", throttle: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := clock.NewFake(t0)
			st := &MemStore{}
			o := Options{Default: Quota{TokensPerMinute: 60000}, Clock: clk, Store: st, Rand: func() float64 { return 0.5 }}
			a, err := New(o)
			if err != nil {
				t.Fatal(err)
			}
			b, err := New(o)
			if err != nil {
				t.Fatal(err)
			}
			if tt.throttle {
				confirm(t, a, 10) // the two calls are lent, and throttled
			}
			tk, ok, err := b.TryAdmit(haiku, Estimate{MaxTokens: 5000}, Interactive) // the level holds 1,000
			if err != nil || ok != tt.wantLent {
				t.Fatalf("B's Interactive call of 5,000 admitted at once: %v (%v), want %v; A: %+v", ok, err, tt.wantLent, stats(t, a, haiku))
			}
			if ok {
				tk.Cancel()
			}
		})
	}
}

// TestReplicasStart runs the simulation with four Governors that share one
// Store, as replicas sharing a Redis do, calls dealt to them in turn, all
// starting together on a spent quota (as keel bench quota --replicas
// starts them), beside one Governor alone (docs/governor.md has the
// figures).
func TestReplicasStart(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("simulation")
	}
	const q = 1_000_000
	spent := &quota.Shape{Burst: time.Minute}
	tests := []struct {
		name     string
		replicas int
		offered  float64
	}{
		{"one, 2x", 1, 2},
		{"four, 2x", 4, 2},
		{"one, 0.8x", 1, 0.8},
		{"four, 0.8x", 4, 0.8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := simulate(t, simConfig{quota: q, offered: tt.offered, gov: Options{Default: Quota{TokensPerMinute: q}},
				duration: 3 * time.Minute, warmup: 45 * time.Second, seed: 7, shape: spent, replicas: tt.replicas})
			r.log(t)
			t.Logf("  throttled attempts sent at %v", r.firstThr)
			// Issue 19's bound at 2x is 1 per 100; the simulation's
			// tokenizer counts 1.3 tokens per 4 bytes, beyond the
			// estimates' starting margin, which each replica learns
			// apart (docs/governor.md).
			if thr := float64(r.throttled) / float64(r.sent); thr > 0.03 {
				t.Errorf("throttles %.4f of attempts, want ≤ 0.03", thr)
			}
		})
	}
}
