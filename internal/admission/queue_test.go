package admission

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// TestPriority queues calls of one second's worth of tokens each in the
// given order (I: Interactive, B: Batch) into an empty bucket, then lets one
// second pass at a time and records who is granted.
func TestPriority(t *testing.T) {
	tests := []struct {
		name       string
		batchEvery int
		arrivals   string
		want       string
	}{
		{name: "interactive goes ahead of waiting batch", arrivals: "BI", want: "IB"},
		{name: "fifo within a class", arrivals: "IIBB", want: "IIBB"},
		{name: "one batch after four interactive in a row", arrivals: "BBIIIIII", want: "IIIIBIIB"},
		{name: "batch is not starved by a stream of interactive calls", arrivals: "BBB" + strings.Repeat("I", 12), want: "IIIIBIIIIBIIIIB"},
		{name: "batch every 1 alternates", batchEvery: 1, arrivals: "BBIII", want: "IBIBI"},
		{name: "batch alone", arrivals: "BBB", want: "BBB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, bubble(func(t *testing.T) {
			g, clk := newBubbleGov(t, Options{Default: Quota{TokensPerMinute: 60000}, BatchEvery: tt.batchEvery})
			mustTry(t, g, haiku, Estimate{MaxTokens: 60000})
			ch := make(chan result, len(tt.arrivals))
			var ni, nb int
			for _, c := range tt.arrivals {
				class := Interactive
				if c == 'B' {
					class = Batch
					nb++
				} else {
					ni++
				}
				admitAsync(context.Background(), g, haiku, Estimate{MaxTokens: 1000}, class, string(c), ch)
				waitQueued(t, g, haiku, ni, nb)
			}
			var got strings.Builder
			for range tt.arrivals {
				clk.Advance(time.Second)
				r := recv(t, ch)
				if r.err != nil {
					t.Fatalf("Admit: %v", r.err)
				}
				got.WriteString(r.name)
			}
			if got.String() != tt.want {
				t.Errorf("grant order %s, want %s", got.String(), tt.want)
			}
		}))
	}
}

// TestHeadOfLine checks that a large call at the head is not passed by small
// ones that would fit sooner.
func TestHeadOfLine(t *testing.T) {
	synctest.Test(t, testHeadOfLine)
}

func testHeadOfLine(t *testing.T) {
	g, clk := newBubbleGov(t, known(60000)) // 1,000 tokens a second
	mustTry(t, g, haiku, Estimate{MaxTokens: 59000})
	x := mustTry(t, g, haiku, Estimate{MaxTokens: 1000})
	ch := make(chan result, 6)
	admitAsync(context.Background(), g, haiku, Estimate{MaxTokens: 30000}, Interactive, "L", ch)
	waitQueued(t, g, haiku, 1, 0)
	for i := 1; i <= 5; i++ {
		admitAsync(context.Background(), g, haiku, Estimate{MaxTokens: 1000}, Interactive, fmt.Sprint("S", i), ch)
		waitQueued(t, g, haiku, 1+i, 0)
	}
	clk.Advance(20 * time.Second)
	x.Cancel() // dispatches now, with 21,000 tokens free: room for every small call, not for L
	if s := stats(t, g, haiku); s.Classes[Interactive].Queued != 6 || s.Available != 21000 {
		t.Fatalf("after the refund: %d queued, %d available; want 6, 21000 (nobody passes L)", s.Classes[Interactive].Queued, s.Available)
	}
	clk.Advance(9 * time.Second) // 30,000: L fits, and L only
	if r := recv(t, ch); r.name != "L" || r.err != nil || !near(r.tk.Waited(), 29*time.Second) {
		t.Fatalf("first grant %s (%v) after %v, want L after 29s", r.name, r.err, r.tk.Waited())
	}
	for i := 1; i <= 5; i++ {
		clk.Advance(time.Second)
		if r := recv(t, ch); r.name != fmt.Sprint("S", i) || r.err != nil {
			t.Fatalf("grant %s (%v), want S%d", r.name, r.err, i)
		}
	}
}

