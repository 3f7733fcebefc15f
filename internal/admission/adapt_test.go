package admission

import (
	"context"
	"testing"
	"time"
)

func TestThrottleShrinksAndPauses(t *testing.T) {
	g, clk := newGov(t, known(60000)) // pause: exactly CoolDown (1s), the jitter being fixed at its mean
	a := mustTry(t, g, haiku, Estimate{MaxTokens: 1000})
	b := mustTry(t, g, haiku, Estimate{MaxTokens: 1000})

	a.Throttled()
	s := stats(t, g, haiku)
	if s.Limit != 42000 || s.Available != 0 || s.PausedFor != time.Second || s.Throttles != 1 || s.Decreases != 1 || s.InFlight != 1 {
		t.Fatalf("after a throttle: limit %d, available %d, paused %v, throttles %d, decreases %d, in flight %d; want 42000, 0, 1s, 1, 1, 1",
			s.Limit, s.Available, s.PausedFor, s.Throttles, s.Decreases, s.InFlight)
	}
	if _, ok, _ := g.TryAdmit(haiku, Estimate{MaxTokens: 1}, Interactive); ok {
		t.Fatal("admitted during the pause")
	}

	// b was sent at the old rate too: its throttle is the same news.
	b.Throttled()
	g.Throttled(haiku) // and so is one without a ticket during the pause
	s = stats(t, g, haiku)
	if s.Limit != 42000 || s.Available != 0 || s.Throttles != 3 || s.Decreases != 1 || s.InFlight != 0 {
		t.Fatalf("after stale throttles: limit %d, available %d, throttles %d, decreases %d, in flight %d; want 42000, 0, 3, 1, 0",
			s.Limit, s.Available, s.Throttles, s.Decreases, s.InFlight)
	}

	// After the pause, a call admitted at the new rate and throttled shrinks it again.
	clk.Advance(time.Second) // 700 tokens refilled
	c := mustTry(t, g, haiku, Estimate{MaxTokens: 700})
	c.Throttled()
	if s = stats(t, g, haiku); s.Limit != 29400 || s.Decreases != 2 {
		t.Fatalf("after a fresh throttle: limit %d, decreases %d; want 29400, 2", s.Limit, s.Decreases)
	}

	// Throttle after throttle, the limit stops at its floor: 1% of the quota, at least 1,000.
	for range 30 {
		clk.Advance(5 * time.Second)
		g.Throttled(haiku)
	}
	if s = stats(t, g, haiku); s.Limit != 1000 || s.Floor != 1000 {
		t.Fatalf("after many throttles: limit %d, floor %d; want 1000, 1000", s.Limit, s.Floor)
	}
}

func TestCoolDownJitter(t *testing.T) {
	tests := []struct {
		name string
		r    float64
		want time.Duration
	}{
		{name: "shortest", r: 0, want: 1 * time.Second},
		{name: "mean", r: 0.5, want: 2 * time.Second},
		{name: "near longest", r: 0.999, want: 2998 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, _ := newGov(t, Options{Default: Quota{TokensPerMinute: 60000}, CoolDown: 2 * time.Second, Rand: func() float64 { return tt.r }})
			g.Throttled(haiku)
			if p := stats(t, g, haiku).PausedFor; p != tt.want {
				t.Errorf("pause %v, want %v", p, tt.want)
			}
		})
	}
}

// TestPauseHoldsTheQueue checks that calls queued when a throttle comes stay
// queued, in order, through the pause, and go once the smaller limit has
// refilled enough for them.
func TestPauseHoldsTheQueue(t *testing.T) {
	g, clk := newGov(t, known(60000))
	mustTry(t, g, haiku, Estimate{MaxTokens: 60000})
	ch := make(chan result, 3)
	for i, name := range []string{"w1", "w2", "w3"} {
		admitAsync(context.Background(), g, haiku, Estimate{MaxTokens: 1000}, Interactive, name, ch)
		waitQueued(t, g, haiku, i+1, 0)
	}
	g.Throttled(haiku) // limit 42,000: 700 tokens a second; pause 1s
	clk.Advance(time.Second)
	if s := stats(t, g, haiku); s.Classes[Interactive].Queued != 3 || s.Available != 700 {
		t.Fatalf("after the pause: %d queued, %d available; want 3, 700", s.Classes[Interactive].Queued, s.Available)
	}
	clk.Advance(500 * time.Millisecond) // 1,050: w1 fits
	if r := <-ch; r.name != "w1" || r.err != nil {
		t.Fatalf("got %s (%v), want w1", r.name, r.err)
	}
	clk.Advance(1500 * time.Millisecond) // 50 + 1,050: w2 fits, w3 does not
	if r := <-ch; r.name != "w2" || r.err != nil {
		t.Fatalf("got %s (%v), want w2", r.name, r.err)
	}
	if s := stats(t, g, haiku); s.Classes[Interactive].Queued != 1 {
		t.Fatalf("%d queued, want w3 alone", s.Classes[Interactive].Queued)
	}
	clk.Advance(1500 * time.Millisecond)
	if r := <-ch; r.name != "w3" || r.err != nil {
		t.Fatalf("got %s (%v), want w3", r.name, r.err)
	}
}

