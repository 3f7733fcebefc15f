package admission

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

// teach settles n calls of max tokens maxTok that each took d and produced
// out tokens, so the target learns its reply time.
func teach(t *testing.T, g *Governor, clk interface{ Advance(time.Duration) }, n, maxTok, out int, d time.Duration) {
	t.Helper()
	for range n {
		tk := mustTry(t, g, haiku, Estimate{MaxTokens: maxTok})
		clk.Advance(d)
		tk.Settle(Usage{InputTokens: 1, OutputTokens: out})
	}
}

func TestTrack(t *testing.T) {
	tests := []struct {
		name   string
		q      float64
		values func(i int) float64
		lo, hi float64
	}{
		// 1..100 repeated: the 95th percentile is 95.
		{name: "p95 of 1..100", q: 0.95, values: func(i int) float64 { return float64(i%100 + 1) }, lo: 88, hi: 100},
		{name: "p5 of 1..100", q: 0.05, values: func(i int) float64 { return float64(i%100 + 1) }, lo: 2, hi: 12},
		{name: "constant", q: 0.95, values: func(int) float64 { return 7 }, lo: 6.5, hi: 7.5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			est := newQuantile(tt.q)
			for _, x := range []float64{0, -1, math.NaN(), math.Inf(1)} {
				est.add(x) // ignored
			}
			if est.v != 0 || est.n != 0 {
				t.Fatalf("after values that are not positive numbers: %v (%d values), want 0", est.v, est.n)
			}
			for i := range 20000 {
				est.add(tt.values((i * 37) % 1000))
			}
			if est.v < tt.lo || est.v > tt.hi || math.IsNaN(est.v) {
				t.Errorf("estimate %v, want within [%v, %v]", est.v, tt.lo, tt.hi)
			}
		})
	}
}

// TestQuantileStart: a quantile is the exact quantile of its first values,
// so one quick first reply does not hide the slow ones that follow.
func TestQuantileStart(t *testing.T) {
	seq := func(lo, hi float64) []float64 {
		var v []float64
		for x := lo; x <= hi; x++ {
			v = append(v, x)
		}
		return v
	}
	tests := []struct {
		name   string
		q      float64
		values []float64
		want   float64
	}{
		{name: "a quick first reply, then slow ones", q: 0.95, values: []float64{1.5, 9, 8.5}, want: 9},
		{name: "twenty values: the second largest", q: 0.95, values: seq(1, 20), want: 19},
		{name: "a low quantile: the smallest", q: 0.05, values: []float64{5, 1, 3}, want: 1},
		{name: "then steps: up by 1+0.05×0.95", q: 0.95, values: append(seq(1, 20), 100), want: 19 * (1 + 0.05*0.95)},
		{name: "then steps: down by 1−0.05×0.05", q: 0.95, values: append(seq(1, 20), 2), want: 19 * (1 - 0.05*0.05)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			est := newQuantile(tt.q)
			for _, x := range tt.values {
				est.add(x)
			}
			if math.Abs(est.v-tt.want) > 1e-9 {
				t.Errorf("estimate %v, want %v", est.v, tt.want)
			}
		})
	}
}

// TestReplyTime: the time a call's reply may take is the target's 95th
// percentile of attempt durations, or less for a call whose max tokens cut
// its reply short: quick replies' time + max tokens × seconds per token.
func TestReplyTime(t *testing.T) {
	g, clk := newGov(t, known(6_000_000))
	first := mustTry(t, g, haiku, Estimate{MaxTokens: 1})
	first.Cancel()
	if s := stats(t, g, haiku); s.ReplyTime != 0 {
		t.Fatalf("reply time %v before any reply, want 0", s.ReplyTime)
	}
	// Replies of 1 s + 10 ms per output token: 100 tokens (2 s) and 800 (9 s).
	for range 100 {
		teach(t, g, clk, 1, 1000, 100, 2*time.Second)
		teach(t, g, clk, 1, 1000, 800, 9*time.Second)
	}
	s := stats(t, g, haiku)
	if s.ReplyTime < 8*time.Second || s.ReplyTime > 10*time.Second {
		t.Fatalf("reply time %v, want about 9s (the slow replies)", s.ReplyTime)
	}
	l := g.limiter(haiku)
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, tt := range []struct {
		maxTok int
		lo, hi time.Duration
	}{
		{maxTok: 64, lo: 2 * time.Second, hi: 3500 * time.Millisecond}, // about 2 s + 64 × 10 ms
		{maxTok: 300, lo: 4 * time.Second, hi: 7 * time.Second},
		{maxTok: 4096, lo: s.ReplyTime, hi: s.ReplyTime}, // no shorter than the 95th percentile
	} {
		if got := l.replyTime(tt.maxTok, clk.Now()); got < tt.lo || got > tt.hi {
			t.Errorf("replyTime(%d) = %v, want within [%v, %v]", tt.maxTok, got, tt.lo, tt.hi)
		}
	}
}

