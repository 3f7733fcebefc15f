package admission

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/keel-run/keel/internal/clock"
)

// TestSuspicion: a throttle of a call with a Ticket only raises a
// suspicion; a throttle of a call granted after it confirms it (the bucket
// is emptied, a resync), one of a call granted before it does not, and
// confirmPasses calls granted after it that get through (settled, or in
// flight for longer than a throttle takes to come back) clear it as noise.
func TestSuspicion(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T, g *Governor, adv func(time.Duration))
		// want after run: throttles, resyncs (confirmed throttles), noise,
		// available tokens.
		throttles, resyncs, noise, avail int64
	}{
		{name: "one throttle: a suspicion, no reaction", run: func(t *testing.T, g *Governor, _ func(time.Duration)) {
			a := grant(t, g, 1000)
			grant(t, g, 1000)
			a.Throttled()
		}, throttles: 1, avail: 59000},
		{name: "confirmed by a call granted after it", run: func(t *testing.T, g *Governor, _ func(time.Duration)) {
			confirm(t, g, 1000)
		}, throttles: 2, resyncs: 1, avail: 0},
		{name: "a call granted before it does not confirm", run: func(t *testing.T, g *Governor, adv func(time.Duration)) {
			a := grant(t, g, 1000)
			adv(time.Millisecond)
			b := grant(t, g, 1000)
			b.Throttled()
			a.Throttled()
		}, throttles: 2, avail: 60000},
		{name: "a call granted with it confirms (throttles of calls granted at once come in any order)", run: func(t *testing.T, g *Governor, _ func(time.Duration)) {
			a, b := grant(t, g, 1000), grant(t, g, 1000)
			b.Throttled()
			a.Throttled()
		}, throttles: 2, resyncs: 1, avail: 0},
		{name: "a confirmed throttle starts it over", run: func(t *testing.T, g *Governor, adv func(time.Duration)) {
			throttle(t, g, haiku, Estimate{MaxTokens: 1000})
			g.Throttled(haiku) // a quota signal of its own
			adv(time.Second)
			throttle(t, g, haiku, Estimate{MaxTokens: 1000}) // a new suspicion
		}, throttles: 3, resyncs: 1, avail: 1000},
		{name: "cleared by three calls that settle", run: passThen(confirmPasses, 0), throttles: 2, noise: 1, avail: 57000},
		{name: "two that settle do not clear it", run: passThen(confirmPasses-1, 0), throttles: 2, resyncs: 1, avail: 0},
		// The throttles seen came back at once: a call in flight for
		// throttleSlack has got through.
		{name: "cleared by three calls in flight past a throttle's round trip", run: passThen(confirmPasses, 2*throttleSlack),
			throttles: 2, noise: 1, avail: 57100},
		{name: "three calls in flight too briefly do not", run: passThen(confirmPasses, throttleSlack/2), throttles: 2, resyncs: 1, avail: 0},
		// A call's throttle may come back after calls granted after it
		// got through: replies shorter than a throttle's round trip, as in
		// a batch sent at once into a full bucket.
		{name: "cleared by three calls granted after it that settled before it came back", run: settledFirst(confirmPasses),
			throttles: 2, noise: 1, avail: 57000},
		{name: "two that settled before it came back do not", run: settledFirst(confirmPasses - 1), throttles: 2, resyncs: 1, avail: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, clk := newGov(t, known(60000))
			tt.run(t, g, clk.Advance)
			s := stats(t, g, haiku)
			if s.Throttles != tt.throttles || s.Resyncs != tt.resyncs || s.Noise != tt.noise || s.Available != tt.avail ||
				s.Limit != 60000 || s.Decreases != 0 || s.PausedFor != 0 {
				t.Errorf("throttles %d, resyncs %d, noise %d, available %d, limit %d, decreases %d, paused %v; want %d, %d, %d, %d, 60000, 0, 0s",
					s.Throttles, s.Resyncs, s.Noise, s.Available, s.Limit, s.Decreases, s.PausedFor, tt.throttles, tt.resyncs, tt.noise, tt.avail)
			}
		})
	}
}

// passThen returns a run for TestSuspicion: a suspicion, then n calls
// granted after it that settle at once (held: 0) or stay in flight for
// held, then a throttle of a call granted after them.
func passThen(n int, held time.Duration) func(t *testing.T, g *Governor, adv func(time.Duration)) {
	return func(t *testing.T, g *Governor, adv func(time.Duration)) {
		throttle(t, g, haiku, Estimate{MaxTokens: 1000})
		for range n {
			if held == 0 {
				spend(t, g, haiku, 1000)
			} else {
				grant(t, g, 1000)
			}
		}
		adv(held)
		throttle(t, g, haiku, Estimate{MaxTokens: 1000})
	}
}

