package admission

import (
	"context"
	"fmt"
	"strings"
	"testing"
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
		t.Run(tt.name, func(t *testing.T) {
			g, clk := newGov(t, Options{Default: Quota{TokensPerMinute: 60000}, BatchEvery: tt.batchEvery})
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
				r := <-ch
				if r.err != nil {
					t.Fatalf("Admit: %v", r.err)
				}
				got.WriteString(r.name)
			}
			if got.String() != tt.want {
				t.Errorf("grant order %s, want %s", got.String(), tt.want)
			}
		})
	}
}

// TestHeadOfLine checks that a large call at the head is not passed by small
// ones that would fit sooner.
func TestHeadOfLine(t *testing.T) {
	g, clk := newGov(t, known(60000)) // 1,000 tokens a second
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
	if r := <-ch; r.name != "L" || r.err != nil || r.tk.Waited() != 29*time.Second {
		t.Fatalf("first grant %s (%v) after %v, want L after 29s", r.name, r.err, r.tk.Waited())
	}
	for i := 1; i <= 5; i++ {
		clk.Advance(time.Second)
		if r := <-ch; r.name != fmt.Sprint("S", i) || r.err != nil {
			t.Fatalf("grant %s (%v), want S%d", r.name, r.err, i)
		}
	}
}
