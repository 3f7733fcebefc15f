package admission

import (
	"context"
	"testing"
	"testing/synctest"
	"time"
)

// TestThrottleResyncsThenShrinks: a known quota's first throttle of an
// episode empties the bucket and pauses, and changes no limit (the bucket
// was fuller than Bedrock's); the throttles of calls sent before it are old
// news; a later throttle bounds the quota from what Bedrock gave since the
// first, and lowers the limit to that bound, by at most 0.7 at a time for a
// known quota.
func TestThrottleResyncsThenShrinks(t *testing.T) {
	g, clk := newGov(t, known(60000)) // pause: exactly CoolDown (1s), the jitter being fixed at its mean
	a := mustTry(t, g, haiku, Estimate{MaxTokens: 1000})
	b := mustTry(t, g, haiku, Estimate{MaxTokens: 1000})

	a.Throttled()
	s := stats(t, g, haiku)
	if s.Limit != 60000 || s.Available != 0 || s.PausedFor != time.Second || s.Throttles != 1 || s.Decreases != 0 || s.Resyncs != 1 || s.InFlight != 1 {
		t.Fatalf("after a throttle: limit %d, available %d, paused %v, throttles %d, decreases %d, resyncs %d, in flight %d; want 60000, 0, 1s, 1, 0, 1, 1",
			s.Limit, s.Available, s.PausedFor, s.Throttles, s.Decreases, s.Resyncs, s.InFlight)
	}
	if _, ok, _ := g.TryAdmit(haiku, Estimate{MaxTokens: 1}, Interactive); ok {
		t.Fatal("admitted during the pause")
	}

	// b was sent before it: its throttle is the same news.
	b.Throttled()
	g.Throttled(haiku) // and so is one without a ticket during the pause
	s = stats(t, g, haiku)
	if s.Limit != 60000 || s.Available != 0 || s.Throttles != 3 || s.Decreases != 0 || s.Resyncs != 1 || s.InFlight != 0 {
		t.Fatalf("after stale throttles: limit %d, available %d, throttles %d, decreases %d, resyncs %d, in flight %d; want 60000, 0, 3, 0, 1, 0",
			s.Limit, s.Available, s.Throttles, s.Decreases, s.Resyncs, s.InFlight)
	}

	tests := []struct {
		name      string
		after     time.Duration // since the first throttle
		hold      int
		wantLimit int64
		wantDecr  int64
	}{
		// Bedrock gave nothing since and could not give 1,000 in 1 s: the
		// quota is below 60,000 a minute, which is the limit: no news.
		{name: "at the limit's pace: a resync", after: time.Second, hold: 1000, wantLimit: 60000},
		// ... could not give 1,000 in 1.2 s: below 50,000.
		{name: "bound below the limit", after: 1200 * time.Millisecond, hold: 1000, wantLimit: 50000, wantDecr: 1},
		// ... could not give 1,000 in 3 s: below 20,000, but a known
		// quota is cut by 0.7 at most.
		{name: "bound far below: 0.7", after: 3 * time.Second, hold: 1000, wantLimit: 42000, wantDecr: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, clk := newGov(t, known(60000))
			throttle(t, g, haiku, Estimate{MaxTokens: 1}) // the anchor
			clk.Advance(tt.after)
			throttle(t, g, haiku, Estimate{MaxTokens: tt.hold})
			if s := stats(t, g, haiku); s.Limit != tt.wantLimit || s.Decreases != tt.wantDecr {
				t.Errorf("limit %d, decreases %d; want %d, %d", s.Limit, s.Decreases, tt.wantLimit, tt.wantDecr)
			}
		})
	}

	// Throttle after throttle with nothing given, the limit stops at its
	// floor: 1% of the quota, at least 1,000.
	for range 30 {
		clk.Advance(5 * time.Second)
		g.Throttled(haiku)
	}
	if s = stats(t, g, haiku); s.Limit != 1000 || s.Floor != 1000 {
		t.Fatalf("after many throttles: limit %d, floor %d; want 1000, 1000", s.Limit, s.Floor)
	}
}

// TestEpisodeBound checks the bound over a longer episode, and that a gap
// of more than episodeGap starts a new episode (a resync, no bound).
func TestEpisodeBound(t *testing.T) {
	g, clk := newGov(t, known(1_200_000)) // 20,000 tokens a second
	throttle(t, g, haiku, Estimate{MaxTokens: 1})
	// 30 s at 19,000 a second, each call settling what it held: Bedrock
	// gave 570,000; then a call of 10,000 is throttled. The quota is below
	// 60 × 580,000 / 30 = 1,160,000.
	for range 30 {
		clk.Advance(time.Second)
		tk := mustTry(t, g, haiku, Estimate{MaxTokens: 19000})
		tk.Settle(Usage{InputTokens: 1, OutputTokens: 18999})
	}
	throttle(t, g, haiku, Estimate{MaxTokens: 10000})
	if s := stats(t, g, haiku); s.Limit != 1_160_000 || s.Decreases != 1 {
		t.Fatalf("limit %d, decreases %d; want 1160000, 1", s.Limit, s.Decreases)
	}
	clk.Advance(episodeGap + time.Second)
	throttle(t, g, haiku, Estimate{MaxTokens: 1})
	if s := stats(t, g, haiku); s.Limit != 1_160_000 || s.Decreases != 1 || s.Resyncs != 2 {
		t.Fatalf("after a gap: limit %d, decreases %d, resyncs %d; want 1160000, 1, 2", s.Limit, s.Decreases, s.Resyncs)
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
	synctest.Test(t, testPauseHoldsTheQueue)
}

func testPauseHoldsTheQueue(t *testing.T) {
	g, clk := newBubbleGov(t, known(60000))
	mustTry(t, g, haiku, Estimate{MaxTokens: 60000})
	ch := make(chan result, 3)
	for i, name := range []string{"w1", "w2", "w3"} {
		admitAsync(context.Background(), g, haiku, Estimate{MaxTokens: 1000}, Interactive, name, ch)
		waitQueued(t, g, haiku, i+1, 0)
	}
	g.Throttled(haiku) // a known quota's first throttle: the bucket emptied, a pause of 1s
	if s := stats(t, g, haiku); s.Classes[Interactive].Queued != 3 || s.Available != 0 || s.PausedFor != time.Second {
		t.Fatalf("after the throttle: %d queued, %d available, paused %v; want 3, 0, 1s", s.Classes[Interactive].Queued, s.Available, s.PausedFor)
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

// TestRecovery checks the CUBIC curve: after a throttle that cuts a known
// limit of 60,000 (the episode's second, Bedrock having given nothing since
// the first) the limit is 42,000 and grows back, on successes, as
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
			throttle(t, g, haiku, Estimate{MaxTokens: 100}) // the episode's anchor
			clk.Advance(2 * time.Second)
			g.Throttled(haiku)
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
// known quota's first throttle of an episode changes no limit.
func TestLearnedLimitComesDownToUse(t *testing.T) {
	tests := []struct {
		name  string
		quota Quota
		want  int64
	}{
		{name: "known quota", quota: Quota{TokensPerMinute: 1_000_000}, want: 1_000_000},
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