// TestDeadlineKeepsTimeForTheReply: a call must be granted early enough to
// be answered before its context's deadline. A call that would fit in 10 s,
// whose replies take about 9 s, is refused at once with 15 s left and
// queued with 20 s left; MaxWait bounds the wait alone.
// TestDeadlineKeepsTimeForTheReply: a queued call is refused when its wait
// (10 s here) leaves too little time for its reply before its deadline:
// the replies' time learned, or, until the target's first reply has come
// back, half the call's time.
func TestDeadlineKeepsTimeForTheReply(t *testing.T) {
	tests := []struct {
		name    string
		replies int           // replies the target has had ...
		took    time.Duration // ... each taking this long
		left    time.Duration
		maxWait time.Duration
		refused bool
		guessed bool // refused keeping half its time for the reply
	}{
		{name: "room for wait and reply", replies: 30, took: 9 * time.Second, left: 20 * time.Second},
		{name: "no room for the reply", replies: 30, took: 9 * time.Second, left: 15 * time.Second, refused: true},
		{name: "MaxWait counts the wait alone", replies: 30, took: 9 * time.Second, left: time.Hour, maxWait: 11 * time.Second},
		{name: "MaxWait shorter than the wait", replies: 30, took: 9 * time.Second, left: time.Hour, maxWait: 9 * time.Second, refused: true},
		{name: "no reply yet, a 10 s wait is more than half of 15 s", left: 15 * time.Second, refused: true, guessed: true},
		{name: "no reply yet, a 10 s wait is less than half of 25 s", left: 25 * time.Second},
		{name: "one reply of 1 s", replies: 1, took: time.Second, left: 15 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, bubble(func(t *testing.T) {
			g, clk := newBubbleGov(t, Options{Default: Quota{TokensPerMinute: 60000}, MaxWait: tt.maxWait})
			// Calls that settle what they hold: no refund is expected from
			// the call in flight below.
			teach(t, g, clk, tt.replies, 1000, 999, tt.took)
			spend(t, g, haiku, 60000) // empty the bucket: 1,000 tokens a second
			ctx, cancel := context.WithTimeout(context.Background(), tt.left)
			defer cancel()
			ch := make(chan result, 1)
			admitAsync(ctx, g, haiku, Estimate{MaxTokens: 10000}, Interactive, "w", ch)
			if tt.refused {
				r := recv(t, ch)
				var e *Error
				if !errors.Is(r.err, ErrWouldExceedDeadline) || !errors.As(r.err, &e) || errors.Is(r.err, context.DeadlineExceeded) {
					t.Fatalf("Admit = %v, want ErrWouldExceedDeadline (not the context's error)", r.err)
				}
				switch {
				case tt.guessed:
					if !e.ReplyGuessed || e.Reply != tt.left/2 || !strings.Contains(e.Error(), "no reply has come back from it yet, so half the call's time (7.5s) is kept for its reply") {
						t.Errorf("reply %v (guessed %v), message %q: want half the call's time, said so", e.Reply, e.ReplyGuessed, e.Error())
					}
				case tt.maxWait == 0:
					if e.ReplyGuessed || e.Reply < 8*time.Second || !strings.Contains(e.Error(), "replies take up to about") {
						t.Errorf("reply %v (guessed %v), message %q: want the reply time named", e.Reply, e.ReplyGuessed, e.Error())
					}
				}
				return
			}
			waitQueued(t, g, haiku, 1, 0)
			clk.Advance(10 * time.Second)
			if r := recv(t, ch); r.err != nil {
				t.Fatalf("Admit = %v, want admitted after 10s", r.err)
			}
		}))
	}
}

// TestCancelAfterAThrottleGivesBack: a throttle writes off only what
// emptying the bucket took; a call long in flight that is cancelled after
// it gives its tokens back (before this, it gave back nothing, and the
// bucket stayed short of Bedrock's for good).
func TestCancelAfterAThrottleGivesBack(t *testing.T) {
	g, _ := newGov(t, known(60000))
	long := mustTry(t, g, haiku, Estimate{MaxTokens: 30000})
	mustTry(t, g, haiku, Estimate{MaxTokens: 30000}) // the bucket is empty
	g.Throttled(haiku)                               // empties nothing: the bucket held none
	if s := stats(t, g, haiku); s.Available != 0 || s.Resyncs != 1 {
		t.Fatalf("after the throttle: available %d, resyncs %d; want 0, 1", s.Available, s.Resyncs)
	}
	long.Cancel()
	if s := stats(t, g, haiku); s.Available != 30000 {
		t.Fatalf("after the cancel: available %d, want 30000", s.Available)
	}
}