// settledFirst returns a run for TestSuspicion: a call granted, then n
// calls granted after it that settle at once, then its throttle, then a
// throttle of a call granted after them.
func settledFirst(n int) func(t *testing.T, g *Governor, adv func(time.Duration)) {
	return func(t *testing.T, g *Governor, _ func(time.Duration)) {
		a := grant(t, g, 1000)
		for range n {
			spend(t, g, haiku, 1000)
		}
		a.Throttled()
		throttle(t, g, haiku, Estimate{MaxTokens: 1000})
	}
}

// TestConfirmedThrottleEmptiesTheBucket: a known quota's first confirmed
// throttle empties the bucket and changes no limit, nor pauses; throttles
// of calls sent before it are old news; one without a Ticket is a quota
// signal of its own, and, the second in a row, pauses the target.
func TestConfirmedThrottleEmptiesTheBucket(t *testing.T) {
	g, _ := newGov(t, known(60000)) // pause: exactly CoolDown (1s), the jitter being fixed at its mean
	a, b, c := grant(t, g, 1000), grant(t, g, 1000), grant(t, g, 1000)
	a.Throttled()
	b.Throttled()
	steps := []struct {
		name                                    string
		do                                      func()
		limit, avail                            int64
		paused                                  time.Duration
		throttles, decreases, resyncs, inFlight int64
	}{
		{name: "confirmed", do: func() {}, limit: 60000, throttles: 2, resyncs: 1, inFlight: 1},
		{name: "a call sent before it: old news", do: c.Throttled, limit: 60000, throttles: 3, resyncs: 1},
		{name: "without a Ticket: the second in a row pauses", do: func() { g.Throttled(haiku) }, limit: 60000, paused: time.Second, throttles: 4, resyncs: 2},
		{name: "without a Ticket during the pause: counted only", do: func() { g.Throttled(haiku) }, limit: 60000, paused: time.Second, throttles: 5, resyncs: 2},
	}
	for _, st := range steps {
		st.do()
		s := stats(t, g, haiku)
		if s.Limit != st.limit || s.Available != st.avail || s.PausedFor != st.paused || s.Throttles != st.throttles ||
			s.Decreases != st.decreases || s.Resyncs != st.resyncs || int64(s.InFlight) != st.inFlight {
			t.Fatalf("%s: limit %d, available %d, paused %v, throttles %d, decreases %d, resyncs %d, in flight %d; want %d, %d, %v, %d, %d, %d, %d",
				st.name, s.Limit, s.Available, s.PausedFor, s.Throttles, s.Decreases, s.Resyncs, s.InFlight,
				st.limit, st.avail, st.paused, st.throttles, st.decreases, st.resyncs, st.inFlight)
		}
	}
	if _, ok, _ := g.TryAdmit(haiku, Estimate{MaxTokens: 1}, Interactive); ok {
		t.Fatal("admitted during the pause")
	}
}

