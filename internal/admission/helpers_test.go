package admission

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/keel-run/keel/internal/clock"
)

// t0 is where newGov's clock.Fake starts. Nothing compares it with the wall
// clock; tests in synctest bubbles start at the bubble's own time instead.
var t0 = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

// Targets used across tests: Claude 3 Haiku burns output 1:1 and reserves
// 4096 output tokens by default; Claude Sonnet 4 burns 5:1 and reserves 64000.
var (
	haiku  = Target{Model: "anthropic.claude-3-haiku-20240307-v1:0", Region: "us-east-1"}
	sonnet = Target{Model: "us.anthropic.claude-sonnet-4-20250514-v1:0", Region: "us-east-1"}
)

// newGov returns a Governor on a fake clock that only the test's goroutine
// moves. A test whose calls wait in other goroutines, or that needs a real
// context deadline, runs in a synctest bubble with newBubbleGov instead.
func newGov(t testing.TB, o Options) (*Governor, *clock.Fake) {
	t.Helper()
	clk := clock.NewFake(t0)
	o.Clock = clk
	return build(t, o), clk
}

// newBubbleGov returns a Governor for a test that runs in a synctest
// bubble: on clock.Real, which reads the bubble's clock, so that real
// context deadlines and the Governor's timers follow the same time.
func newBubbleGov(t testing.TB, o Options) (*Governor, bubbleClock) {
	t.Helper()
	o.Clock = clock.Real{}
	return build(t, o), bubbleClock{}
}

// build returns New(o), with the cool-down jitter fixed at its mean unless
// o sets Rand, and known quotas' buckets starting full (FullStart): the
// tests of warm-up build their Governor with New.
func build(t testing.TB, o Options) *Governor {
	t.Helper()
	o.FullStart = true
	if o.Rand == nil {
		o.Rand = func() float64 { return 0.5 }
	}
	g, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return g
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

// mustTry admits est at once or fails the test.
func mustTry(t testing.TB, g *Governor, tg Target, est Estimate) Ticket {
	t.Helper()
	tk, ok, err := g.TryAdmit(tg, est, Interactive)
	if err != nil || !ok {
		t.Fatalf("TryAdmit(%+v) = %v, %v; want admitted", est, ok, err)
	}
	return tk
}

// bubble returns f to run in a synctest bubble: t.Run(name, bubble(f)).
func bubble(f func(t *testing.T)) func(t *testing.T) {
	return func(t *testing.T) { synctest.Test(t, f) }
}

// bubbleClock moves a synctest bubble's time from the test's goroutine.
type bubbleClock struct{}

// Now returns the bubble's time.
func (bubbleClock) Now() time.Time { return time.Now() }

// Advance lets d pass: the test's goroutine sleeps, which in a bubble
// takes no real time (the clock jumps to each timer as soon as every
// goroutine is blocked), then waits until the goroutines woken on the way
// are blocked again.
func (bubbleClock) Advance(d time.Duration) {
	time.Sleep(d)
	synctest.Wait()
}

// near reports whether a queued call's wait got is want to the
// millisecond. On the bubble's clock a call is granted the moment its
// tokens and request are within eps/2 of what it needs (see readyAt): at the
// rates the tests use, up to half a millisecond before they are all there.
func near(got, want time.Duration) bool {
	return (got - want).Abs() <= time.Millisecond
}

// waitQueued waits until every goroutine of the test's bubble is blocked,
// then checks that tg has the given numbers of calls queued per class.
func waitQueued(t testing.TB, g *Governor, tg Target, interactive, batch int) {
	t.Helper()
	synctest.Wait()
	if s, ok := g.Stats(tg); !ok || s.Classes[Interactive].Queued != interactive || s.Classes[Batch].Queued != batch {
		t.Fatalf("queued %+v, want %d interactive, %d batch", s.Classes, interactive, batch)
	}
}

// recv waits until every goroutine of the test's bubble is blocked, then
// returns what an Admit reported on ch; it fails the test when none has
// returned (a call queued that should have been refused or granted).
func recv(t testing.TB, ch <-chan result) result {
	t.Helper()
	synctest.Wait()
	select {
	case r := <-ch:
		return r
	default:
		t.Fatal("Admit did not return: still queued")
	}
	return result{}
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

// throttle admits a call that fits at once and ends it as throttled: a
// suspicion, or the quota signal that confirms one (see suspect).
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
