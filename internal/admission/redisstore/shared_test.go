package redisstore_test

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/keel-run/keel/internal/admission"
	"github.com/keel-run/keel/internal/admission/redisstore"
	"github.com/keel-run/keel/internal/clock"
	"github.com/keel-run/keel/internal/redisx"
	"github.com/keel-run/keel/internal/redisx/redistest"
)

// replicas returns two Governors with quota q on one fake clock, sharing
// one Redis through stores of their own (as two processes would), and the
// first's store.
func replicas(t *testing.T, q admission.Quota) (a, b *admission.Governor, st *redisstore.Store, clk *clock.Fake) {
	t.Helper()
	srv := redistest.Start(t)
	clk = clock.NewFake(t0)
	var gs [2]*admission.Governor
	var sts [2]*redisstore.Store
	for i := range gs {
		c, err := redisx.Open(context.Background(), redisx.Options{URL: srv.URL, Logger: quiet, Timeout: slack})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		sts[i] = redisstore.New(c, redisstore.Options{CallerTime: true})
		gs[i], err = admission.New(admission.Options{Default: q, FullStart: true, MaxWait: time.Millisecond, Clock: clk, Store: sts[i],
			Rand: func() float64 { return 0.5 }})
		if err != nil {
			t.Fatal(err)
		}
	}
	return gs[0], gs[1], sts[0], clk
}

func admit(t *testing.T, g *admission.Governor, maxTok int) admission.Ticket {
	t.Helper()
	tk, err := g.Admit(context.Background(), target, admission.Estimate{MaxTokens: maxTok}, admission.Interactive)
	if err != nil {
		t.Fatalf("Admit: %v", err)
	}
	return tk
}

// TestSharedLimit: a limit one Governor learns from throttles is the
// other's too.
func TestSharedLimit(t *testing.T) {
	a, b, _, clk := replicas(t, admission.Quota{})
	b0 := admit(t, b, 1000)
	b0.Cancel()
	if s, _ := b.Stats(target); s.Limit != 0 {
		t.Fatalf("B's limit %d before any throttle; want 0 (unknown)", s.Limit)
	}
	a1, a2 := admit(t, a, 1000), admit(t, a, 1000)
	a1.Throttled()
	a2.Throttled() // confirms the first: A sets a first limit
	sa, _ := a.Stats(target)
	if sa.Limit == 0 {
		t.Fatal("A learned no limit from two throttles")
	}
	sb, _ := b.Stats(target)
	if sb.Limit != sa.Limit {
		t.Fatalf("B's limit %d; want A's %d", sb.Limit, sa.Limit)
	}
	// B uses it: the first limit's bucket starts empty, so a call waits.
	if _, err := b.Admit(context.Background(), target, admission.Estimate{MaxTokens: 1000}, admission.Interactive); !errors.Is(err, admission.ErrWouldExceedDeadline) {
		t.Fatalf("B's Admit under A's limit: %v; want ErrWouldExceedDeadline", err)
	}
	// And B's learner takes it up as its own: a large call that gets
	// through a Recovery later grows the limit along A's CUBIC curve (to
	// 2 − Decrease times it), not from B's unknown quota (which would take
	// it to twice what B used).
	clk.Advance(admission.DefaultRecovery)
	b1 := admit(t, b, 1000)
	b1.Settle(admission.Usage{InputTokens: 10, OutputTokens: 5000})
	want := int64(math.Round(float64(sa.Limit) * (2 - admission.DefaultDecrease)))
	if sb, _ := b.Stats(target); sb.Limit != want {
		t.Fatalf("B's limit %d after a large call; want %d, on the curve of A's %d", sb.Limit, want, sa.Limit)
	}
}

// TestSharedEpisode: two Governors throttled in one episode empty the
// shared bucket once; the second joins the first's episode.
func TestSharedEpisode(t *testing.T) {
	tests := []struct {
		name       string
		gap        time.Duration // between A's confirmed throttle and B's
		wantDrains uint64
		wantB      int64 // B's resyncs and decreases
	}{
		{name: "one episode", gap: time.Second, wantDrains: 1, wantB: 0},
		{name: "two episodes", gap: 10 * time.Second, wantDrains: 2, wantB: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b, st, clk := replicas(t, admission.Quota{TokensPerMinute: 60000})
			a1, a2 := admit(t, a, 1000), admit(t, a, 1000)
			b1, b2 := admit(t, b, 1000), admit(t, b, 1000)
			a1.Throttled()
			b1.Throttled()
			a2.Throttled() // A confirms, and empties the shared bucket
			clk.Advance(tt.gap)
			b2.Throttled() // B confirms
			lv, err := st.Level(context.Background(), target, clk.Now())
			if err != nil {
				t.Fatal(err)
			}
			sa, _ := a.Stats(target)
			sb, _ := b.Stats(target)
			if lv.Drains != tt.wantDrains || sa.Resyncs+sa.Decreases != 1 || sb.Resyncs+sb.Decreases != tt.wantB {
				t.Fatalf("drains %d, A reacted %d times, B %d; want %d, 1, %d", lv.Drains, sa.Resyncs+sa.Decreases, sb.Resyncs+sb.Decreases, tt.wantDrains, tt.wantB)
			}
		})
	}
}