// TestSlowCallsInFlight: while more than one in twenty of the calls in
// flight is older than the 95th percentile of the replies seen (the quick
// ones end first), the reply time is their age: twice it before 20 replies
// were seen, at most twice the percentile after. One hung call among many
// does not move it.
func TestSlowCallsInFlight(t *testing.T) {
	tests := []struct {
		name       string
		taught     int           // replies of 5 s seen
		age        time.Duration // of the old calls
		old, young int           // calls in flight for age, and just granted
		lo, hi     time.Duration
	}{
		{name: "none in flight", taught: 30, lo: 5 * time.Second, hi: 5500 * time.Millisecond},
		{name: "one slow call", taught: 30, age: 8 * time.Second, old: 1, lo: 8 * time.Second, hi: 8 * time.Second},
		{name: "slow calls among young ones", taught: 30, age: 8 * time.Second, old: 5, young: 35, lo: 8 * time.Second, hi: 8 * time.Second},
		{name: "one hung call among many", taught: 30, age: 8 * time.Second, old: 1, young: 39, lo: 5 * time.Second, hi: 5500 * time.Millisecond},
		{name: "a very slow call: at most twice the percentile", taught: 30, age: time.Minute, old: 1, lo: 10 * time.Second, hi: 11 * time.Second},
		{name: "no reply seen yet: twice its age", age: 3 * time.Second, old: 1, lo: 6 * time.Second, hi: 6 * time.Second},
		{name: "a few replies seen: twice its age", taught: 5, age: 4 * time.Second, old: 1, lo: 8 * time.Second, hi: 8 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, clk := newGov(t, known(6_000_000))
			teach(t, g, clk, tt.taught, 1000, 100, 5*time.Second)
			for range tt.old {
				mustTry(t, g, haiku, Estimate{MaxTokens: 100})
			}
			clk.Advance(tt.age)
			for range tt.young {
				mustTry(t, g, haiku, Estimate{MaxTokens: 100})
			}
			if got := stats(t, g, haiku).ReplyTime; got < tt.lo || got > tt.hi {
				t.Errorf("reply time %v, want within [%v, %v]", got, tt.lo, tt.hi)
			}
		})
	}
}

// TestQueuedCallJudgedAgain: a call queued before any reply was seen keeps
// no time for one, but it is judged again as the calls in flight age: when
// its turn comes with less time left than the call in flight has taken, it
// is refused, not granted to miss its deadline.
func TestQueuedCallJudgedAgain(t *testing.T) {
	tests := []struct {
		name    string
		settled bool // the call in flight ends early
		refused bool
	}{
		{name: "the call in flight is still going after 15 s", refused: true},
		{name: "the call in flight ended after 1 s", settled: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, bubble(func(t *testing.T) {
			g, clk := newBubbleGov(t, Options{Default: Quota{TokensPerMinute: 60000}})
			// One quick reply, so that the reply time is known (not half
			// the call's time, see blindGuess); then a minute to refill.
			quick := mustTry(t, g, haiku, Estimate{MaxTokens: 100})
			clk.Advance(time.Second)
			quick.Settle(Usage{InputTokens: 1, OutputTokens: 99})
			clk.Advance(time.Minute)
			start := clk.Now()
			// Empty the bucket: it refills 1,000 tokens a second.
			first := mustTry(t, g, haiku, Estimate{MaxTokens: 60000})
			ctx, cancel := context.WithDeadline(context.Background(), start.Add(20*time.Second))
			defer cancel()
			ch := make(chan result, 1)
			admitAsync(ctx, g, haiku, Estimate{MaxTokens: 15000}, Interactive, "w", ch)
			waitQueued(t, g, haiku, 1, 0)
			if tt.settled {
				clk.Advance(time.Second)
				first.Settle(Usage{InputTokens: 1, OutputTokens: 59999}) // no refund
				waitQueued(t, g, haiku, 1, 0)
			}
			clk.Advance(15*time.Second - clk.Now().Sub(start))
			r := recv(t, ch)
			if !tt.refused {
				if r.err != nil {
					t.Fatalf("Admit = %v, want granted", r.err)
				}
				return
			}
			var e *Error
			if !errors.As(r.err, &e) || !errors.Is(r.err, ErrWouldExceedDeadline) {
				t.Fatalf("Admit = %v, %v; want ErrWouldExceedDeadline", r.tk.Tokens(), r.err)
			}
			if e.Reply < 15*time.Second {
				t.Errorf("reply time %v in the refusal, want the call in flight's 15s", e.Reply)
			}
		}))
	}
}