// TestStrikes: the first confirmed throttle in a row does not pause, the
// second pauses CoolDown, each further one doubles it up to
// 2^maxPauseDoublings, but no pause is longer than pauseShare of the row's
// age (nor shorter than CoolDown for that); a call granted after the last
// confirmed throttle that gets through (settles, or stays in flight past a
// throttle's round trip) ends the row, and one granted before it does not.
func TestStrikes(t *testing.T) {
	tests := []struct {
		name    string
		unknown bool            // the quota is unknown: the first T sets its first limit
		ops     string          // T: a throttle without a Ticket, then the pause waited out; W: 100 s more; S: a call settles; O: a call granted and held; o: it settles; F: a call granted, held past a throttle's round trip
		want    []time.Duration // the pause after each T, in whole seconds
	}{
		// Each pause waited out, a throttle at its end: half the row's age
		// (1.02 s, 2.03 s, ... at the third, fourth ...) binds.
		{name: "half the row's age", ops: "TTTTTTTT", want: []time.Duration{0, 1, 1, 1, 1, 2, 3, 5}},
		{name: "up to the cap", ops: "TTTTTTTTTTTTTTT", want: []time.Duration{0, 1, 1, 1, 1, 2, 3, 5, 7, 11, 17, 26, 32, 32, 32}},
		// Throttles far apart in one row: the doubling binds.
		{name: "a long row doubles", ops: "TTWTWTWT", want: []time.Duration{0, 1, 2, 4, 8}},
		{name: "a call that settles ends the row", ops: "TTWTSTT", want: []time.Duration{0, 1, 2, 0, 1}},
		{name: "a call granted before the throttle does not", ops: "TTWTWOToT", want: []time.Duration{0, 1, 2, 4, 8}},
		{name: "a call in flight past a round trip ends the row", ops: "TTFT", want: []time.Duration{0, 1, 0}},
		// An unknown quota's first limit, and no call of its slow start
		// through: its refill is unknown, and looked at as often as a
		// probe would.
		{name: "slow start with nothing through: up to probeEvery", unknown: true, ops: "TTWTWTWTWT", want: []time.Duration{0, 1, 2, 4, 5, 5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := known(600000)
			if tt.unknown {
				o = Options{}
			}
			g, clk := newGov(t, o)
			var held Ticket
			var got []time.Duration
			for _, op := range tt.ops {
				switch op {
				case 'T':
					g.Throttled(haiku)
					p := stats(t, g, haiku).PausedFor
					got = append(got, p/time.Second)
					clk.Advance(p + 10*time.Millisecond) // and enough refill for a call
				case 'W':
					clk.Advance(100 * time.Second)
				case 'S':
					spend(t, g, haiku, 1)
				case 'O':
					held = grant(t, g, 1)
				case 'o':
					held.Settle(Usage{InputTokens: 1})
				case 'F':
					grant(t, g, 1)
					clk.Advance(2 * throttleSlack)
				}
			}
			if len(got) != len(tt.want) {
				t.Fatalf("pauses %v, want %v seconds", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("pauses %v, want %v seconds", got, tt.want)
				}
			}
		})
	}
}

// TestCoolDownJitter: the second confirmed throttle in a row pauses within
// [CoolDown/2, 3×CoolDown/2), and the third, in a row that has lasted long
// enough, twice as long.
func TestCoolDownJitter(t *testing.T) {
	tests := []struct {
		name          string
		r             float64
		second, third time.Duration
	}{
		{name: "shortest", r: 0, second: 1 * time.Second, third: 2 * time.Second},
		{name: "mean", r: 0.5, second: 2 * time.Second, third: 4 * time.Second},
		{name: "near longest", r: 0.999, second: 2998 * time.Millisecond, third: 5996 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, clk := newGov(t, Options{Default: Quota{TokensPerMinute: 60000}, CoolDown: 2 * time.Second, Rand: func() float64 { return tt.r }})
			g.Throttled(haiku)
			if p := stats(t, g, haiku).PausedFor; p != 0 {
				t.Fatalf("first: pause %v, want none", p)
			}
			g.Throttled(haiku)
			if p := stats(t, g, haiku).PausedFor; p != tt.second {
				t.Fatalf("second: pause %v, want %v", p, tt.second)
			}
			clk.Advance(tt.second + 10*time.Second)
			g.Throttled(haiku)
			if p := stats(t, g, haiku).PausedFor; p != tt.third {
				t.Errorf("third: pause %v, want %v", p, tt.third)
			}
		})
	}
}

// TestPauseHoldsTheQueue checks that calls queued when a pause begins stay
// queued, in order, through it, and go once the bucket has refilled enough
// for them.
func TestPauseHoldsTheQueue(t *testing.T) {
	synctest.Test(t, testPauseHoldsTheQueue)
}

