package admission

import (
	"context"
	"testing"
	"testing/synctest"
	"time"
)

// TestSlowStartGrowsAsCallsGetThrough: after the first limit, a call
// granted in slow start that has been in flight longer than a throttle
// takes to come back got through Bedrock's quota check, and adds
// slowStartGain times its hold to the limit then, before its reply ends.
// While calls wait for the limit, that is all; while none waits, the limit
// grows to at most twice what the bucket gave over the last slowStartSpan
// (an idle target does not grow a limit it never tested).
func TestSlowStartGrowsAsCallsGetThrough(t *testing.T) {
	tests := []struct {
		name    string
		waiting bool  // a second call waits for the limit when the first gets through
		want    int64 // the limit once the first has got through
	}{
		// 12 × 1,000 + 20 × 1,000.
		{name: "a call waits: the gain", waiting: true, want: 32000},
		// Twice the 1,000 given over the last 10 s, read over the window's
		// slots back 6 s (they are 5 s long, aligned to the epoch):
		// 20,000, below the gain.
		{name: "none waits: twice the recent rate", want: 20000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				g, _ := newBubbleGov(t, Options{})
				ctx := context.Background()
				est := Estimate{MaxTokens: 1000}
				tk := grant(t, g, 1) // the Governor starts watching
				tk.Cancel()
				time.Sleep(20 * time.Second)
				confirmClass(t, g, 1000, Batch)
				if s := stats(t, g, haiku); s.Limit != 12000 {
					t.Fatalf("first limit %d, want 12000", s.Limit)
				}
				first, err := g.Admit(ctx, haiku, est, Batch) // after 5 s: the first limit's bucket starts empty
				if err != nil {
					t.Fatal(err)
				}
				done := make(chan Ticket, 1)
				if tt.waiting {
					go func() {
						tk, err := g.Admit(ctx, haiku, est, Batch)
						if err != nil {
							t.Error(err)
						}
						done <- tk
					}()
				}
				synctest.Wait()
				if s := stats(t, g, haiku); s.Limit != 12000 {
					t.Errorf("limit %d before the call got through, want 12000", s.Limit)
				}
				time.Sleep(time.Second)
				synctest.Wait()
				if s := stats(t, g, haiku); s.Limit != tt.want {
					t.Errorf("limit %d once the call got through, want %d", s.Limit, tt.want)
				}
				first.Settle(Usage{InputTokens: 1, OutputTokens: 999})
				if tt.waiting {
					tk := <-done
					tk.Cancel()
				}
			})
		})
	}
}
