package admission

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/keel-run/keel/internal/clock"
)

var t0 = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

// Targets used across tests: Claude 3 Haiku burns output 1:1 and reserves
// 4096 output tokens by default; Claude Sonnet 4 burns 5:1 and reserves 64000.
var (
	haiku  = Target{Model: "anthropic.claude-3-haiku-20240307-v1:0", Region: "us-east-1"}
	sonnet = Target{Model: "us.anthropic.claude-sonnet-4-20250514-v1:0", Region: "us-east-1"}
)

// newGov returns a Governor on a fake clock, with the cool-down jitter fixed
// at its mean.
func newGov(t testing.TB, o Options) (*Governor, *clock.Fake) {
	t.Helper()
	clk := clock.NewFake(t0)
	o.Clock = clk
	if o.Rand == nil {
		o.Rand = func() float64 { return 0.5 }
	}
	g, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return g, clk
}

func known(tpm int) Options { return Options{Default: Quota{TokensPerMinute: tpm}} }

func stats(t testing.TB, g *Governor, tg Target) Stats {
	t.Helper()
	s, ok := g.Stats(tg)
	if !ok {
		t.Fatalf("no stats for %s", tg)
	}
	return s
}

// fakeDeadline is a context whose deadline is read from the fake clock: it
// reports d but is never done by itself.
type fakeDeadline struct {
	context.Context
	d time.Time
}

func (c fakeDeadline) Deadline() (time.Time, bool) { return c.d, true }

func withDeadline(parent context.Context, d time.Time) context.Context {
	return fakeDeadline{parent, d}
}

// mustTry admits est at once or fails the test.
func mustTry(t testing.TB, g *Governor, tg Target, est Estimate) Ticket {
	t.Helper()
	tk, ok, err := g.TryAdmit(tg, est, Interactive)
	if err != nil || !ok {
		t.Fatalf("TryAdmit(%+v) = %v, %v; want admitted", est, ok, err)
	}
	return tk
}

// waitQueued spins until tg has the given numbers of calls queued per class.
func waitQueued(t testing.TB, g *Governor, tg Target, interactive, batch int) {
	t.Helper()
	for i := 0; ; i++ {
		s, ok := g.Stats(tg)
		if ok && s.Classes[Interactive].Queued == interactive && s.Classes[Batch].Queued == batch {
			return
		}
		if i > 10_000_000 {
			t.Fatalf("queues never reached %d interactive, %d batch: %+v", interactive, batch, s.Classes)
		}
		runtime.Gosched()
	}
}

type result struct {
	name string
	tk   Ticket
	err  error
}

// admitAsync runs Admit in a goroutine and reports on ch.
func admitAsync(ctx context.Context, g *Governor, tg Target, est Estimate, c Class, name string, ch chan<- result) {
	go func() {
		tk, err := g.Admit(ctx, tg, est, c)
		ch <- result{name: name, tk: tk, err: err}
	}()
}

// throttle admits a call that fits at once and ends it as throttled.
func throttle(t testing.TB, g *Governor, tg Target, est Estimate) {
	t.Helper()
	tk := mustTry(t, g, tg, est)
	tk.Throttled()
}

// spend empties tokens from tg's bucket with a call that settles at once
// what it held (a Claude 3 Haiku target, burndown 1), so that no call stays
// in flight to age (see slowReply).
func spend(t testing.TB, g *Governor, tg Target, tokens int) {
	t.Helper()
	tk := mustTry(t, g, tg, Estimate{MaxTokens: tokens})
	tk.Settle(Usage{InputTokens: 1, OutputTokens: tokens - 1})
}