func testPauseHoldsTheQueue(t *testing.T) {
	g, clk := newBubbleGov(t, known(60000))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel() // a failing test leaves no call queued in the bubble
	mustTry(t, g, haiku, Estimate{MaxTokens: 60000})
	ch := make(chan result, 3)
	for i, name := range []string{"w1", "w2", "w3"} {
		admitAsync(ctx, g, haiku, Estimate{MaxTokens: 1000}, Interactive, name, ch)
		waitQueued(t, g, haiku, i+1, 0)
	}
	g.Throttled(haiku) // the first confirmed throttle: the bucket emptied, no pause
	g.Throttled(haiku) // the second in a row: a pause of 1s
	if s := stats(t, g, haiku); s.Classes[Interactive].Queued != 3 || s.Available != 0 || s.PausedFor != time.Second {
		t.Fatalf("after the throttles: %d queued, %d available, paused %v; want 3, 0, 1s", s.Classes[Interactive].Queued, s.Available, s.PausedFor)
	}
	clk.Advance(500 * time.Millisecond) // 500 refilled, but paused
	if s := stats(t, g, haiku); s.Classes[Interactive].Queued != 3 {
		t.Fatalf("during the pause: %d queued, want 3", s.Classes[Interactive].Queued)
	}
	clk.Advance(500 * time.Millisecond) // 1,000 at the pause's end: w1 fits
	if r := recv(t, ch); r.name != "w1" || r.err != nil {
		t.Fatalf("got %s (%v), want w1", r.name, r.err)
	}
	clk.Advance(time.Second) // w2 fits, w3 does not
	if r := recv(t, ch); r.name != "w2" || r.err != nil {
		t.Fatalf("got %s (%v), want w2", r.name, r.err)
	}
	if s := stats(t, g, haiku); s.Classes[Interactive].Queued != 1 {
		t.Fatalf("%d queued, want w3 alone", s.Classes[Interactive].Queued)
	}
	clk.Advance(time.Second)
	if r := recv(t, ch); r.name != "w3" || r.err != nil {
		t.Fatalf("got %s (%v), want w3", r.name, r.err)
	}
}

// minuteRun drives a quota of 60,000 a minute (1,000 a second) from 0 to
// end in steps of 5 s: at each step in [spendFrom, spendTo] a call spends
// spend tokens, then, at the steps listed, a throttle without a Ticket
// comes (a confirmed quota signal).

// TestScoutAfterAConfirmedThrottle: after a confirmed throttle, the first
// call granted goes alone: the others wait until it has been in flight for
// a throttle's round trip, or has ended. A bucket still empty throttles one
// call, not all those the Governor's refill let through. A scout found past
// the check ends the row of strikes: a later call is no scout.
func TestScoutAfterAConfirmedThrottle(t *testing.T) {
	tests := []struct {
		name  string
		then  func(t *testing.T, g *Governor, scout Ticket, adv func(time.Duration))
		admit bool // a call is admitted at once after then
	}{
		{name: "the scout in transit: the next waits", then: func(*testing.T, *Governor, Ticket, func(time.Duration)) {}},
		{name: "half a round trip later: still", then: func(_ *testing.T, _ *Governor, _ Ticket, adv func(time.Duration)) { adv(throttleSlack / 2) }},
		{name: "past a throttle's round trip: the next goes", then: func(_ *testing.T, _ *Governor, _ Ticket, adv func(time.Duration)) { adv(2 * throttleSlack) }, admit: true},
		{name: "the scout settled: the next goes", then: func(_ *testing.T, _ *Governor, s Ticket, _ func(time.Duration)) {
			s.Settle(Usage{InputTokens: 1, OutputTokens: 99})
		}, admit: true},
		{name: "the scout throttled (a suspicion): the next goes", then: func(_ *testing.T, _ *Governor, s Ticket, _ func(time.Duration)) { s.Throttled() }, admit: true},
		{name: "the scout got through, then cancelled: a call granted after it is no scout", then: func(t *testing.T, g *Governor, s Ticket, adv func(time.Duration)) {
			adv(2 * throttleSlack)
			grant(t, g, 100)
			s.Cancel()
		}, admit: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, clk := newGov(t, known(60000))
			confirm(t, g, 1000)
			clk.Advance(time.Second) // 1,000 tokens of refill
			scout := grant(t, g, 100)
			tt.then(t, g, scout, clk.Advance)
			_, ok, err := g.TryAdmit(haiku, Estimate{MaxTokens: 100}, Interactive)
			if err != nil || ok != tt.admit {
				t.Errorf("a call: admitted %v, %v; want %v", ok, err, tt.admit)
			}
		})
	}
	// Without a confirmed throttle, calls go together.
	g, _ := newGov(t, known(60000))
	grant(t, g, 100)
	grant(t, g, 100)
}

// TestScoutInTheWait: a call whose deadline falls before the scout has got
// through is refused at once, not after waiting to its deadline: the
// wait estimate counts the scout.
func TestScoutInTheWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, clk := newBubbleGov(t, known(60000))
		confirm(t, g, 1000)
		time.Sleep(time.Second)
		grant(t, g, 100)
		start := clk.Now()
		_, err := g.AdmitBy(context.Background(), haiku, Estimate{MaxTokens: 100}, Interactive, start.Add(throttleSlack/2))
		var ae *Error
		if !errors.As(err, &ae) || ae.Reason != ErrWouldExceedDeadline || clk.Now() != start {
			t.Errorf("AdmitBy = %v after %v; want refused at once for the deadline", err, clk.Now().Sub(start))
		}
	})
}

