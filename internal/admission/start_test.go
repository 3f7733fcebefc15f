package admission

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/keel-run/keel/internal/clock"
)

// TestStartWindow: while a target's quota is unknown and no throttle has
// been confirmed, a Batch call goes only while fewer calls in flight are
// younger than a throttle's round trip than have got past it (one may go
// when none is young): the calls a run starts at once go in rounds that
// double, and a bucket that starts empty throttles the first round, not
// all of them. Calls that settled count as past the check, calls throttled
// or cancelled do not. Interactive calls are not held; a known quota or a
// learned limit ends the window.
func TestStartWindow(t *testing.T) {
	tests := []struct {
		name  string
		quota int             // a known quota (0: unknown)
		first Class           // the class of the calls sent at once
		gaps  []time.Duration // before each round: how long the clock moves
		end   string          // what each round's calls do at its end: "" stay in flight, "settle", "cancel"
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
		{name: "unknown: settled calls count as past the check", first: Batch, end: "settle",
			gaps: []time.Duration{0, 0, 0, 0}, want: []int{1, 1, 2, 4}},
		{name: "unknown: cancelled calls do not", first: Batch, end: "cancel",
			gaps: []time.Duration{0, 0, 0}, want: []int{1, 1, 1}},
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
				var round []Ticket
				for range 20 {
					tk, ok, err := g.TryAdmit(haiku, Estimate{MaxTokens: 100}, Batch)
					if err != nil {
						t.Fatal(err)
					}
					if !ok {
						break
					}
					round = append(round, tk)
				}
				if len(round) != tt.want[i] {
					t.Fatalf("round %d: %d Batch calls granted at once, want %d", i, len(round), tt.want[i])
				}
				for _, tk := range round {
					switch tt.end {
					case "settle":
						tk.Settle(Usage{InputTokens: 1, OutputTokens: 1})
					case "cancel":
						tk.Cancel()
					}
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
		g, clk, ctx, ch := heldBatch(t, 1)
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
	t.Run("Interactive calls go past a Batch call it holds", bubble(func(t *testing.T) {
		g, _, ctx, ch := heldBatch(t, 2*DefaultBatchEvery+1)
		admitAsync(ctx, g, haiku, Estimate{MaxTokens: 100}, Batch, "batch", ch)
		waitQueued(t, g, haiku, 0, 1)
		for range 2 * DefaultBatchEvery {
			admitAsync(ctx, g, haiku, Estimate{MaxTokens: 100}, Interactive, "interactive", ch)
		}
		synctest.Wait()
		for range 2 * DefaultBatchEvery {
			if r := recv(t, ch); r.err != nil || r.name != "interactive" {
				t.Fatalf("%s: Admit = %v; want the Interactive calls granted at once", r.name, r.err)
			}
		}
		waitQueued(t, g, haiku, 0, 1) // the Batch call still waits for the round
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

// heldBatch returns a Governor on an unknown quota in a synctest bubble with
// one Batch call in flight (cancelled at the test's end), so that the next
// Batch call waits for the window's round; a context for the calls of the
// test, and a channel for n of their results.
func heldBatch(t *testing.T, n int) (*Governor, bubbleClock, context.Context, chan result) {
	t.Helper()
	g, clk := newBubbleGov(t, Options{})
	first, ok, err := g.TryAdmit(haiku, Estimate{MaxTokens: 100}, Batch)
	if err != nil || !ok {
		t.Fatalf("TryAdmit = %v, %v; want admitted", ok, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(func() {
		cancel()
		first.Cancel()
	})
	return g, clk, ctx, make(chan result, n)
}

// BenchmarkStartWindowAfterCancels measures a Batch call's admission and
// cancel while the quota is unknown, after 100,000 calls ended without
// settling behind one long call still in flight: their slots stay in the
// flight, and the window looks at no more than startScan of them.
func BenchmarkStartWindowAfterCancels(b *testing.B) {
	g, clk := newGov(b, Options{})
	long := mustTry(b, g, haiku, Estimate{MaxTokens: 100})
	defer long.Cancel()
	for range 100_000 {
		tk := mustTry(b, g, haiku, Estimate{MaxTokens: 100})
		tk.Cancel()
	}
	clk.Advance(time.Second)
	b.ReportAllocs()
	for b.Loop() {
		tk, ok, err := g.TryAdmit(haiku, Estimate{MaxTokens: 100}, Batch)
		if err != nil || !ok {
			b.Fatalf("TryAdmit = %v, %v; want admitted", ok, err)
		}
		tk.Cancel()
	}
}

// TestStartSuspect: while the quota is unknown, a throttle is judged by the
// calls granted after it that are still undecided (in flight for less than
// a throttle's round trip). The window holds Batch calls until they are
// decided, and a throttle that would confirm the first waits for them too:
// when confirmPasses of them get through, both throttles were noise, and
// the quota stays unknown; when they cannot, the throttle is confirmed and
// sets the first limit. Interactive calls are not held.
func TestStartSuspect(t *testing.T) {
	tests := []struct {
		name  string
		pin   bool   // a call in flight from before 2 × startScan calls that settled
		calls int    // Interactive calls granted at once, the first two throttled in order; the third holds 5,000
		fate  string // what the others do after the second throttle: "throttle" the third, "pass" (the clock moves past their round trip), "" nothing
		// want: a limit after the second throttle, and after the fate;
		// the limit (0: any); noise; the suspect's place in flight (-1: none)
		limitAtOnce, limitAfter bool
		limit                   int64
		noise                   int64
		suspect                 int
	}{
		{name: "fewer calls between than confirmPasses: confirmed at once", calls: 2 + confirmPasses - 1,
			limitAtOnce: true, limitAfter: true, suspect: -1},
		// The second throttle becomes the suspect: the calls after it
		// got through too, which the next throttle reads.
		{name: "enough undecided calls between: held, then noise when they pass", calls: 2 + confirmPasses, fate: "pass",
			noise: 1, suspect: 1},
		// The held throttle's hold, 100, is counted in the first limit,
		// not the third's 5,000: the calls in flight hold 200 + 5,000
		// less the third's, (200 + 100) × 60 s/60.01 s, below the floor.
		{name: "held, then confirmed by a third throttle, with its own figures", calls: 2 + confirmPasses, fate: "throttle",
			limitAfter: true, limit: DefaultFloor, suspect: -1},
		{name: "held until the calls between are decided", calls: 2 + confirmPasses, suspect: 0},
		{name: "a call in flight from long before does not hide the calls between", pin: true, calls: 2 + confirmPasses,
			suspect: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, clk := newGov(t, Options{})
			if tt.pin {
				pinned := mustTry(t, g, haiku, Estimate{MaxTokens: 100})
				defer pinned.Cancel()
				for range 2 * startScan {
					spend(t, g, haiku, 1)
				}
			}
			var tks []Ticket
			for i := range tt.calls {
				tokens := 100
				if i == 2 {
					tokens = 5000
				}
				tks = append(tks, mustTry(t, g, haiku, Estimate{MaxTokens: tokens}))
			}
			base := tks[0].seq
			clk.Advance(10 * time.Millisecond)
			tks[0].Throttled()
			tks[1].Throttled()
			if got := stats(t, g, haiku).Limit > 0; got != tt.limitAtOnce {
				t.Fatalf("a limit after the second throttle: %v, want %v", got, tt.limitAtOnce)
			}
			switch tt.fate {
			case "throttle":
				tks[2].Throttled()
			case "pass":
				clk.Advance(time.Second)
				if _, ok, _ := g.TryAdmit(haiku, Estimate{MaxTokens: 100}, Batch); !ok {
					t.Error("a Batch call after the calls passed was not granted")
				}
			}
			s := stats(t, g, haiku)
			if got := s.Limit > 0; got != tt.limitAfter || (tt.limit > 0 && s.Limit != tt.limit) {
				t.Errorf("a limit at the end: %v (%d), want %v (%d)", got, s.Limit, tt.limitAfter, tt.limit)
			}
			if s.Noise != tt.noise {
				t.Errorf("noise %d, want %d", s.Noise, tt.noise)
			}
			l := g.limiter(haiku)
			l.mu.Lock()
			sp := l.suspicion
			l.mu.Unlock()
			if got := map[bool]int{true: int(sp.seq - base), false: -1}[sp.active]; got != tt.suspect {
				t.Errorf("the suspect: %d, want %d", got, tt.suspect)
			}
		})
	}
}

// TestStartSuspectHolds: a suspect throttle on an unknown quota holds the
// window's Batch calls while the calls granted after it are undecided, for
// one round at most.
func TestStartSuspectHolds(t *testing.T) {
	g, clk := newGov(t, Options{})
	a := mustTryClass(t, g, Batch)
	clk.Advance(startRound)
	mustTryClass(t, g, Batch) // the second round: one call
	clk.Advance(startRound)
	a.Throttled() // the suspect: the second call is undecided for a throttle's round trip
	if _, ok, _ := g.TryAdmit(haiku, Estimate{MaxTokens: 100}, Batch); ok {
		t.Fatal("a Batch call went while the call after the suspect was undecided")
	}
	mustTry(t, g, haiku, Estimate{MaxTokens: 100}) // Interactive: not held, and undecided for 200 ms
	clk.Advance(startRound - time.Nanosecond)
	if _, ok, _ := g.TryAdmit(haiku, Estimate{MaxTokens: 100}, Batch); ok {
		t.Fatal("a Batch call went within the round after the suspect")
	}
	clk.Advance(time.Nanosecond) // the round is over: the window holds no longer
	mustTryClass(t, g, Batch)
}

// TestStartSuspectCleared: calls granted after a suspect throttle that
// settle at once clear it: after confirmPasses of them the window no
// longer holds a Batch call for a young one.
func TestStartSuspectCleared(t *testing.T) {
	g, clk := newGov(t, Options{})
	a := mustTryClass(t, g, Batch)
	clk.Advance(startRound)
	a.Throttled()
	for i := range confirmPasses {
		tk, ok, err := g.TryAdmit(haiku, Estimate{MaxTokens: 100}, Batch)
		if err != nil || !ok {
			t.Fatalf("call %d after the suspect: TryAdmit = %v, %v; want admitted", i, ok, err)
		}
		tk.Settle(Usage{InputTokens: 1, OutputTokens: 1}) // before its throttle could have come back
	}
	mustTryClass(t, g, Batch) // young, in flight
	mustTryClass(t, g, Batch) // not held for it: the suspicion is cleared
}

func mustTryClass(t testing.TB, g *Governor, c Class) Ticket {
	t.Helper()
	tk, ok, err := g.TryAdmit(haiku, Estimate{MaxTokens: 100}, c)
	if err != nil || !ok {
		t.Fatalf("TryAdmit = %v, %v; want admitted", ok, err)
	}
	return tk
}

// TestStartSuspectWakes: through Admit, a Batch call waiting behind a held
// throttle is granted when the window's round after the suspect is over,
// and the held throttle is decided by time alone: the calls between got
// through, so the suspect was noise.
func TestStartSuspectWakes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, clk := newBubbleGov(t, Options{})
		var tks []Ticket
		for range 2 + confirmPasses {
			tks = append(tks, mustTry(t, g, haiku, Estimate{MaxTokens: 100}))
		}
		t.Cleanup(func() {
			for i := range tks[2:] {
				tks[2+i].Cancel()
			}
		})
		clk.Advance(10 * time.Millisecond)
		tks[0].Throttled()
		tks[1].Throttled() // held: three calls between are undecided for 65 ms after their grant
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		ch := make(chan result, 2)
		admitAsync(ctx, g, haiku, Estimate{MaxTokens: 100}, Batch, "first", ch)
		waitQueued(t, g, haiku, 0, 1)
		clk.Advance(startRound - time.Millisecond)
		waitQueued(t, g, haiku, 0, 1)
		clk.Advance(time.Millisecond)
		if r := recv(t, ch); r.err != nil {
			t.Fatalf("Admit = %v, want granted after the round", r.err)
		}
		if s := stats(t, g, haiku); s.Noise != 0 || s.Limit != 0 {
			t.Fatalf("noise %d, limit %d after the round; want 0, none: still held", s.Noise, s.Limit)
		}
		wait := g.limiter(haiku).throttleWait()
		clk.Advance(wait - 10*time.Millisecond - startRound) // the calls between get through
		admitAsync(ctx, g, haiku, Estimate{MaxTokens: 100}, Batch, "second", ch)
		if r := recv(t, ch); r.err != nil {
			t.Fatalf("Admit = %v, want granted", r.err)
		}
		if s := stats(t, g, haiku); s.Noise != 1 || s.Limit != 0 {
			t.Errorf("noise %d, limit %d; want 1, none", s.Noise, s.Limit)
		}
	})
}

// twoRounds opens an unknown quota's window with two rounds of one Batch
// call each, in flight until the test ends, so that the third round may
// grant two calls at one instant.
func twoRounds(t *testing.T, g *Governor, clk *clock.Fake) {
	t.Helper()
	for range 2 {
		tk := mustTryClass(t, g, Batch)
		t.Cleanup(tk.Cancel)
		clk.Advance(startRound)
	}
}

// TestStartSuspectWaitsForItsRound: the calls of a round are granted at
// one instant, so a call granted with the suspect but before it may come
// back throttled after it, and confirms it (see suspect). The window holds
// its Batch calls for such a call as for those granted after the suspect:
// the next call would only be throttled too. On the 1 s bucket the round
// that ran it dry had two calls; the call the window sent after the first
// throttle made a third throttle where two confirmed the first limit.
func TestStartSuspectWaitsForItsRound(t *testing.T) {
	g, clk := newGov(t, Options{})
	twoRounds(t, g, clk)
	a := mustTryClass(t, g, Batch) // round 3: two calls at once
	b := mustTryClass(t, g, Batch)
	b.Throttled() // the suspect; a is undecided
	if tk, ok, _ := g.TryAdmit(haiku, Estimate{MaxTokens: 100}, Batch); ok {
		tk.Cancel()
		t.Fatal("a Batch call went while a call granted with the suspect was undecided")
	}
	a.Throttled() // confirms it
	if s := stats(t, g, haiku); s.Throttles != 2 || s.Limit == 0 || s.Noise != 0 {
		t.Errorf("throttles %d, limit %d, noise %d; want 2, a first limit, 0", s.Throttles, s.Limit, s.Noise)
	}
}

// TestStartSuspectRoundHoldEnds: the hold for a call granted with the
// suspect lasts one round after the suspect's throttle came back, as the
// hold for the calls after it does; a call granted with it that ended
// (cancelled) between them does not stop the look for the others.
func TestStartSuspectRoundHoldEnds(t *testing.T) {
	g, clk := newGov(t, Options{})
	twoRounds(t, g, clk)
	a := mustTryClass(t, g, Batch) // round 3: calls at one instant
	defer a.Cancel()
	c := mustTryClass(t, g, Batch)
	c.Cancel() // ended: a, before it, still decides the suspect
	b := mustTryClass(t, g, Batch)
	b.Throttled() // the suspect
	clk.Advance(startRound - time.Nanosecond)
	if tk, ok, _ := g.TryAdmit(haiku, Estimate{MaxTokens: 100}, Batch); ok {
		tk.Cancel()
		t.Fatal("a Batch call went within the round after the suspect while a call granted with it was undecided")
	}
	clk.Advance(time.Nanosecond) // the round is over: the window holds no longer
	tk := mustTryClass(t, g, Batch)
	tk.Cancel()
}