// TestQueueTarget: on an overloaded target (its calls asked for more than
// a minute of quota over the last minute), an Interactive call that would
// wait in its queue longer than QueueTarget is refused at once with
// ErrOverloaded; Batch calls, retries, a target too young to tell (unless
// a throttle has emptied its bucket), and a call within the target still
// queue.
func TestQueueTarget(t *testing.T) {
	tests := []struct {
		name   string
		target time.Duration // Options.QueueTarget
		young  bool          // the bucket is emptied as the target is first seen
		thrott bool          // young, and emptied by a throttle: the quota was spent before
		class  Class         // of both calls
		retry  bool          // the second call is a retry (AdmitBy with a bound)
		shed   bool
	}{
		{name: "overloaded, past the target: refused", class: Interactive, shed: true},
		{name: "within a longer target: queued", target: 5 * time.Second, class: Interactive},
		{name: "batch: queued", class: Batch},
		{name: "a retry: queued", class: Interactive, retry: true},
		{name: "too soon to tell: queued", young: true, class: Interactive},
		{name: "young, emptied by a throttle: refused", young: true, thrott: true, class: Interactive, shed: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, bubble(func(t *testing.T) {
			g, clk := newBubbleGov(t, Options{Default: Quota{TokensPerMinute: 60000}, QueueTarget: tt.target})
			if !tt.young {
				spend(t, g, haiku, 1) // first seen now
				clk.Advance(10 * time.Second)
			}
			if tt.thrott {
				// Bedrock's bucket was spent: the first two calls are
				// throttled, which confirms a quota signal, and the bucket
				// is emptied to match.
				a := mustTry(t, g, haiku, Estimate{MaxTokens: 30000})
				b := mustTry(t, g, haiku, Estimate{MaxTokens: 30000})
				a.Throttled()
				b.Throttled()
				clk.Advance(100 * time.Millisecond)
			} else {
				spend(t, g, haiku, 60000) // a minute of quota asked at once: 6x over 10 s, 6.4x with the two calls below
			}
			ch := make(chan result, 2)
			// 1,000 tokens a second: the first fits in 2 s, the second in 4 s.
			admitAsync(context.Background(), g, haiku, Estimate{MaxTokens: 2000}, tt.class, "first", ch)
			if tt.class == Interactive {
				waitQueued(t, g, haiku, 1, 0)
			} else {
				waitQueued(t, g, haiku, 0, 1)
			}
			var by time.Time
			if tt.retry {
				by = clk.Now().Add(30 * time.Second)
			}
			go func() {
				tk, err := g.AdmitBy(context.Background(), haiku, Estimate{MaxTokens: 2000}, tt.class, by)
				ch <- result{name: "second", tk: tk, err: err}
			}()
			if tt.shed {
				r := recv(t, ch)
				var e *Error
				if r.name != "second" || !errors.Is(r.err, ErrOverloaded) || !errors.As(r.err, &e) {
					t.Fatalf("%s: Admit = %v, want the second refused with ErrOverloaded", r.name, r.err)
				}
				asked := "overloaded: calls asked for 6.4x its quota over the last minute"
				if tt.young {
					asked = "overloaded: calls asked for" // 64,000 tokens in 0.1 s
				}
				if e.Offered < 5 || e.Wait < 3*time.Second || e.Ahead != 1 || e.QueueTarget != DefaultQueueTarget ||
					!strings.Contains(e.Error(), asked) {
					t.Errorf("error %+v: %v", *e, e)
				}
				if s := stats(t, g, haiku); s.Classes[Interactive].Shed != 1 || s.Classes[Interactive].Queued != 1 || s.OfferedPerMinute < 5*60000 {
					t.Errorf("stats: shed %d, queued %d, offered %d/min; want 1, 1, over 300000",
						s.Classes[Interactive].Shed, s.Classes[Interactive].Queued, s.OfferedPerMinute)
				}
				clk.Advance(2 * time.Second)
				if r := recv(t, ch); r.err != nil {
					t.Fatalf("%s: Admit = %v, want admitted", r.name, r.err)
				}
				return
			}
			if tt.class == Interactive {
				waitQueued(t, g, haiku, 2, 0)
			} else {
				waitQueued(t, g, haiku, 0, 2)
			}
			for _, d := range []time.Duration{2 * time.Second, 2 * time.Second} {
				clk.Advance(d)
				if r := recv(t, ch); r.err != nil {
					t.Fatalf("%s: Admit = %v, want admitted", r.name, r.err)
				}
			}
		}))
	}
}

// TestWindowRecent: recent sums the newest slots that cover a span back
// from now, and says what time they cover (the current slot only partly).
func TestWindowRecent(t *testing.T) {
	base := t0.Truncate(slotLen) // a slot boundary
	w := newWindow()
	for i, v := range []float64{1, 2, 4, 8} { // one value per 5 s slot: at 0, 5, 10, 15 s
		w.Add(base.Add(time.Duration(i)*slotLen), v)
	}
	tests := []struct {
		name     string
		now, d   time.Duration // after base
		sum      float64
		covering time.Duration
	}{
		{name: "the current slot only", now: 17 * time.Second, d: time.Second, sum: 8, covering: 2 * time.Second},
		{name: "two slots", now: 17 * time.Second, d: 10 * time.Second, sum: 12, covering: 7 * time.Second},
		{name: "the whole window", now: 17 * time.Second, d: time.Minute, sum: 15, covering: 57 * time.Second},
		{name: "more than the window", now: 17 * time.Second, d: time.Hour, sum: 15, covering: 57 * time.Second},
		{name: "the oldest slot dropped", now: 62 * time.Second, d: time.Minute, sum: 14, covering: 57 * time.Second},
		{name: "two slots dropped", now: 67 * time.Second, d: time.Minute, sum: 12, covering: 57 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := w // each case from the same state
			sum, covering := w.Recent(base.Add(tt.now), tt.d)
			if sum != tt.sum || covering != tt.covering {
				t.Errorf("recent = %v over %v, want %v over %v", sum, covering, tt.sum, tt.covering)
			}
			if tt.d >= time.Minute && w.Sum(base.Add(tt.now)) != tt.sum {
				t.Errorf("sum = %v, want %v", w.Sum(base.Add(tt.now)), tt.sum)
			}
		})
	}
}
