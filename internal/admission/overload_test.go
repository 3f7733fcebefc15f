package admission

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// TestLargeCallsJudgeTheQueue: when calls of its class already wait, a call
// entering the queue is judged as if it held what the target's large calls
// hold, so a small call is refused when a large one would be; into an empty
// queue (or one of Batch calls only, for an Interactive call), or with
// SmallFirst, it is judged by its own size.
func TestLargeCallsJudgeTheQueue(t *testing.T) {
	tests := []struct {
		name       string
		smallFirst bool
		queued     bool
		firstBatch bool // the call already queued is a Batch call
		refused    bool
	}{
		{name: "behind a queue: judged as large", queued: true, refused: true},
		{name: "behind a queue, SmallFirst", queued: true, smallFirst: true},
		{name: "empty queue: its own size"},
		{name: "Interactive with only Batch calls queued: its own size", queued: true, firstBatch: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, bubble(func(t *testing.T) {
			g, clk := newBubbleGov(t, Options{Default: Quota{TokensPerMinute: 60000}, SmallFirst: tt.smallFirst})
			// The target's calls: mostly small, one in ten holding 20,000.
			for i := range 100 {
				m := 100
				if i%10 == 0 {
					m = 20000
				}
				tk := mustTry(t, g, haiku, Estimate{MaxTokens: m})
				tk.Cancel()
			}
			mustTry(t, g, haiku, Estimate{MaxTokens: 60000}) // empty the bucket: 1,000 tokens a second
			ctx, cancel := context.WithTimeout(context.Background(), 12*time.Second)
			defer cancel()
			ch := make(chan result, 2)
			if tt.queued {
				if tt.firstBatch {
					admitAsync(ctx, g, haiku, Estimate{MaxTokens: 2000}, Batch, "first", ch)
					waitQueued(t, g, haiku, 0, 1)
				} else {
					admitAsync(ctx, g, haiku, Estimate{MaxTokens: 2000}, Interactive, "first", ch)
					waitQueued(t, g, haiku, 1, 0)
				}
			}
			// 2,000 + 100 tokens fit in 2.1 s; as a large call (about 20,000
			// tokens) behind the first, in 22 s: past the 12 s deadline.
			admitAsync(ctx, g, haiku, Estimate{MaxTokens: 100}, Interactive, "small", ch)
			if tt.refused {
				r := recv(t, ch)
				if r.name != "small" || !errors.Is(r.err, ErrWouldExceedDeadline) {
					t.Fatalf("%s: Admit = %v, want small refused", r.name, r.err)
				}
				return
			}
			n := 1
			if tt.queued {
				n = 2
			}
			if tt.firstBatch {
				waitQueued(t, g, haiku, 1, 1)
			} else {
				waitQueued(t, g, haiku, n, 0)
			}
			clk.Advance(3 * time.Second)
			for range n {
				if r := recv(t, ch); r.err != nil {
					t.Fatalf("%s: Admit = %v, want admitted", r.name, r.err)
				}
			}
		}))
	}
}

// TestSlowRepliesJudgeTheQueue: when calls already wait, a call entering
// the queue keeps the time the target's slow replies take before its
// deadline, even if its max tokens would cut its own reply short; once
// queued, or with SmallFirst, its own reply time counts.
func TestSlowRepliesJudgeTheQueue(t *testing.T) {
	for _, smallFirst := range []bool{false, true} {
		t.Run(fmt.Sprintf("SmallFirst=%v", smallFirst), bubble(func(t *testing.T) {
			// QueueTarget out of the way: the calls taught below count as
			// an overload.
			g, clk := newBubbleGov(t, Options{Default: Quota{TokensPerMinute: 60000}, SmallFirst: smallFirst, QueueTarget: time.Hour})
			// Replies of 1 s + ~10 ms per token, each settling what it
			// held: 100 tokens in 2 s, 800 in 9 s.
			for range 100 {
				teach(t, g, clk, 1, 101, 100, 2*time.Second)
				teach(t, g, clk, 1, 801, 800, 9*time.Second)
			}
			spend(t, g, haiku, 60000) // empty the bucket: 1,000 tokens a second
			ctx, cancel := context.WithTimeout(context.Background(), 10500*time.Millisecond)
			defer cancel()
			ch := make(chan result, 2)
			// 1,000 tokens fit in 1 s; a reply may take 9 s: queued.
			admitAsync(ctx, g, haiku, Estimate{MaxTokens: 1000}, Interactive, "first", ch)
			waitQueued(t, g, haiku, 1, 0)
			// 100 max tokens: its own reply takes about 3 s, but judged as
			// the large calls (about 800 tokens, 9 s replies) behind the
			// first, it would fit in 1.8 s and leave 8.7 s for the reply.
			admitAsync(ctx, g, haiku, Estimate{MaxTokens: 100}, Interactive, "small", ch)
			if !smallFirst {
				r := recv(t, ch)
				var e *Error
				if r.name != "small" || !errors.As(r.err, &e) || e.Reply < 8*time.Second {
					t.Fatalf("%s: Admit = %v, want small refused for a 9 s reply", r.name, r.err)
				}
				return
			}
			waitQueued(t, g, haiku, 2, 0)
			// The first fits after 1 s, by when it must be granted to keep
			// 9.35 s for its reply; the small one 0.1 s later.
			for _, d := range []time.Duration{time.Second, 100 * time.Millisecond} {
				clk.Advance(d)
				if r := recv(t, ch); r.err != nil {
					t.Fatalf("%s: Admit = %v, want admitted", r.name, r.err)
				}
			}
		}))
	}
}