// TestRecovery checks the CUBIC curve: after a throttle at a limit of 60,000
// the limit is 42,000 and grows back, on successes, as
// 60,000 × (1 + 0.3 × ((t − 30 s)/30 s)³), never past the known quota.
func TestRecovery(t *testing.T) {
	tests := []struct {
		name  string
		after time.Duration
		want  int64
	}{
		{name: "just after", after: 0, want: 42000},
		{name: "5s", after: 5 * time.Second, want: 49583},
		{name: "15s", after: 15 * time.Second, want: 57750},
		{name: "29s", after: 29 * time.Second, want: 59999},
		{name: "30s: back where it was", after: 30 * time.Second, want: 60000},
		{name: "60s: a known quota is the ceiling", after: 60 * time.Second, want: 60000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, clk := newGov(t, known(60000))
			a := mustTry(t, g, haiku, Estimate{MaxTokens: 100})
			b := mustTry(t, g, haiku, Estimate{MaxTokens: 100})
			b.Throttled()
			clk.Advance(tt.after)
			if s := stats(t, g, haiku); s.Limit != 42000 {
				t.Fatalf("limit %d before any success, want 42000: only successes grow it", s.Limit)
			}
			a.Settle(Usage{InputTokens: 1, OutputTokens: 1})
			if s := stats(t, g, haiku); s.Limit != tt.want {
				t.Errorf("limit %d, want %d", s.Limit, tt.want)
			}
		})
	}
}

// TestLearnedLimitGrowsOnlyWhenUsed checks a learning limit: it starts at its
// guess and probes upwards, but only as far as twice what the target really
// used over the last minute, and never past its ceiling.
func TestLearnedLimitGrowsOnlyWhenUsed(t *testing.T) {
	tests := []struct {
		name    string
		ceiling int
		inUse   int // tokens held by a call in flight
		want    int64
	}{
		{name: "idle: no growth", want: 60000},
		{name: "busy: grows along the curve", inUse: 50000, want: 78000}, // 60,000 × (1 + 0.3 × 1³)
		{name: "busy, ceiling", ceiling: 70000, inUse: 50000, want: 70000},
		{name: "half busy: twice the use", inUse: 35000, want: 70002}, // 2 × (35,000 + 1 settled)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, clk := newGov(t, Options{Default: Quota{TokensPerMinute: 60000, Learn: true, MaxTokensPerMinute: tt.ceiling}})
			first := mustTry(t, g, haiku, Estimate{}) // the target's state starts here, on the plateau
			first.Cancel()
			clk.Advance(30 * time.Second) // one Recovery past it
			if tt.inUse > 0 {
				mustTry(t, g, haiku, Estimate{MaxTokens: tt.inUse})
			}
			tk := mustTry(t, g, haiku, Estimate{MaxTokens: 100})
			tk.Settle(Usage{InputTokens: 1}) // used 1 token
			if s := stats(t, g, haiku); s.Limit != tt.want {
				t.Errorf("limit %d, want %d", s.Limit, tt.want)
			}
		})
	}
}