// TestScoutKeepsAsMuchAgain: when a call granted after a row of confirmed
// throttles that paused gets through, the level keeps at most its hold
// again, plus what refilled since it was known through: what the pause
// refilled, Bedrock's bucket (in debt, perhaps) may not have. After a
// single confirmed throttle the level is kept.
func TestScoutKeepsAsMuchAgain(t *testing.T) {
	tests := []struct {
		name     string
		single   bool // one confirmed throttle, no pause
		shared   bool // the Store is given (it may be shared with other processes)
		then     func(scout Ticket, adv func(time.Duration))
		admitBig bool  // a call of 1,000 tokens is admitted at once
		level    int64 // the level after it
	}{
		{name: "after a single confirmed throttle: kept", single: true,
			then: func(_ Ticket, adv func(time.Duration)) { adv(2 * throttleSlack) }, admitBig: true, level: 4000},
		{name: "a Store that may be shared: kept", shared: true,
			then: func(_ Ticket, adv func(time.Duration)) { adv(2 * throttleSlack) }, admitBig: true, level: 4000},
		{name: "in flight past a round trip: its hold and 50 ms of refill",
			then: func(_ Ticket, adv func(time.Duration)) { adv(2 * throttleSlack) }, level: 150},
		{name: "settled: its hold", then: func(s Ticket, _ func(time.Duration)) {
			s.Settle(Usage{InputTokens: 1, OutputTokens: 9})
		}, level: 100},
		{name: "throttled: no cut", then: func(s Ticket, _ func(time.Duration)) { s.Throttled() }, admitBig: true, level: 4000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := known(60000) // 1,000 tokens a second
			if tt.shared {
				o.Store = &MemStore{}
			}
			g, clk := newGov(t, o)
			g.Throttled(haiku)
			if !tt.single {
				g.Throttled(haiku) // the second in a row: a pause of 1 s
			}
			clk.Advance(5 * time.Second)
			scout := grant(t, g, 100)
			tt.then(scout, clk.Advance)
			_, ok, err := g.TryAdmit(haiku, Estimate{MaxTokens: 1000}, Interactive)
			if err != nil || ok != tt.admitBig {
				t.Errorf("a call of 1,000 tokens: admitted %v, %v; want %v", ok, err, tt.admitBig)
			}
			if a := stats(t, g, haiku).Available; a != tt.level {
				t.Errorf("available %d; want %d", a, tt.level)
			}
		})
	}
}

// TestThroughLeavesTheBurstOut: what through takes out of the bucket was
// not given by Bedrock, so the burst learned at the next confirmed
// throttle leaves it out, until the level has refilled past the peak it
// was taken from.
func TestThroughLeavesTheBurstOut(t *testing.T) {
	tests := []struct {
		name  string
		after func(g *Governor, clk *clock.Fake) // after the cut, before the confirmed throttle
		want  func(limit int64) int64            // what the bucket holds a minute after it
	}{
		// Peak 30,000; the scout took 100 and the cut 29,800; throttled
		// holding 50: Bedrock gave 100, so the least burst, a second of
		// the limit (which the throttles lowered).
		{name: "right after the cut", after: func(*Governor, *clock.Fake) {}, want: func(limit int64) int64 { return limit / 60 }},
		// Refilled to a new peak of 60,000, 30,000 spent, throttled
		// holding 50: 30,050.
		{name: "after a new peak", after: func(g *Governor, clk *clock.Fake) {
			clk.Advance(time.Minute)
			spend(t, g, haiku, 30000)
		}, want: func(int64) int64 { return 30050 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, clk := newGov(t, known(60000)) // 1,000 tokens a second
			g.Throttled(haiku)
			g.Throttled(haiku) // a pause; the bucket drained
			clk.Advance(30 * time.Second)
			spend(t, g, haiku, 100) // the scout: the level is cut to 100
			if a := stats(t, g, haiku).Available; a != 100 {
				t.Fatalf("available %d after the scout; want 100", a)
			}
			tt.after(g, clk)
			confirm(t, g, 50)
			clk.Advance(time.Minute)
			if s := stats(t, g, haiku); s.Available != tt.want(s.Limit) {
				t.Errorf("holds %d a minute later (limit %d), want %d", s.Available, s.Limit, tt.want(s.Limit))
			}
		})
	}
}