// TestUnknownQuotaLearnsFromTheFirstThrottle: with no quota configured,
// nothing is limited until Bedrock throttles; the limit then starts at 0.7
// of what the target used over the last minute (settled + in flight) plus
// what the throttled call held.
func TestUnknownQuotaLearnsFromTheFirstThrottle(t *testing.T) {
	g, clk := newGov(t, Options{})
	var tks []Ticket
	for range 10 {
		tks = append(tks, mustTry(t, g, haiku, Estimate{MaxTokens: 10000}))
	}
	clk.Advance(time.Minute) // watched for a minute: what it used is a minute's worth
	if s := stats(t, g, haiku); s.Limit != 0 || s.InFlightTokens != 100000 {
		t.Fatalf("before a throttle: limit %d, in flight %d; want 0 (none), 100000", s.Limit, s.InFlightTokens)
	}
	for _, tk := range tks[:5] {
		tk.Settle(Usage{InputTokens: 1000, OutputTokens: 4000}) // 5,000 each
	}
	tks[5].Throttled() // used: 25,000 settled + 40,000 in flight + its own 10,000
	s := stats(t, g, haiku)
	if s.Limit != 52500 || s.Available != 0 || s.Decreases != 1 || s.Floor != DefaultFloor {
		t.Fatalf("after the first throttle: limit %d, available %d, decreases %d, floor %d; want 52500, 0, 1, %d",
			s.Limit, s.Available, s.Decreases, s.Floor, DefaultFloor)
	}
	// Calls admitted before it learned: a throttle is old news, and gives
	// back nothing the emptied bucket did not already write off; a settle
	// gives back what it held beyond its use, as Bedrock does.
	tks[6].Throttled()
	tks[7].Cancel()
	tks[8].Settle(Usage{InputTokens: 1000, OutputTokens: 4000})
	if s := stats(t, g, haiku); s.Decreases != 1 || s.Available != 5000 {
		t.Errorf("after older calls end: decreases %d, available %d; want 1, 5000", s.Decreases, s.Available)
	}
}

// TestLoneThrottleBoundsTheUnknownQuota: a throttle of the only call to an
// idle target with an unknown quota that has been watched for a minute
// says the quota is below that call's hold (Bedrock could not reserve it
// from a bucket a minute could have refilled), not that it is near zero:
// the limit becomes 0.7 of the hold, or the floor. Watched for less than a
// minute, what was used is a rate extrapolated to a minute: the quota may
// have been spent by others when it started. Watched for less than
// minObserved, a throttle only pauses the target.
func TestLoneThrottleBoundsTheUnknownQuota(t *testing.T) {
	tests := []struct {
		name      string
		watched   time.Duration
		max       int
		wantLimit int64
	}{
		{name: "large call", watched: time.Minute, max: 20000, wantLimit: 14000},
		{name: "small call: the floor", watched: 2 * time.Minute, max: 500, wantLimit: DefaultFloor},
		{name: "after ten seconds: six times", watched: 10 * time.Second, max: 20000, wantLimit: 84000},
		{name: "after five seconds: twelve times", watched: 5 * time.Second, max: 20000, wantLimit: 168000},
		{name: "at once: a pause, no limit", max: 20000, wantLimit: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, clk := newGov(t, Options{})
			first := mustTry(t, g, haiku, Estimate{MaxTokens: 1}) // the Governor starts watching
			first.Cancel()
			clk.Advance(tt.watched)
			tk := mustTry(t, g, haiku, Estimate{MaxTokens: tt.max})
			tk.Throttled()
			wantDecreases := int64(1)
			if tt.wantLimit == 0 {
				wantDecreases = 0
			}
			if s := stats(t, g, haiku); s.Limit != tt.wantLimit || s.Decreases != wantDecreases || s.PausedFor != time.Second || s.Throttles != 1 {
				t.Fatalf("limit %d, decreases %d, paused %v, throttles %d; want %d, %d, 1s, 1", s.Limit, s.Decreases, s.PausedFor, s.Throttles, tt.wantLimit, wantDecreases)
			}
		})
	}
}

// TestLearnedLimitComesDownToUse: a throttle brings a learned limit far
// above what the target was using down to that use at once (the AWS SDK's
// adaptive mode takes the smaller of its rate and the measured one); a
// known quota only shrinks to 0.7 of itself.
func TestLearnedLimitComesDownToUse(t *testing.T) {
	tests := []struct {
		name  string
		quota Quota
		want  int64
	}{
		{name: "known quota", quota: Quota{TokensPerMinute: 1_000_000}, want: 700_000},
		{name: "a guess, learning", quota: Quota{TokensPerMinute: 1_000_000, Learn: true}, want: 14_000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, clk := newGov(t, Options{Default: tt.quota})
			first := mustTry(t, g, haiku, Estimate{MaxTokens: 1})
			first.Cancel()
			clk.Advance(2 * time.Minute) // watched long enough; used nothing since
			tk := mustTry(t, g, haiku, Estimate{MaxTokens: 20000})
			tk.Throttled() // used over the last minute: this call's 20,000
			if s := stats(t, g, haiku); s.Limit != tt.want {
				t.Errorf("limit %d, want %d", s.Limit, tt.want)
			}
		})
	}
}
